"""Per-model overhead of a run (not a test): build + weights + first batch vs steady-state batches.

For a few catalog models (random weights: building the network and initialising its weights is the
cost measured, no download), in one process and in order, prints per model:

  build   seconds of ``model_zoo.load(id, weights="random")``;
  first   seconds of the first saliency batch (oneDNN primitive creation, lazy inits);
  steady  median seconds of the next ``--rounds`` batches;
  overhead ratio (build + first - steady) / steady: the one-off cost, in steady batches.

The first model also pays the process-wide start-up (torch import, thread pools), timed apart as
``framework init``; every later model in the same process (``run --all-models`` runs all models in
one process, sharing the framework, the prepared data copy in the page cache and the human-map
ranks) shows what per-model overhead remains. Overhead per model at ClickMe-val scale is reported
as a fraction of the model's whole job (``--val-images`` images).

    python bench/bench_model_overhead.py [--models tv_resnet18,tv_resnet50,timm_vit_small_patch16_224]
                                         [--batch 8] [--rounds 2] [--val-images 4352]
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def measure(model_id: str, batch: int, rounds: int) -> tuple[float, float, float]:
    """(build s, first batch s, median steady batch s) of one model's saliency."""
    import model_zoo

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    labels = rng.integers(0, 1000, batch)
    start = time.perf_counter()
    adapter = model_zoo.load(model_id, weights="random", batch_size=batch)
    build = time.perf_counter() - start
    start = time.perf_counter()
    adapter.saliency(x, labels)
    first = time.perf_counter() - start
    steady = []
    for _ in range(rounds):
        start = time.perf_counter()
        adapter.saliency(x, labels)
        steady.append(time.perf_counter() - start)
    return build, first, statistics.median(steady)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tv_resnet18,tv_resnet50,timm_vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--val-images", type=int, default=17 * 256, help="images per model for the fraction")
    args = parser.parse_args()
    start = time.perf_counter()
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    importlib.import_module("model_zoo")  # its import cost belongs to the framework start-up

    print(f"framework init (torch {torch.__version__} import, model_zoo): {time.perf_counter() - start:.2f}s; "
          f"batch {args.batch}, {torch.get_num_threads()} threads", flush=True)
    print(f"{'model':<28} {'build':>7} {'first':>7} {'steady':>7} {'overhead/steady':>16} {'share of job':>13}")
    for model_id in args.models.split(","):
        build, first, steady = measure(model_id, args.batch, args.rounds)
        overhead = build + first - steady
        job = overhead + steady * args.val_images / args.batch
        print(f"{model_id:<28} {build:>6.2f}s {first:>6.2f}s {steady:>6.2f}s {overhead / steady:>15.2f}x "
              f"{overhead / job:>12.2%}", flush=True)


if __name__ == "__main__":
    main()
