"""The scoring engine: per-image metrics, the human ceiling and the centre-bias baseline.

Per-image metrics take stacks of maps (N,H,W) (also (N,H,W,1), or one (H,W) map -> (1,)) and
return float64 (N,). Aggregates are :class:`~benchmark.scores.Score` records that carry the
raw value, its bootstrap error, the image counts and the procedure's parameters.

Conventions follow the paper's code (``/work/shared/reference/conventions.md``, "Metrics"):
maps are cast to float32 first (float16 widened, float64 rounded: :func:`benchmark.ranking.metric_maps`,
switchable with ``ALIGNBENCH_METRIC_DTYPE=native``); Spearman as ``scipy.stats.spearmanr`` of the
flattened maps; Dice/IoU on masks thresholded strictly above each map's own
``np.percentile(map, 100 - p)``, taken in that float32 precision.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from benchmark.ranking import RankedMaps, metric_maps, rank_maps, spearman, spearman_ranked
from benchmark.scores import Score, Summary, bootstrap_ci, bootstrap_sd, summarize
from model_zoo.errors import InvalidInputError

__all__ = [
    "CLICKME_PUBLISHED_CEILING", "CenterBias", "RankedMaps", "Score", "Summary", "alignment_score",
    "bootstrap_ci", "bootstrap_sd", "center_bias_baseline", "dice", "iou", "metric_maps", "rank_maps",
    "spearman", "spearman_ranked", "split_half_ceiling", "summarize",
]

#: Human ClickMe inter-rater ceiling of the Harmonization paper's code (serre-lab/Harmonization
#: evaluation/clickme.py; the code rounds it to 0.65753). Its procedure is unpublished, so it is
#: used only where per-participant maps are absent; otherwise compute `split_half_ceiling`.
CLICKME_PUBLISHED_CEILING = 0.6575315343478081


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _flat_maps(x: Any, name: str) -> np.ndarray:
    """(N, H*W) rows in the metric precision (float32 unless ALIGNBENCH_METRIC_DTYPE=native)."""
    a = _to_numpy(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) \
            or np.issubdtype(a.dtype, np.complexfloating):
        raise InvalidInputError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    a = metric_maps(a)
    if a.ndim == 2:
        return a.reshape(1, -1)
    if a.ndim == 3 or (a.ndim == 4 and a.shape[-1] == 1):
        return a.reshape(a.shape[0], -1)
    raise InvalidInputError(f"{name}: expected maps of shape (H,W), (N,H,W) or (N,H,W,1), got {a.shape}")


# ---------------------------------------------------------------------------------------------
# Overlap of the top pixels
# ---------------------------------------------------------------------------------------------

def _top_masks(a: Any, b: Any, percentile: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 0.0 < percentile <= 100.0:
        raise InvalidInputError(f"percentile must lie in (0, 100], got {percentile}")
    ra, rb = _flat_maps(a, "a"), _flat_maps(b, "b")
    if ra.shape != rb.shape:
        raise InvalidInputError(f"map stacks differ in shape: {_to_numpy(a).shape} vs {_to_numpy(b).shape}")
    masks = []
    for rows in (ra, rb):
        # one vectorised call; numpy's default linear interpolation, as the paper's per-map call
        threshold = np.percentile(rows, 100.0 - percentile, axis=1, keepdims=True)
        masks.append(rows > threshold)  # strict: a constant map gives an empty mask
    undefined = np.isnan(ra).any(axis=1) | np.isnan(rb).any(axis=1)
    return masks[0], masks[1], undefined


def dice(a: Any, b: Any, percentile: float = 10) -> np.ndarray:
    """Dice 2|A∩B| / (|A|+|B| + 1e-9) of each pair's top-`percentile`% masks; float64 (N,) in
    [0, 1], NaN where a map has a NaN."""
    ma, mb, undefined = _top_masks(a, b, percentile)
    inter = np.count_nonzero(ma & mb, axis=1)
    out = 2.0 * inter / (np.count_nonzero(ma, axis=1) + np.count_nonzero(mb, axis=1) + 1e-9)
    out[undefined] = np.nan
    return out


def iou(a: Any, b: Any, percentile: float = 10) -> np.ndarray:
    """Intersection over union |A∩B| / (|A∪B| + 1e-9) of each pair's top-`percentile`% masks;
    float64 (N,) in [0, 1], NaN where a map has a NaN."""
    ma, mb, undefined = _top_masks(a, b, percentile)
    inter = np.count_nonzero(ma & mb, axis=1)
    out = inter / (np.count_nonzero(ma | mb, axis=1) + 1e-9)
    out[undefined] = np.nan
    return out


# ---------------------------------------------------------------------------------------------
# Ceiling and baseline
# ---------------------------------------------------------------------------------------------

def _participant_stacks(maps_per_participant: Any) -> list[np.ndarray]:
    if isinstance(maps_per_participant, np.ndarray) or hasattr(maps_per_participant, "detach"):
        arr = _to_numpy(maps_per_participant)
        if arr.ndim != 4:
            raise InvalidInputError(
                f"maps_per_participant: expected (N, P, H, W) or a list of (P_i, H, W), got {arr.shape}"
            )
        return list(metric_maps(arr))
    stacks = [metric_maps(_to_numpy(m)) for m in maps_per_participant]
    shapes = {s.shape[1:] for s in stacks if s.ndim == 3}
    for i, s in enumerate(stacks):
        if s.ndim != 3:
            raise InvalidInputError(f"maps_per_participant[{i}]: expected (P, H, W), got {s.shape}")
    if len(shapes) > 1:
        raise InvalidInputError(f"maps_per_participant: images have different map shapes {sorted(shapes)}")
    return stacks


def split_half_ceiling(
    maps_per_participant: Sequence[Any] | np.ndarray,
    *,
    n_splits: int = 10,
    seed: int = 0,
    spearman_brown: bool = False,
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None,
    n_boot: int = 1000,
) -> Score:
    """Human inter-rater ceiling: mean split-half Spearman of participants' maps.

    `maps_per_participant`: one (P_i, H, W) stack per image (a list), or an (N, P, H, W) array.
    Per image and split: shuffle its participants, average the first P//2 maps and the other
    P - P//2 (one more when P is odd), optionally `preprocess` both half-means (a callable
    (B,H,W) float32 -> (B,H',W'), e.g. the ClickMe blur chain), and take their Spearman rho.
    The image's value is the mean over `n_splits` splits (undefined splits left out); with
    `spearman_brown=True` it is stepped up to full length, 2r/(1+r) -- off by default because
    the paper's ceiling is described as a plain split-half correlation. The score is the mean
    over images. Images with fewer than 2 participants are excluded and counted
    (`n_excluded`); images with no defined split count as undefined.

    Randomness: image i uses ``default_rng([seed, i])``, so its splits do not depend on the
    other images (sharded runs agree with whole runs).
    """
    if n_splits < 1:
        raise InvalidInputError(f"n_splits must be at least 1, got {n_splits}")
    stacks = _participant_stacks(maps_per_participant)
    per_image = np.full(len(stacks), np.nan)
    n_excluded = 0
    for i, maps in enumerate(stacks):
        p = maps.shape[0]
        if p < 2:
            n_excluded += 1
            continue
        rng = np.random.default_rng([seed, i])
        half = p // 2
        # weights (2 * n_splits, P): row s averages the first half of split s, row
        # n_splits + s its second half; one matmul builds every half-mean
        weights = np.zeros((2 * n_splits, p), dtype=np.float64)
        for s in range(n_splits):
            perm = rng.permutation(p)
            weights[s, perm[:half]] = 1.0 / half
            weights[n_splits + s, perm[half:]] = 1.0 / (p - half)
        flat = maps.reshape(p, -1).astype(np.float64)
        means = (weights @ flat).astype(np.float32).reshape((2 * n_splits,) + maps.shape[1:])
        if preprocess is not None:
            means = np.asarray(preprocess(means))
        rho = spearman(means[:n_splits], means[n_splits:])
        if np.isnan(rho).all():
            continue
        r = float(np.nanmean(rho))
        if spearman_brown:
            r = 2.0 * r / (1.0 + r) if r > -1.0 else float("nan")
        per_image[i] = r
    params = {"n_splits": n_splits, "spearman_brown": spearman_brown,
              "preprocess": getattr(preprocess, "__name__", repr(preprocess)) if preprocess else None}
    return Score.from_values(
        per_image, method="split_half_spearman", params=params, n_excluded=n_excluded,
        n_boot=n_boot, seed=seed,
    )


class CenterBias:
    """The centre-bias baseline: how well "the average human map" predicts each human map.

    Images are taken in stream order; image ``i`` is in fold ``i % n_folds``, and each map is scored
    against the mean map of the *other* folds, so no map predicts itself. Two passes over the same
    stream: :meth:`add` every batch (only per-fold sums are kept, so memory does not grow with the
    dataset), then :meth:`score` every batch again, in the same order.
    """

    def __init__(self, n_folds: int = 10) -> None:
        if n_folds < 2:
            raise InvalidInputError(f"n_folds must be at least 2, got {n_folds}")
        self.n_folds = n_folds
        self._sums: np.ndarray | None = None
        self._counts = np.zeros(n_folds, dtype=np.int64)
        self._priors: np.ndarray | None = None
        self.n_added = 0

    def add(self, maps: Any) -> None:
        """Pass 1: accumulate the (B, H, W) human maps of the next stream positions."""
        h = _map_stack(maps, "human_maps").astype(np.float64)
        if self._sums is None:
            self._sums = np.zeros((self.n_folds,) + h.shape[1:], dtype=np.float64)
        elif h.shape[1:] != self._sums.shape[1:]:
            raise InvalidInputError(f"human_maps: shape {h.shape[1:]} differs from earlier maps' {self._sums.shape[1:]}")
        fold = (self.n_added + np.arange(len(h))) % self.n_folds
        np.add.at(self._sums, fold, h)
        self._counts += np.bincount(fold, minlength=self.n_folds)
        self.n_added += len(h)

    def priors(self) -> np.ndarray:
        """(n_folds, H, W) float32: fold k's prior is the mean map of every image not in fold k."""
        if self._priors is None:
            if self._sums is None or self.n_added < 2:
                raise InvalidInputError(f"need at least 2 maps for held-out means, got {self.n_added}")
            total, n_total = self._sums.sum(axis=0), self._counts.sum()
            self._priors = np.stack([(total - self._sums[k]) / max(n_total - self._counts[k], 1)
                                     for k in range(self.n_folds)]).astype(np.float32)
        return self._priors

    def score(self, maps: Any, start: int) -> dict[str, np.ndarray]:
        """Pass 2: per-image Spearman, Dice and IoU (float64 (B,)) of the maps at stream positions
        ``start .. start + B - 1`` against their held-out prior."""
        h = _map_stack(maps, "human_maps")
        prior = self.priors()[(start + np.arange(len(h))) % self.n_folds]
        return {"spearman": spearman(prior, h), "dice": dice(prior, h), "iou": iou(prior, h)}


