"""Score and summary records, and the bootstrap that gives them error bars.

A per-image metric can be undefined (NaN: a constant map has no Spearman rho). Every aggregate
here averages the defined values only and says how many were undefined, so a NaN never turns a
mean into NaN silently, and never disappears silently either.

Bootstrap: resample the defined per-image values with replacement (``numpy.random.default_rng``
seeded), take the mean of each resample; the SD of those means estimates the standard error of
the mean, their quantiles give a percentile confidence interval.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from model_zoo.errors import InvalidInputError

__all__ = ["SCORE_FIELDS", "Score", "Summary", "bootstrap_sd", "bootstrap_ci", "check_score_fields", "score_fields",
           "summarize"]

# Resampling draws at most this many indices at once (memory), in a fixed chunking so that the
# result depends only on (values, n_boot, seed).
_DRAWS_PER_CHUNK = 1 << 22


def _as_values(values: Any) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise InvalidInputError(f"expected a 1-D array of per-image values, got shape {v.shape}")
    return v


def _bootstrap_means(defined: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot,) means of resamples (with replacement) of `defined`, which has no NaN."""
    if n_boot < 2:
        raise InvalidInputError(f"n_boot must be at least 2, got {n_boot}")
    m = defined.size
    if m == 0:
        return np.full(n_boot, np.nan)
    rng = np.random.default_rng(seed)
    rows = max(1, _DRAWS_PER_CHUNK // m)
    means = np.empty(n_boot)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        draws = rng.integers(0, m, size=(stop - start, m))
        means[start:stop] = defined[draws].mean(axis=1)
    return means


def bootstrap_sd(values: Any, *, n_boot: int = 1000, seed: int = 0) -> float:
    """Bootstrap standard deviation of the mean of `values` (1-D; NaNs excluded before
    resampling). NaN when no value is defined; 0.0 for a single value."""
    v = _as_values(values)
    return float(np.std(_bootstrap_means(v[~np.isnan(v)], n_boot, seed), ddof=1))


def bootstrap_ci(
    values: Any, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval (low, high) of the mean of `values` at `level`
    in (0, 1); NaNs excluded. (nan, nan) when no value is defined."""
    if not 0.0 < level < 1.0:
        raise InvalidInputError(f"level must lie in (0, 1), got {level}")
    v = _as_values(values)
    means = _bootstrap_means(v[~np.isnan(v)], n_boot, seed)
    if np.isnan(means).any():
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(low), float(high))


def _jsonable(x: Any) -> Any:
    """Plain-Python copy of `x` for json.dumps; NaN becomes None (JSON has no NaN)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


@dataclass(frozen=True)
class Summary:
    """Mean of the defined per-image values with its bootstrap error.

    `n`: all values; `n_undefined`: NaN values left out of `mean`, `sd` and `ci`.
    `mean` is NaN only when every value is undefined (then `n_undefined == n`).
    """

    mean: float
    n: int
    n_undefined: int
    sd: float
    ci: tuple[float, float]
    level: float
    n_boot: int
    seed: int

    @property
    def n_defined(self) -> int:
        return self.n - self.n_undefined

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {"mean": self.mean, "n": self.n, "n_undefined": self.n_undefined, "sd": self.sd,
             "ci": self.ci, "level": self.level, "n_boot": self.n_boot, "seed": self.seed}
        )


def summarize(values: Any, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Summary:
    """Summary of 1-D per-image values: mean over the defined (non-NaN) ones, their count,
    and the bootstrap SD and percentile CI of that mean (one set of resamples for both)."""
    v = _as_values(values)
    defined = v[~np.isnan(v)]
    means = _bootstrap_means(defined, n_boot, seed)
    if defined.size:
        alpha = (1.0 - level) / 2.0
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        mean, sd, ci = float(defined.mean()), float(np.std(means, ddof=1)), (float(low), float(high))
    else:
        mean, sd, ci = math.nan, math.nan, (math.nan, math.nan)
    return Summary(mean, int(v.size), int(v.size - defined.size), sd, ci, level, n_boot, seed)


@dataclass(frozen=True)
class Score:
    """A score as a researcher reports it (Brain-Score style): the raw value, the ceiling it is
    normalised by (if any), its error, how many images it rests on, and how it was computed.

    `value`: raw mean over defined images (e.g. mean Spearman rho); `sd` / `ci`: bootstrap SD
    and CI of `value` over images; `n`: images scored; `n_undefined`: scored images whose
    value was NaN (left out of the mean); `n_excluded`: images that could not be scored at all
    (e.g. fewer than 2 participants for a ceiling); `ceiling`: the value a perfect model is
    expected to reach, or None; `method` and `params`: the procedure and its parameters
    (seed, n_splits, ...); `per_image`: the per-image values (NaN where undefined or
    excluded), kept out of equality and, by default, out of `to_dict`.
    """

    value: float
    n: int
    n_undefined: int
    sd: float
    ci: tuple[float, float]
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    ceiling: float | None = None
    n_excluded: int = 0
    per_image: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def normalized(self) -> float | None:
        """value / ceiling (the paper's "alignment"), or None without a ceiling."""
        if self.ceiling is None:
            return None
        return self.value / self.ceiling

    def to_dict(self, *, per_image: bool = False) -> dict[str, Any]:
        """JSON-ready dict (NaN -> None); per-image values only when asked."""
        out = {
            "value": self.value, "normalized": self.normalized, "ceiling": self.ceiling,
            "sd": self.sd, "ci": self.ci, "n": self.n, "n_undefined": self.n_undefined,
            "n_excluded": self.n_excluded, "method": self.method, "params": dict(self.params),
        }
        if per_image and self.per_image is not None:
            out["per_image"] = self.per_image
        return _jsonable(out)

    @classmethod
    def from_values(
        cls, values: Any, *, method: str, params: Mapping[str, Any] | None = None,
        ceiling: float | None = None, n_excluded: int = 0, n_boot: int = 1000,
        level: float = 0.95, seed: int = 0,
    ) -> "Score":
        """Score of per-image `values` (NaN = undefined; excluded images, if any, also NaN
        and counted by `n_excluded`, not as undefined)."""
        v = _as_values(values)
        s = summarize(v, n_boot=n_boot, level=level, seed=seed)
        all_params = {"n_boot": n_boot, "level": level, "seed": seed, **(params or {})}
        return cls(
            value=s.mean, n=s.n - n_excluded, n_undefined=s.n_undefined - n_excluded, sd=s.sd,
            ci=s.ci, method=method, params=all_params, ceiling=ceiling, n_excluded=n_excluded,
            per_image=v,
        )


# ---------------------------------------------------------------------------------------------
# The score shape of a record
# ---------------------------------------------------------------------------------------------

#: Fields every result record carries (see :mod:`benchmark.records`).
SCORE_FIELDS = ("score", "score_name", "ceiling", "normalized", "error", "normalized_error", "n", "n_undefined")
_NORMALIZED_TOL = 1e-9


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def score_fields(score: float | None, *, score_name: str, n: int | None, n_undefined: int = 0,
                 error: float | None = None, ceiling: float | None = None) -> dict[str, Any]:
    """The score shape of a record: the raw ``score`` (None when undefined) in ``score_name``'s units,
    its bootstrap ``error`` (SD), the ``ceiling`` it is normalised by (None: no ceiling; a ceiling that
    is not a positive finite number leaves ``normalized`` undefined), ``normalized`` = score / ceiling
    and ``normalized_error`` = error / ceiling, ``n`` images scored and ``n_undefined`` of them left
    out of the mean. The one place these aggregates are computed (runner, baselines, leaderboard)."""
    score, error, ceiling = _finite(score), _finite(error), _finite(ceiling)
    usable = ceiling is not None and ceiling > 0
    return {"score": score, "score_name": score_name, "ceiling": ceiling,
            "normalized": score / ceiling if usable and score is not None else None,
            "error": error, "normalized_error": error / ceiling if usable and error is not None else None,
            "n": None if n is None else int(n), "n_undefined": int(n_undefined)}


def summary_fields(summary: Summary, *, score_name: str, ceiling: float | None = None) -> dict[str, Any]:
    """:func:`score_fields` of a :class:`Summary` of per-image values (mean, bootstrap SD, counts)."""
    return score_fields(summary.mean, score_name=score_name, n=summary.n, n_undefined=summary.n_undefined,
                        error=summary.sd, ceiling=ceiling)


def check_score_fields(record: Mapping[str, Any]) -> list[str]:
    """Problems with a record's score shape (types, ranges, normalized == score / ceiling)."""
    problems = []
    for name in ("score", "ceiling", "normalized", "error", "normalized_error"):
        v = record.get(name)
        if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
            problems.append(f"{name}: expected a finite number or null, found {v!r}")
    if not isinstance(record.get("score_name"), str) or not record.get("score_name"):
        problems.append(f"score_name: expected a non-empty string, found {record.get('score_name')!r}")
    n, n_undef = record.get("n"), record.get("n_undefined")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        problems.append(f"n: expected a non-negative integer or null, found {n!r}")
    elif isinstance(n_undef, bool) or not isinstance(n_undef, int) or not 0 <= n_undef <= (n if n is not None else n_undef):
        problems.append(f"n_undefined: expected an integer in [0, n], found {n_undef!r}")
    for name in ("error", "normalized_error"):
        v = record.get(name)
        if isinstance(v, (int, float)) and v < 0:
            problems.append(f"{name}: expected a non-negative number, found {v!r}")
    if problems:
        return problems
    expected = score_fields(record.get("score"), score_name=record["score_name"], n=n, n_undefined=n_undef,
                            error=record.get("error"), ceiling=record.get("ceiling"))
    for name in ("normalized", "normalized_error"):
        a, b = record.get(name), expected[name]
        if (a is None) != (b is None) or (a is not None and abs(a - b) > _NORMALIZED_TOL * max(1.0, abs(b))):
            problems.append(f"{name}: {a!r} is not score / ceiling ({b!r})")
    return problems
