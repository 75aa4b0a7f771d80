"""Neural predictivity of model features, as the 2023 paper defines it, with its flaws fixed.

For one panel (images x grid x sites) and one layer (features on the same grid):

1. features are min-max normalised per image (over all locations and channels: the paper's step);
2. **leave-one-image-out**: a PLS regression (25 components, centred, unscaled) maps the feature
   vector at each grid location of the other images to all sites' responses at that location, and
   predicts the held-out image's ``g x g`` locations;
3. Pearson r per site across the held-out image's locations; the fold score is the **median over
   sites** (sites whose held-out map is flat are undefined and left out, and counted);
4. the layer score is the mean of the fold scores.

Layer selection. The paper's code reports the best layer *on the test folds* (optimistic: the
choice sees the held-out images). Here the headline is **nested**: for each held-out image, the
layer is chosen by leave-one-out CV on the remaining images only (fits that exclude both the outer
and the inner image), then scored on the held-out image. The optimistic variant is kept, labelled
``best_on_test``. Neither the fit nor the choice for fold ``i`` ever sees image ``i``'s responses or
features (``fold_training_images`` is the single place that forms training sets).

Noise ceiling. With single trials: split-half over trials, Spearman-Brown corrected, per site and
image, reported as the r a noise-free perfect model would reach (``sqrt`` of the reliability).
Without trials (the Arcaro release holds trial means): the paper's inter-channel proxy, fixed:
per image, the largest correlation between two different sites' maps (all sites: the code skips
the last one), averaged over images. The code's ``x - min/(max-min)`` precedence bug subtracts a
constant, which Pearson r ignores, so fixing it changes no number; its correlation per grid row
(``tf_pearson_loss`` on 2-D maps) is replaced by the correlation over the whole map, as in the
metric. The proxy is a heuristic, not a reliability: say so wherever it is shown. The released
code's version, bugs included, stays one switch away (``inter_channel_ceiling(..., paper_bugs=True)``:
last site skipped, precedence slip), for comparison only.

Error bars: 95% percentile bootstrap over held-out images (``scipy.stats.bootstrap``).
Spatial-map score: Spearman rho between the site-mean predicted map and the site-mean recorded map
of each held-out image, at the grid and at ``grid // 4`` (the code's "dice_activity").
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Mapping

import numpy as np

from benchmark.neural import pls
from benchmark.neural.resample import bilinear_resize
from model_zoo.errors import InvalidInputError

N_COMPONENTS = 25
ENGINES = ("moments", "sklearn")
OPTIMISTIC_LABEL = "optimistic: layer chosen on the test folds (the paper's code)"
HELDOUT_LABEL = "layer chosen on training images only (nested leave-one-image-out)"


# ----------------------------------------------------------------------------- small pieces
def prepare_features(features: np.ndarray, normalize: str | None = "minmax") -> np.ndarray:
    """(N, g, g, D) -> (N, g*g, D) float64, min-max normalised per image (``None``: untouched)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 4:
        raise InvalidInputError(f"features must be (image, g, g, channel), got {f.shape}")
    f = f.reshape(len(f), -1, f.shape[-1])
    if normalize == "minmax":
        lo = f.min(axis=(1, 2), keepdims=True)
        span = f.max(axis=(1, 2), keepdims=True) - lo
        f = (f - lo) / np.where(span > 0, span, 1.0)
    elif normalize is not None:
        raise InvalidInputError(f"normalize {normalize!r}: expected 'minmax' or None")
    return f


def pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching columns of (L, C) arrays; NaN where either column is constant."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / den
    tol = 1e-12 * max(float(np.abs(a).max(initial=0)), float(np.abs(b).max(initial=0)), 1e-300)
    r[~(np.sqrt((a * a).sum(0)) > tol) | ~(np.sqrt((b * b).sum(0)) > tol)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


def fold_training_images(n_images: int, held_out: tuple[int, ...]) -> list[int]:
    """Training images of a fold: every image except ``held_out`` (the only place folds are formed)."""
    train = [i for i in range(n_images) if i not in held_out]
    assert not set(train) & set(held_out)
    return train


class _Fitter:
    """Fits of one layer on any subset of images, by moments (default) or scikit-learn."""

    def __init__(self, x: np.ndarray, y: np.ndarray, n_components: int, engine: str):
        if engine not in ENGINES:
            raise InvalidInputError(f"engine {engine!r}: expected one of {ENGINES}")
        self.x, self.y, self.k, self.engine = x, y, n_components, engine
        self.moments = pls.image_moments(x, y) if engine == "moments" else None

    def fit_without(self, held_out: tuple[int, ...]) -> pls.PLSModel:
        train = fold_training_images(len(self.x), held_out)
        if self.engine == "moments":
            return pls.fit_moments(self.moments.total(held_out), self.k)
        d, c = self.x.shape[-1], self.y.shape[-1]
        return pls.fit_sklearn(self.x[train].reshape(-1, d), self.y[train].reshape(-1, c), self.k)


# ----------------------------------------------------------------------------- per layer
@dataclass
class LayerScores:
    """Leave-one-image-out results of one layer. ``fold_scores`` (N,), ``site_r`` (N, S),
    ``predictions`` (N, g, g, S); ``inner`` (N, N): entry [o, j] is the median r on image j of the
    fit without images o and j (NaN on the diagonal), used to choose layers for outer fold o."""

    layer: str
    fold_scores: np.ndarray
    site_r: np.ndarray
    predictions: np.ndarray
    n_components: int
    inner: np.ndarray | None = None

    @property
    def score(self) -> float:
        return float(np.nanmean(self.fold_scores)) if np.isfinite(self.fold_scores).any() else float("nan")


def score_layer(features: np.ndarray, responses: np.ndarray, *, layer: str = "layer",
                n_components: int = N_COMPONENTS, normalize: str | None = "minmax",
                engine: str = "moments", inner: bool = True) -> LayerScores:
    """Leave-one-image-out predictivity of one layer (module docstring, steps 1-4).

    ``features`` (N, g, g, D) on the recording grid; ``responses`` (N, g, g, S). With ``inner``,
    also the leave-two-out fits needed for nested layer selection.
    """
    responses = np.asarray(responses, np.float64)
    if features.shape[:3] != responses.shape[:3]:
        raise InvalidInputError(f"layer {layer}: features {features.shape[:3]} and responses "
                                f"{responses.shape[:3]} differ in images or grid")
    n, g, _, s = responses.shape
    x = prepare_features(features, normalize)
    y = responses.reshape(n, -1, s)
    fitter = _Fitter(x, y, n_components, engine)
    preds = np.zeros_like(y)
    site_r = np.zeros((n, s))
    k_used = 0
    for i in range(n):
        model = fitter.fit_without((i,))
        k_used = max(k_used, model.n_components)
        preds[i] = model.predict(x[i])
        site_r[i] = pearson_columns(preds[i], y[i])
    folds = np.array([_median(r) for r in site_r])
    inner_m = None
    if inner:
        inner_m = np.full((n, n), np.nan)
        for i, j in combinations(range(n), 2):
            model = fitter.fit_without((i, j))
            inner_m[i, j] = _median(pearson_columns(model.predict(x[j]), y[j]))
            inner_m[j, i] = _median(pearson_columns(model.predict(x[i]), y[i]))
    return LayerScores(layer, folds, site_r, preds.reshape(n, g, g, s), k_used, inner_m)


def choose_layers(layers: list[LayerScores]) -> list[int]:
    """For each outer fold o, the index of the layer with the best inner CV score (mean over the
    inner held-out images j != o of ``inner[o, j]``): a choice that never looks at image o."""
    table = np.stack([np.nanmean(np.where(np.isfinite(l.inner), l.inner, np.nan), axis=1)
                      if l.inner is not None else _missing_inner(l) for l in layers])  # (L, N)
    table = np.where(np.isfinite(table), table, -np.inf)
    return [int(np.argmax(table[:, o])) for o in range(table.shape[1])]


def _missing_inner(layer: LayerScores) -> np.ndarray:
    raise InvalidInputError(f"layer {layer.layer}: scored without inner folds (inner=False); cannot select layers")


# ----------------------------------------------------------------------------- ceilings
@dataclass
class Ceiling:
    value: float
    method: str
    description: str
    per_image: np.ndarray
    reliability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "method": self.method, "description": self.description,
                "reliability": self.reliability}