def _map_stack(x: Any, name: str) -> np.ndarray:
    maps = metric_maps(_to_numpy(x))
    if maps.ndim == 4 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.ndim != 3:
        raise InvalidInputError(f"{name}: expected (N, H, W), got {maps.shape}")
    return maps


def center_bias_baseline(human_maps: Any, *, n_folds: int = 10, n_boot: int = 1000, seed: int = 0) -> Score:
    """:class:`CenterBias` of an in-memory stack of (N, H, W) human maps (N >= 2, 2 <= n_folds <= N):
    the mean rho with its bootstrap error (``seed``: the bootstrap's); ``per_image`` in input order."""
    maps = _map_stack(human_maps, "human_maps")
    if maps.shape[0] < 2:
        raise InvalidInputError(f"human_maps: need at least 2 maps for held-out means, got {maps.shape[0]}")
    if not 2 <= n_folds <= maps.shape[0]:
        raise InvalidInputError(f"n_folds must lie in [2, {maps.shape[0]}] (the number of maps), got {n_folds}")
    baseline = CenterBias(n_folds)
    baseline.add(maps)
    per_image = baseline.score(maps, 0)["spearman"]
    return Score.from_values(per_image, method="center_bias_kfold_spearman", params={"n_folds": n_folds,
                             "folds": "image i in fold i % n_folds"}, n_boot=n_boot, seed=seed)


def alignment_score(
    per_image_rho: Any, *, ceiling: float | Score = CLICKME_PUBLISHED_CEILING,
    n_boot: int = 1000, seed: int = 0,
) -> Score:
    """The paper's alignment: mean per-image Spearman rho (NaN = undefined, counted) with its
    bootstrap error; `normalized` = value / ceiling (a float, or a computed ceiling Score)."""
    ceiling_value = ceiling.value if isinstance(ceiling, Score) else float(ceiling)
    if not np.isfinite(ceiling_value) or ceiling_value <= 0.0:
        raise InvalidInputError(f"ceiling must be a positive number, got {ceiling_value}")
    params: dict[str, Any] = {"ceiling_source": ceiling.method if isinstance(ceiling, Score) else "given"}
    return Score.from_values(
        per_image_rho, method="mean_spearman", params=params, ceiling=ceiling_value,
        n_boot=n_boot, seed=seed,
    )
