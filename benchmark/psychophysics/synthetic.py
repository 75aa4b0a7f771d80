"""A generated psychophysics dataset (``alignbench data generate --kind psychophysics``): stimuli made
from a generated Clicktionary release exactly as ``make-stimuli`` makes them from the real one, plus
simulated human responses whose accuracy rises with the revealed fraction. Marked synthetic."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

#: simulated human accuracy at revelation levels 1..10: rises from chance (0.5) to 0.95
HUMAN_LEVELS = list(range(1, 11))


def simulated_accuracy(levels: int = len(HUMAN_LEVELS)) -> np.ndarray:
    return 0.5 + 0.45 / (1 + np.exp(-(np.arange(levels) - (levels - 1) / 2)))


def write_synthetic_psychophysics(out_dir: str | Path, n_images: int = 20, *, seed: int = 0,
                                  trials_per_level: int = 200) -> Path:
    """Write the stimulus folder (``manifest.csv`` + PNGs) and its human responses
    (``data_for_zahra.npz``) into ``out_dir``; returns it. ``alignbench run --dataset out_dir`` reads it."""
    from benchmark.datasets.clicktionary import write_synthetic_release
    from benchmark.psychophysics import humans
    from benchmark.psychophysics.data import make_stimuli_from

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="alignbench-release-") as tmp:
        release = write_synthetic_release(Path(tmp) / "release", n_images, n_participants=0, seed=seed,
                                          luminance_cue=True)
        make_stimuli_from(str(release), out, seed=seed)
    humans.write_synthetic_responses(out / humans.HUMAN_FILE, simulated_accuracy(), revelations=HUMAN_LEVELS,
                                     trials_per_level=trials_per_level, n_images=n_images, seed=seed)
    return out