def spearman_brown(r: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Reliability of a measure ``factor`` times longer, from reliability ``r``."""
    return factor * r / (1 + (factor - 1) * r)


def split_half_ceiling(trials: np.ndarray, *, n_splits: int = 20, seed: int = 0) -> Ceiling:
    """Split-half noise ceiling from single trials (T, N, g, g, S) (NaN = missing trial).

    Per split: the trials are shuffled and halved (``T // 2`` each), each half averaged; per image
    and site, the Pearson r between the two halves' maps, averaged over splits, Spearman-Brown
    corrected from ``T // 2`` to ``T`` trials (reliability rho). The ceiling per image and site is ``sqrt(max(rho, 0))``,
    the expected r between a noise-free perfect model and the trial mean; it is aggregated like the
    score (median over sites, mean over images).
    """
    trials = np.asarray(trials, np.float64)
    if trials.ndim != 5 or trials.shape[0] < 2:
        raise InvalidInputError(f"trials must be (trial >= 2, image, g, g, site), got {trials.shape}")
    t, n, g, _, s = trials.shape
    rng = np.random.default_rng(seed)
    acc = np.zeros((n, s))
    counts = np.zeros((n, s))
    flat = trials.reshape(t, n, g * g, s)
    half_n = t // 2  # an odd count drops one (random) trial per split; the correction goes to all t
    for _ in range(n_splits):
        order = rng.permutation(t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN positions in a half
            a = np.nanmean(flat[order[:half_n]], axis=0)
            b = np.nanmean(flat[order[half_n: 2 * half_n]], axis=0)
        for i in range(n):
            ok = np.isfinite(a[i]).all(1) & np.isfinite(b[i]).all(1)
            r = pearson_columns(a[i][ok], b[i][ok])
            good = np.isfinite(r)
            acc[i, good] += r[good]
            counts[i, good] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        half = acc / counts
    rel = spearman_brown(half, t / half_n)
    ceiling = np.sqrt(np.clip(rel, 0, 1))
    per_image = np.array([_median(c) for c in ceiling])
    return Ceiling(float(np.nanmean(per_image)), "split-half",
                   f"split-half over {t} trials ({n_splits} random splits), Spearman-Brown corrected; "
                   "ceiling = sqrt(reliability), median over sites, mean over images",
                   per_image, reliability=float(np.nanmean([_median(r) for r in rel])))


def inter_channel_ceiling(responses: np.ndarray, *, paper_bugs: bool = False) -> Ceiling:
    """The paper's proxy, fixed (module docstring): per image, the largest Pearson r between two
    different sites' maps, averaged over images. ``responses`` (N, g, g, S), S >= 2.

    ``paper_bugs=True`` reproduces the released ``ceiling_score`` for comparison: maps "normalised"
    as ``x - min / (max - min)`` (operator precedence: a constant shift, which leaves every r as it
    is) and the last site left out of the pairs (its loops stop one short). Never the default.
    """
    responses = np.asarray(responses, np.float64)
    if responses.ndim != 4:
        raise InvalidInputError(f"responses must be (image, g, g, site), got {responses.shape}")
    n, g, _, s = responses.shape
    if s < (3 if paper_bugs else 2):
        raise InvalidInputError(f"the inter-channel ceiling needs at least {3 if paper_bugs else 2} sites, got {s}")
    per_image = np.full(n, np.nan)
    for i in range(n):
        maps = responses[i].reshape(-1, s)
        if paper_bugs:
            lo, hi = maps.min(0), maps.max(0)
            with np.errstate(invalid="ignore", divide="ignore"):
                maps = maps - lo / (hi - lo)  # sic: the released code's precedence
            maps = maps[:, : s - 1]
        keep = np.isfinite(maps).all(0) & (maps.std(0) > 0)
        if keep.sum() < 2:
            continue
        with np.errstate(invalid="ignore"):
            c = np.corrcoef(maps[:, keep].T)
        np.fill_diagonal(c, -np.inf)
        per_image[i] = float(np.max(c))
    if paper_bugs:
        return Ceiling(float(np.nanmean(per_image)), "inter-channel-paper-BUGGY",
                       "the released ceiling_score with its bugs (last site skipped; precedence slip): "
                       "comparison only", per_image)
    return Ceiling(float(np.nanmean(per_image)), "inter-channel",
                   "proxy (no single trials): per image, the highest correlation between two different "
                   "sites' maps, mean over images (the 2023 paper's ceiling_score, with its bugs fixed)",
                   per_image)


def ceiling_for(responses: np.ndarray, trials: np.ndarray | None, *, seed: int = 0) -> Ceiling:
    """Split-half when single trials exist, else the inter-channel proxy."""
    if trials is not None and trials.shape[0] >= 2:
        return split_half_ceiling(trials, seed=seed)
    return inter_channel_ceiling(responses)


# ----------------------------------------------------------------------------- statistics
@dataclass
class Interval:
    mean: float
    sd: float | None          # bootstrap standard error
    low: float | None
    high: float | None
    n: int
    distribution: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "ci95": [self.low, self.high], "n": self.n}


def bootstrap_mean(values: np.ndarray, *, n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Mean of the finite ``values`` with a 95% percentile bootstrap interval (scipy)."""
    from scipy.stats import bootstrap

    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return Interval(float("nan"), None, None, None, 0)
    if len(v) < 2 or np.ptp(v) == 0:
        return Interval(float(v.mean()), 0.0 if len(v) > 1 else None, float(v.mean()), float(v.mean()), len(v),
                        np.full(n_resamples, v.mean()))
    res = bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=0.95, method="percentile",
                    rng=np.random.default_rng(seed))
    return Interval(float(v.mean()), float(res.standard_error), float(res.confidence_interval.low),
                    float(res.confidence_interval.high), len(v), res.bootstrap_distribution)


def combine_intervals(parts: list[Interval]) -> Interval:
    """Mean over independent panels, its interval from the panels' bootstrap distributions."""
    dists = [p.distribution for p in parts if p.distribution is not None]
    mean = float(np.mean([p.mean for p in parts]))
    if len(dists) != len(parts):
        return Interval(mean, None, None, None, sum(p.n for p in parts))
    d = np.mean(np.stack(dists), axis=0)
    return Interval(mean, float(d.std(ddof=1)), float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)),
                    sum(p.n for p in parts), d)


