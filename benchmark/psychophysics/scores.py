"""Accuracy curves and the "how" alignment between a model's curve and the humans'.

What the paper describes (paper-notes §3.4), implemented by :func:`curve_alignment`:

1. min-max normalise the model's accuracy curve and the human one to [0, 1] (each over its levels);
2. resample the levels 1000 times with replacement (bootstrap; seeded);
3. on each resample, score ``-log(MSE(model, human))`` (higher = more human-like; the schematic's
   L2 distance, monotonically transformed);
4. report the mean and the SD over resamples.

Defined edge cases: a *flat* curve (the same accuracy at every level, e.g. a model that always
answers "animal") has no shape to normalise; it becomes 0.5 at every level (no trend, equidistant
from both ends) and the result says ``model_flat=True``, so it scores as uninformative, never as a
division by zero. An MSE of 0 on a resample (curves identical there) is floored at
:data:`MSE_FLOOR`, so the score is finite (at most ``-log(1e-6)`` ~ 13.8).

The published code's function is kept as :func:`published_code_score_BUGGY` for comparison only: it
bootstraps the revelation *percentages* against the human curve, never looking at the model
(paper-notes §4 row 17), so every model gets the same score.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from model_zoo.errors import InvalidInputError

MSE_FLOOR = 1e-6
N_BOOT = 1000
SCORE_NAME = "Decision alignment: -log MSE of min-max-normalised accuracy curves (humans vs model)"


@dataclass(frozen=True)
class LevelAccuracy:
    levels: np.ndarray  # int64 (L,), ascending
    accuracy: np.ndarray  # float64 (L,) in [0, 1]
    n: np.ndarray  # int64 (L,) trials per level


def accuracy_per_level(decisions: np.ndarray, truth: np.ndarray, levels: np.ndarray) -> LevelAccuracy:
    """Fraction of ``decisions == truth`` (bool (N,)) per distinct value of ``levels`` (int (N,))."""
    decisions, truth, levels = np.asarray(decisions, bool), np.asarray(truth, bool), np.asarray(levels)
    if not decisions.shape == truth.shape == levels.shape or decisions.ndim != 1:
        raise InvalidInputError(f"decisions, truth and levels must be 1-D of one length, got "
                                f"{decisions.shape}, {truth.shape}, {levels.shape}")
    uniq, inverse = np.unique(levels, return_inverse=True)
    n = np.bincount(inverse, minlength=len(uniq))
    hits = np.bincount(inverse, weights=(decisions == truth).astype(np.float64), minlength=len(uniq))
    return LevelAccuracy(uniq.astype(np.int64), hits / n, n.astype(np.int64))


def minmax(curve: Sequence[float]) -> tuple[np.ndarray, bool]:
    """(curve scaled to [0, 1], flat). A flat curve (max == min) maps to 0.5 everywhere."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or not len(c) or not np.isfinite(c).all():
        raise InvalidInputError(f"an accuracy curve must be a finite 1-D array, got {c!r}")
    lo, hi = c.min(), c.max()
    if hi - lo <= 1e-12:
        return np.full_like(c, 0.5), True
    return (c - lo) / (hi - lo), False


@dataclass(frozen=True)
class CurveAlignment:
    mean: float  # mean over resamples of -log MSE
    sd: float  # SD over resamples (ddof=1)
    n_levels: int
    n_boot: int
    seed: int
    model_flat: bool
    human_flat: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": "curve_alignment", "mean": self.mean, "sd": self.sd, "n_levels": self.n_levels,
                "n_boot": self.n_boot, "seed": self.seed, "model_flat": self.model_flat,
                "human_flat": self.human_flat, "mse_floor": MSE_FLOOR}


def _neg_log_mse_boot(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    if n_boot < 2:
        raise InvalidInputError(f"n_boot must be at least 2, got {n_boot}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    mse = ((a[idx] - b[idx]) ** 2).mean(axis=1)
    return -np.log(np.maximum(mse, MSE_FLOOR))


def curve_alignment(model_accuracy: Sequence[float], human_accuracy: Sequence[float], *, n_boot: int = N_BOOT,
                    seed: int = 0) -> CurveAlignment:
    """The paper's described "how" score between two accuracy curves over the same levels (see the
    module docstring). Both curves: 1-D, same length >= 2, level order matching."""
    m, h = np.asarray(model_accuracy, np.float64), np.asarray(human_accuracy, np.float64)
    if m.shape != h.shape or m.ndim != 1 or len(m) < 2:
        raise InvalidInputError(f"model and human curves must be 1-D with the same number (>= 2) of levels, "
                                f"got {m.shape} and {h.shape}")
    mn, m_flat = minmax(m)
    hn, h_flat = minmax(h)
    scores = _neg_log_mse_boot(mn, hn, n_boot, seed)
    return CurveAlignment(float(scores.mean()), float(scores.std(ddof=1)), len(m), n_boot, seed, m_flat, h_flat)


def published_code_score_BUGGY(model_accuracy: Sequence[float], human_accuracy: Sequence[float],
                               revelation_percent: Sequence[float], *, n_boot: int = N_BOOT,
                               seed: int = 0) -> tuple[float, float]:
    """The score of serre-lab/Harmonization ``evaluation/psychophysics.py`` @14b2917, bug for bug
    except the crashes. KEPT FOR COMPARISON ONLY, DO NOT REPORT IT AS AN ALIGNMENT.

    The published loop bootstraps ``x`` (the revelation percentages, 1..100, not normalised) against
    ``gt`` (the min-max-normalised human curve): ``mean_squared_error(x[idx], gt[idx])``. The
    normalised model curve is computed and never used (notes §4 row 17), so ``model_accuracy`` is
    validated and ignored here too, and the score is the same for every model. Indices are drawn from
    ``range(len(gt))`` and applied to both arrays, so ``x`` is effectively cut to the human levels
    (row 20). Returns (mean, std) of ``-log MSE`` over resamples (numpy's std, ddof=0, as there).
    Row 19 (indexing a Python list with an array) would raise; the list is converted here.
    """
    minmax(model_accuracy)  # computed and unused, as in the published code
    gt, _ = minmax(human_accuracy)
    x = np.asarray(revelation_percent, np.float64)
    if len(x) < len(gt):
        raise InvalidInputError(f"need at least {len(gt)} revelation levels, got {len(x)}")
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n_boot):
        idx = rng.choice(len(gt), len(gt), replace=True)
        scores.append(-np.log(np.mean((x[idx] - gt[idx]) ** 2)))
    return float(np.mean(scores)), float(np.std(scores))
