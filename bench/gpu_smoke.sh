#!/usr/bin/env bash
# GPU smoke check for `alignbench run --all-models` (bench/gpu_smoke.py): Spearman GPU/CPU parity,
# saliency img/s of ResNet-50 and ViT-B/16, prepared-data img/s, 85-model ClickMe-val GPU-hours.
# Under 5 minutes on a GPU; `bench/gpu_smoke.sh --dry` checks the script on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec timeout 300 env PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" bench/gpu_smoke.py "$@"