def spatial_map_scores(predictions: np.ndarray, responses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, Spearman rho between site-mean predicted and recorded maps (N, g, g, S), at the
    grid and at ``grid // 4`` (bilinear; NaN when the grid is below 8 or a map is flat)."""
    from scipy.stats import spearmanr

    pm = predictions.mean(-1, keepdims=True)
    rm = responses.mean(-1, keepdims=True)
    g = pm.shape[1]
    coarse = g // 4
    small_p = bilinear_resize(pm, coarse) if coarse >= 2 else None
    small_r = bilinear_resize(rm, coarse) if coarse >= 2 else None
    full, low = np.full(len(pm), np.nan), np.full(len(pm), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: rho undefined, NaN
        for i in range(len(pm)):
            full[i] = spearmanr(pm[i].ravel(), rm[i].ravel()).statistic
            if small_p is not None:
                low[i] = spearmanr(small_p[i].ravel(), small_r[i].ravel()).statistic
    return full, low


# ----------------------------------------------------------------------------- one panel
def _single_thread_blas() -> Any:
    """One BLAS thread for the many small fits: multi-threaded OpenBLAS on matrices this small is
    slower, and 20x slower on a busy machine (measured: 1000 eigh of 40x40, 8 s vs 0.4 s)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings threadpoolctl; without it, run as configured
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


@dataclass
class PanelResult:
    panel: str
    layers: list[LayerScores]
    chosen: list[int]               # per held-out image, index into ``layers``
    heldout: Interval               # the headline: nested layer selection
    best_on_test: Interval          # the paper's optimistic variant
    best_layer: str
    ceiling: Ceiling
    spatial_rho: float
    spatial_rho_coarse: float
    layer_intervals: list[Interval]
    meta: dict[str, Any]
    spatial_per_image: tuple[np.ndarray, np.ndarray] = (np.zeros(0), np.zeros(0))  # (full, coarse) per image

    @property
    def chosen_layers(self) -> list[str]:
        return [self.layers[k].layer for k in self.chosen]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the per-panel part of a result record)."""
        counts: dict[str, int] = {}
        for name in self.chosen_layers:
            counts[name] = counts.get(name, 0) + 1
        ceil = self.ceiling.value
        return {
            **self.meta,
            "predictivity": self.heldout.mean,
            "predictivity_label": HELDOUT_LABEL,
            "predictivity_sd": self.heldout.sd,
            "predictivity_ci95": [self.heldout.low, self.heldout.high],
            "fold_scores": [self.layers[k].fold_scores[i] for i, k in enumerate(self.chosen)],
            "chosen_layers": self.chosen_layers,
            "chosen_layer_counts": counts,
            "best_on_test": {"label": OPTIMISTIC_LABEL, "layer": self.best_layer, **self.best_on_test.to_dict()},
            "ceiling": self.ceiling.to_dict(),
            "predictivity_normalized": self.heldout.mean / ceil if ceil and np.isfinite(ceil) and ceil > 0 else None,
            "spatial_map_spearman": self.spatial_rho,
            "spatial_map_spearman_coarse": self.spatial_rho_coarse,
            "per_layer": [{"layer": l.layer, "score": l.score, "ci95": [iv.low, iv.high],
                           "n_components": l.n_components,
                           "undefined_sites": int(np.isnan(l.site_r).sum())}
                          for l, iv in zip(self.layers, self.layer_intervals)],
        }


def score_panel(responses: np.ndarray, layer_features: Mapping[str, np.ndarray], *, panel: str = "panel",
                trials: np.ndarray | None = None, n_components: int = N_COMPONENTS,
                normalize: str | None = "minmax", engine: str = "moments", n_resamples: int = 2000,
                seed: int = 0) -> PanelResult:
    """Score every layer on one panel, choose layers on held-out images, add ceiling and CIs.

    ``responses`` (N, g, g, S); ``layer_features`` maps layer names (in depth order) to
    (N, g, g, D) features on the same grid; ``trials`` optional (T, N, g, g, S).
    """
    if not layer_features:
        raise InvalidInputError(f"{panel}: no layers to score")
    responses = np.asarray(responses, np.float64)
    with _single_thread_blas():
        layers = [score_layer(f, responses, layer=name, n_components=n_components, normalize=normalize,
                              engine=engine) for name, f in layer_features.items()]
    chosen = choose_layers(layers)
    n = responses.shape[0]
    heldout_folds = np.array([layers[k].fold_scores[i] for i, k in enumerate(chosen)])
    preds = np.stack([layers[k].predictions[i] for i, k in enumerate(chosen)])
    spatial, spatial_coarse = spatial_map_scores(preds, responses)
    intervals = [bootstrap_mean(l.fold_scores, n_resamples=n_resamples, seed=seed) for l in layers]
    best = int(np.nanargmax([l.score if np.isfinite(l.score) else -np.inf for l in layers]))
    meta = {"panel": panel, "n_images": n, "grid": int(responses.shape[1]), "n_sites": int(responses.shape[3]),
            "n_components": n_components, "normalize": normalize, "engine": engine, "n_layers": len(layers)}
    return PanelResult(panel, layers, chosen, bootstrap_mean(heldout_folds, n_resamples=n_resamples, seed=seed),
                       intervals[best], layers[best].layer, ceiling_for(responses, trials, seed=seed),
                       float(np.nanmean(spatial)) if np.isfinite(spatial).any() else float("nan"),
                       float(np.nanmean(spatial_coarse)) if np.isfinite(spatial_coarse).any() else float("nan"),
                       intervals, meta, (spatial, spatial_coarse))
