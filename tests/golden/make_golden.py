"""Generate (or regenerate) the golden records: every task, two random-weight models, generated data.

    python tests/golden/make_golden.py OUT_DIR        # writes OUT_DIR/<task>/... and OUT_DIR/machine.json

The records committed under ``tests/golden/v1/<machine kind>/`` were written by alignbench's code as it was
*before* the task/job spine (record schema ``alignbench.result/1``); ``tests/test_golden_records.py``
regenerates them with today's code and compares every number. Run this script again only for a
deliberate change of the numbers, and say so in the commit.

The generators and the models are seeded, so the data (byte for byte) and the random weights are the
same on every run; float32 kernels differ between CPU kinds, hence ``machine.json``.
"""
from __future__ import annotations

import json
import platform
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MODELS = ("tv_mnasnet0_5", "keras_mobilenet")
N_MAPS_IMAGES = 10
N_PSY_IMAGES = 6
BATCH = 5


def make_datasets(root: Path) -> dict[str, Path]:
    """The four generated datasets (deterministic) under ``root``: {task: path}."""
    import numpy as np

    from benchmark.datasets import clicktionary as ct
    from benchmark.datasets.synthetic import write_clickme_shards
    from benchmark.neural import synthetic as neural_synthetic
    from benchmark.psychophysics import humans
    from benchmark.psychophysics.data import make_stimuli_from

    maps = root / "golden-maps"
    write_clickme_shards(maps, N_MAPS_IMAGES, n_shards=2, n_participants=3, n_classes=10, seed=0)
    clicktionary = ct.write_synthetic_release(root / "golden-clicktionary", N_MAPS_IMAGES, n_participants=3, seed=0)
    release = ct.write_synthetic_release(root / "psy-release", N_PSY_IMAGES, n_participants=0, seed=1,
                                         luminance_cue=True)
    psy = root / "golden-psychophysics"
    make_stimuli_from(str(release), psy, seed=0)
    accuracy = 0.5 + 0.45 / (1 + np.exp(-(np.arange(10) - 4.5)))
    humans.write_synthetic_responses(psy / humans.HUMAN_FILE, accuracy, revelations=list(range(1, 11)),
                                     trials_per_level=200, seed=0)
    neural = neural_synthetic.random_release(root / "golden-neural", n_images=6, george_grid=5, red_grid=5,
                                             george_channels=36, red_channels=4, seed=0)
    return {"maps": maps, "clicktionary": clicktionary, "psychophysics": psy, "neural": neural}


def open_task(task: str, path: Path):
    """The task alignbench runs for ``task`` at ``path``."""
    from benchmark.tasks import get_task

    if task == "neural":
        from benchmark.neural.data import neural_dataset

        return get_task(neural_dataset(root=path, download=False), max_layers=3, n_resamples=200)
    return get_task(str(path), download=False)


def machine() -> dict[str, str]:
    """What decides float32 kernel choices: processor, libraries."""
    import numpy
    import tensorflow
    import torch

    cpu, flags = "", set()
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    except (OSError, StopIteration):
        pass
    isa = sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"})
    return {"cpu": cpu or platform.processor(), "isa": " ".join(isa), "machine": platform.machine(),
            "torch": torch.__version__, "tensorflow": tensorflow.__version__, "numpy": numpy.__version__}


def main(out: Path) -> None:
    import tempfile

    import model_zoo  # noqa: F401  (the import guard, before either framework)
    from model_zoo.frameworks import import_torch

    import_torch()
    from benchmark import runner

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_datasets(tmp / "data")
        for task, path in paths.items():
            the_task = open_task(task, path)
            config = runner.RunConfig(dataset=str(path), models=list(MODELS), results_dir=tmp / "results",
                                      batch_size=BATCH, device="cpu", weights="random", progress=False)
            summary = runner.run(config, task=the_task)
            failed = [f"{o.model}: {o.error}" for o in summary.outcomes if o.status != "ok"]
            if failed:
                raise SystemExit(f"{task}: " + "; ".join(failed))
            dest = out / task
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(tmp / "results" / the_task.name, dest,
                            ignore=shutil.ignore_patterns(".partial", "*.png", "*.svg", "*.pdf"))
    write_machine(out)


def write_machine(out: Path) -> None:
    (out / "machine.json").write_text(json.dumps(machine(), indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
