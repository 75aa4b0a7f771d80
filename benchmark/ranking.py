"""Exact, batched Spearman correlation of saliency maps against fixed human maps.

Spearman's rho is the Pearson correlation of average ranks (ties share the mean of the ranks
they span), as in ``scipy.stats.spearmanr`` on the two flattened maps. The human maps never
change, so :func:`rank_maps` ranks them once into a :class:`RankedMaps`, and
:func:`spearman_ranked` then only has to rank the model maps.

How the CPU path stays within about one plain ``np.sort`` of the model maps (measured with
``bench/bench_spearman.py``; see there for the numbers):

* float32 maps of >= ``_ROW_PATH_MIN_PIXELS`` pixels (saliency maps) are scored one map at a
  time, so every temporary stays in cache. Exact zeros (ReLU dead regions, |grad| = 0) are left
  out of the sort -- their average rank follows from their count. The other pixels' floats are
  mapped to order-preserving uint32 keys and sorted, each key carrying a uint32 value (the bits of
  the pixel's reference rank when scoring, so no gather follows; its index when ranking), by
  whichever of two kernels is faster on this CPU, timed once per process, map size and input kind
  (:func:`sort_kernel`): a two-pass LSD radix sort (numpy's stable argsort of 16-bit keys is a
  radix sort) or numpy's SIMD sort of (key << 32 | value) uint64 words. Maps with few distinct
  values (binary masks, coarse quantisation) are not sorted at all: each pixel's value index is
  read from a 64 KiB table addressed by 16 bits of its float32 pattern, each value's average rank
  follows from counts, and one gather and dot sum the reference ranks per value
  (:func:`_value_index`, with a cost model choosing).
* Without ties the rank at sorted position j is j, so the numerator of the correlation is a
  dot product of the centred positions with the human ranks gathered in sorted order, and the
  denominator is the closed form n(n^2-1)/12. Tied runs are found by comparing sorted
  neighbours, and only their elements are corrected (few in a continuous map), or, when many
  elements are tied, each run by two segment sums.
* Other maps (float64 values not representable in float32, small maps) take a batched path:
  each float32 value is widened to float64 with its pixel index in the 29 spare mantissa
  bits, so one ``np.sort`` per chunk returns sorted values and permutation together.
* Human ranks are stored as float32 (average ranks are half-integers, exact below 2^23 pixels);
  every sum is accumulated in float64 and is exact (half-integer products below 2^52).

Precision convention (``shared/reference/conventions.md``): maps are cast to float32 before any
metric, as the paper's code does (its maps are float32 tensors): float16 / integer maps are
widened (exactly), float64 maps are rounded, so two float64 values closer than float32 resolution
tie, and a map constant in float32 has no rho. :func:`metric_maps` is that one rule, also used by
Dice/IoU in :mod:`benchmark.metrics`. ``ALIGNBENCH_METRIC_DTYPE=native`` switches to keeping
float64 maps exactly (a deliberate deviation from the paper; float16 is still widened to float32).

CUDA tensors take a torch path (sort on the device). Neither torch nor TensorFlow is imported
unless a torch tensor is passed in.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_zoo.errors import InvalidInputError

__all__ = ["METRIC_DTYPE_ENV", "SORT_KERNEL_ENV", "RankedMaps", "metric_dtype", "metric_maps", "rank_maps", "spearman_ranked",
           "spearman", "spearman_ranked_torch", "sort_kernel"]

METRIC_DTYPE_ENV = "ALIGNBENCH_METRIC_DTYPE"
METRIC_DTYPES = ("float32", "native")  # float32: the paper's cast (default); native: float64 kept exactly

_TAG_BITS = 29  # mantissa bits a float64 has beyond a float32's
_TAG_MASK = np.uint64((1 << _TAG_BITS) - 1)
_MAX_PIXELS = 1 << 23  # float32 average ranks (k + 0.5) stay exact below this
_CHUNK = 64  # maps sorted per batch: bounds temporaries (~25 MB each at 224x224)
_DENSE_TIES_FRACTION = 16  # above 1/16 of the pixels tied, correct ties in one dense pass
_ROW_PATH_MIN_PIXELS = 4096  # float32 maps this big are scored one map at a time (L2-sized work)
_COUNT_SAMPLE = 1024  # pixels sampled to propose a map's distinct values
_COUNT_MAX_VALUES = 24  # never rank a map with more distinct values than this by counting
_COUNT_BREAK_EVEN = 16  # see the cost model in _value_index
_HASH_PASSES = 6  # the same cost model: the table lookup's passes over the pixels


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------

def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _map_shape(shape: tuple[int, ...], name: str) -> tuple[int, tuple[int, ...]]:
    """(number of maps, shape of one map) for a stack: (H,W) is one map; (N,H,W) and
    (N,H,W,1) are N maps."""
    if len(shape) == 2:
        return 1, tuple(shape)
    if len(shape) == 3:
        return shape[0], tuple(shape[1:])
    if len(shape) == 4 and shape[-1] == 1:
        return shape[0], tuple(shape[1:3])
    raise InvalidInputError(
        f"{name}: expected maps of shape (H,W), (N,H,W) or (N,H,W,1), got {tuple(shape)}"
    )


def _as_rows(maps: Any, name: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flatten a stack of maps to (N, H*W), keeping float32 where that is exact."""
    x = np.asarray(maps)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InvalidInputError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise InvalidInputError(f"{name}: complex maps have no ranking")
    n_maps, map_shape = _map_shape(x.shape, name)
    n_pix = int(np.prod(map_shape))
    if n_pix < 2:
        raise InvalidInputError(f"{name}: a map needs at least 2 pixels, got shape {map_shape}")
    if n_pix >= _MAX_PIXELS:
        raise InvalidInputError(f"{name}: maps of {n_pix} pixels exceed the {_MAX_PIXELS} supported")
    return x.reshape(n_maps, n_pix), map_shape


def metric_dtype() -> str:
    """The active precision convention: ``"float32"`` (the paper's cast, the default) or ``"native"``
    (float64 maps kept exactly), from ``$ALIGNBENCH_METRIC_DTYPE`` (read on each call)."""
    value = os.environ.get(METRIC_DTYPE_ENV, "").strip().lower() or "float32"
    if value not in METRIC_DTYPES:
        raise InvalidInputError(f"{METRIC_DTYPE_ENV}={value!r}: expected one of {', '.join(METRIC_DTYPES)}")
    return value


def metric_maps(x: np.ndarray) -> np.ndarray:
    """`x` in the precision metrics are computed in: float32 (a view when it already is), or under
    ``ALIGNBENCH_METRIC_DTYPE=native`` float64 for values float32 cannot hold exactly."""
    if x.dtype == np.float32:
        return x
    if metric_dtype() == "float32" or x.dtype in (np.float16, np.bool_, np.int8, np.uint8, np.int16, np.uint16):
        return x.astype(np.float32)
    wide = x.astype(np.float64)
    narrow = wide.astype(np.float32)
    if np.array_equal(narrow, wide, equal_nan=True):
        return narrow
    return wide


# ---------------------------------------------------------------------------------------------
# Sorting: the sorted order of every row, and its tied runs
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sorted:
    """Rows sorted ascending. `order` is the flat index (row * n + pixel) of the value at each
    sorted position, int64 (M, n); `keys` compare equal exactly where values tie; `undefined`
    marks rows with a NaN."""

    order: np.ndarray
    keys: np.ndarray
    undefined: np.ndarray


def _sort_rows(rows: np.ndarray, base_rows: np.ndarray | None = None) -> _Sorted:
    """Sort each row of `rows` (M, n); `order` indexes a flat array in which row i starts at
    base_rows[i] * n (default: row i itself)."""
    m, n = rows.shape
    base = np.arange(m, dtype=np.int64) if base_rows is None else base_rows
    offsets = (base * n)[:, None]
    if rows.dtype == np.float32:
        # Adding +0.0 in float64 turns -0.0 into +0.0, so the two zeros land in one run.
        tagged = np.add(rows, 0.0, dtype=np.float64)
        bits = tagged.view(np.uint64)
        bits |= np.arange(n, dtype=np.uint64)
        tagged.sort(axis=-1)
        # +-inf tagged with a non-zero index reads as NaN and sorts last, like a real NaN:
        # re-sort just those rows exactly (rare).
        suspect = np.isnan(tagged[:, -1])
        order = (bits & _TAG_MASK).view(np.int64)
        order += offsets
        bits >>= np.uint64(_TAG_BITS)  # in place: fewer 25 MB temporaries, fewer page faults
        keys = bits
        undefined = np.zeros(m, dtype=bool)
        if suspect.any():
            slow = _sort_rows(rows[suspect].astype(np.float64), base[suspect])
            order[suspect] = slow.order
            keys[suspect] = slow.keys.view(np.uint64)
            undefined[suspect] = slow.undefined
        return _Sorted(order, keys, undefined)
    perm = np.argsort(rows, axis=-1, kind="stable")
    values = np.take_along_axis(rows, perm, axis=-1)
    undefined = np.isnan(values[:, -1])  # argsort puts NaN last
    values = values + 0.0  # -0.0 -> +0.0, then compare bit patterns like the float32 path
    return _Sorted(perm + offsets, values.view(np.uint64), undefined)


@dataclass(frozen=True)
class _Runs:
    """Runs of >= 2 tied values, in sorted order: flat sorted position of the first element
    (`start`, row * n + j), `length`, `row`; all int64 (K,)."""

    start: np.ndarray
    length: np.ndarray
    row: np.ndarray

    @property
    def n_elements(self) -> int:
        return int(self.length.sum())


def _tied_runs(keys: np.ndarray) -> _Runs:
    """Tied runs of sorted rows, found from the edges of the "equal to the next" mask, so the
    work is O(pixels) in cheap bool passes plus O(runs) -- a long ReLU-zero run costs no more
    than a pair."""
    m, n = keys.shape
    # column c + 1 of `eq` says whether sorted elements c and c + 1 tie; columns 0 and n are
    # False, so within each row rises (run starts) and falls (run ends) alternate
    eq = np.zeros((m, n + 1), dtype=bool)
    np.equal(keys[:, 1:], keys[:, :-1], out=eq[:, 1:n])
    edges = np.flatnonzero(eq[:, 1:] != eq[:, :-1])
    start, end = edges[0::2], edges[1::2]
    return _Runs(start, end - start + 1, start // n)


def _sparse_offsets(runs: _Runs) -> tuple[np.ndarray, np.ndarray]:
    """(flat sorted positions of tied elements, average rank - position there); O(tied)."""
    length = runs.length
    first = np.cumsum(length) - length
    within = np.arange(runs.n_elements) - np.repeat(first, length)
    pos = np.repeat(runs.start, length) + within
    return pos, np.repeat((length - 1) / 2.0, length) - within


def _dense_offsets(runs: _Runs, size: int) -> np.ndarray:
    """(size,) float64: average rank - position at every sorted position (0 where untied).

    On a run [s, e] with midpoint c the offset is the ramp c - j, which is the double cumulative
    sum of four point masses (at s, s+1, e+1, e+2); runs have disjoint supports, so their masses
    add. Half-integers: the sums are exact in float64.
    """
    s = runs.start
    e = s + runs.length - 1
    mid = (s + e) / 2.0
    dd = np.zeros(size + 2)
    np.add.at(dd, s, mid - s)
    np.add.at(dd, s + 1, s - mid - 1.0)
    np.add.at(dd, e + 1, e - mid + 1.0)
    np.add.at(dd, e + 2, mid - e)
    return np.cumsum(np.cumsum(dd[:size]))


def _centred_ss(n: int, m: int, runs: _Runs) -> np.ndarray:
    """Sum of squared centred average ranks of each row: n(n^2-1)/12 - sum (L^3-L)/12."""
    length = runs.length.astype(np.float64)
    tie_term = np.bincount(runs.row, weights=(length**3 - length) / 12.0, minlength=m)
    return n * (n * n - 1.0) / 12.0 - tie_term


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RankedMaps:
    """Average ranks of a fixed stack of maps (usually the human maps), computed once.

    `ranks`: (N, H*W) float32 (float64 for huge maps), 1-based average ranks as
    ``scipy.stats.rankdata`` gives them; `ss`: (N,) float64 sum of squared centred ranks
    (0 for a constant map); `undefined`: (N,) bool, True where a map is constant or has a NaN
    (its rho is NaN); `map_shape`: (H, W). `ranks` may be read-only (a view into a prepared
    dataset's memory map, :attr:`benchmark.datasets.Batch.human_ranks`).
    """

    ranks: np.ndarray
    ss: np.ndarray
    undefined: np.ndarray
    map_shape: tuple[int, ...]
    _device_cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.ranks.shape[0]

    @property
    def n_pixels(self) -> int:
        return self.ranks.shape[1]

    def ranks_on(self, device: Any) -> Any:
        """The ranks as a torch tensor on `device`, copied once and cached."""
        key = str(device)
        if key not in self._device_cache:
            import torch

            ranks = self.ranks if self.ranks.flags.writeable else np.array(self.ranks)  # e.g. a prepared copy's map
            self._device_cache[key] = torch.as_tensor(ranks).to(device)
        return self._device_cache[key]


def rank_maps(maps: Any) -> RankedMaps:
    """Rank each map of a stack (N,H,W) / (N,H,W,1) / (H,W) once, for reuse by
    :func:`spearman_ranked`. Accepts numpy arrays and torch tensors (ranked on the CPU)."""
    if _is_torch(maps):
        maps = maps.detach().cpu().numpy()
    rows, map_shape = _as_rows(maps, "maps")
    rows = metric_maps(rows)
    m, n = rows.shape
    ranks = np.empty((m, n), dtype=np.float32)  # exact: n < _MAX_PIXELS
    ss = np.empty(m)
    undefined = np.empty(m, dtype=bool)
    if rows.dtype == np.float32 and n >= _ROW_PATH_MIN_PIXELS:  # one map at a time (see _row_sort)
        for i in range(m):
            ranks[i], ss[i], undefined[i] = _row_ranks(rows[i])
        undefined |= ss <= 0.0
        return RankedMaps(ranks, ss, undefined, map_shape)
    for lo in range(0, m, _CHUNK):  # chunks bound the temporaries for big stacks
        chunk = rows[lo : lo + _CHUNK]
        k = chunk.shape[0]
        srt = _sort_rows(chunk)
        runs = _tied_runs(srt.keys)
        sorted_rank = np.tile(np.arange(1.0, n + 1.0), k)
        sorted_rank += _dense_offsets(runs, k * n)
        flat = np.empty(k * n, dtype=np.float32)
        flat[srt.order.reshape(-1)] = sorted_rank
        ranks[lo : lo + k] = flat.reshape(k, n)
        ss[lo : lo + k] = _centred_ss(n, k, runs)
        undefined[lo : lo + k] = srt.undefined
    undefined |= ss <= 0.0
    return RankedMaps(ranks, ss, undefined, map_shape)


def spearman_ranked(ranked: RankedMaps, maps: Any, index: Any = None) -> np.ndarray:
    """Spearman rho of each model map against precomputed ranks.

    `maps`: (M,H,W), (M,H,W,1) or (H,W) model maps (numpy, or torch; CUDA tensors are ranked on
    their GPU). `index`: (M,) integer rows of `ranked` to compare with, in order (default: all
    rows, M == len(ranked)); repeating a row compares several maps with the same reference.
    Returns float64 (M,): rho in [-1, 1], NaN where either map is constant or has a NaN.
    """
    rows_idx = _resolve_index(ranked, index)
    if _is_torch(maps) and maps.device.type != "cpu":
        return _spearman_ranked_torch(ranked, maps, rows_idx)
    if _is_torch(maps):
        maps = maps.detach().numpy()
    rows, map_shape = _as_rows(maps, "maps")
    _check_match(ranked, rows.shape[0], map_shape, rows_idx)
    rows = metric_maps(rows)
    m, n = rows.shape
    rows_idx = np.arange(len(ranked)) if rows_idx is None else rows_idx
    num, ss, undefined = np.empty(m), np.empty(m), np.empty(m, dtype=bool)
    if rows.dtype == np.float32 and n >= _ROW_PATH_MIN_PIXELS and ranked.ranks.dtype == np.float32:
        positions = np.arange(n, dtype=np.float64)
        for i in range(m):
            num[i], ss[i], undefined[i] = _row_numerator(rows[i], ranked.ranks[rows_idx[i]], positions)
    else:
        for lo in range(0, m, _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            num[sl], ss[sl], undefined[sl] = _numerator(rows[sl], ranked.ranks, rows_idx[sl])
    return _finish(num, ss, ranked.ss[rows_idx], undefined | ranked.undefined[rows_idx])


def _numerator(rows: np.ndarray, ref_ranks: np.ndarray, ref_rows: np.ndarray):
    """For model rows (k, n) against ref_ranks[ref_rows]: sum of (centred average rank of the
    model) x (reference rank) per row, the model's centred sum of squares, undefined rows."""
    k, n = rows.shape
    # reference ranks in the model's sorted order; flat index = ref row * n + pixel
    srt = _sort_rows(rows, base_rows=ref_rows)
    gathered = ref_ranks.reshape(-1).take(srt.order)
    # the reference mean drops out because the model's centred ranks sum to zero
    centred_pos = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    runs = _tied_runs(srt.keys)
    if runs.n_elements * _DENSE_TIES_FRACTION <= k * n:
        num = np.einsum("ij,j->i", gathered, centred_pos)
        if runs.start.size:
            pos, offset = _sparse_offsets(runs)
            num += np.bincount(pos // n, weights=offset * gathered.reshape(-1)[pos], minlength=k)
    else:  # many tied elements (e.g. half the map is exactly zero): one dense pass is cheaper
        weights = _dense_offsets(runs, k * n).reshape(k, n)
        weights += centred_pos
        num = np.einsum("ij,ij->i", gathered, weights)
    return num, _centred_ss(n, k, runs), srt.undefined


# ---------------------------------------------------------------------------------------------
# Per-map path for big float32 maps (what saliency maps are)
# ---------------------------------------------------------------------------------------------

def _row_numerator(x: np.ndarray, h: np.ndarray, positions: np.ndarray) -> tuple[float, float, bool]:
    """For one float32 model map `x` (n,) against reference ranks `h` (n,) float32 (1-based
    average ranks, summing to n(n+1)/2): (sum of centred model average rank x reference rank,
    the model's centred sum of squares, whether `x` has a NaN). `positions` is arange(n) float64.

    Every term is a half- or quarter-integer product summed below 2^50, so the float64 sums are
    exact, whatever their order.
    """
    n = x.size
    indexed = _value_index(x)
    if indexed is not None:  # few distinct values: counted
        index, counts = indexed
        counts = counts.astype(np.float64)
        centred = _value_centred_ranks(counts, n)
        # a gather from the d-entry table and one dot: cheaper than a weighted bincount, and
        # exact as well (half-integer products, see above)
        num = float(np.einsum("i,i->", centred.take(index), h))  # float64 sums; no BLAS threads
        return num, _ss(n, float(np.sum(counts**3 - counts))), False
    srt = _row_sort(x, h.view(np.uint32))  # each pixel carries its reference rank's bits
    if srt is None:
        return float("nan"), float("nan"), True
    v, carried, z, neg = srt
    m = n - z
    g = carried.view(np.float32).astype(np.float64)  # reference ranks in sorted order
    c0 = (n - 1) / 2.0
    g_sum = float(g.sum()) if z else n * (n + 1) / 2.0  # without zeros left out: every rank, 1..n
    # sorted non-zero j sits at full position j (negatives) or j + z (positives)
    positive_sum = g_sum if neg == 0 else float(g[neg:].sum())
    num = float(np.einsum("i,i->", g, positions[:m])) + z * positive_sum - c0 * g_sum  # no BLAS threads
    if z:
        zero_centred = neg + (z - 1) / 2.0 - c0
        num += zero_centred * (n * (n + 1) / 2.0 - g_sum)  # reference ranks at the zeros
    runs, tie_term = _runs_and_tie_term(v, z)
    if runs is not None:
        start, end, length = runs
        n_tied = int(length.sum())
        if n_tied * _DENSE_TIES_FRACTION <= m:  # few tied elements (a continuous map): visit only them
            pos, offset = _sparse_offsets(_Runs(start, length, start))
            num += float(np.dot(offset, g.take(pos)))
        else:  # a run [s, e] gets (s + e) / 2 instead of j: two segment sums per run
            bounds = np.empty(2 * start.size, dtype=np.int64)
            bounds[0::2], bounds[1::2] = start, end + 1
            g_run = np.add.reduceat(np.append(g, 0.0), bounds)[0::2]
            jg_run = np.add.reduceat(np.append(g * positions[:m], 0.0), bounds)[0::2]
            num += float(np.sum((start + end) / 2.0 * g_run - jg_run))
    return num, _ss(n, tie_term), False


def _row_ranks(x: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """1-based average ranks of one float32 map (n,) as float32 (``scipy.stats.rankdata``), its
    centred sum of squares, whether it has a NaN (ranks then undefined: NaN-free garbage)."""
    n = x.size
    indexed = _value_index(x)
    if indexed is not None:
        index, counts = indexed
        counts = counts.astype(np.float64)
        rank_of_value = (_value_centred_ranks(counts, n) + (n + 1) / 2.0).astype(np.float32)
        return rank_of_value.take(index), _ss(n, float(np.sum(counts**3 - counts))), False
    srt = _row_sort(x)
    if srt is None:
        return np.zeros(n, dtype=np.float32), float("nan"), True
    v, order, z, neg = srt  # order: the pixel index at each sorted position
    m = n - z
    sorted_rank = np.arange(1.0, m + 1.0)
    sorted_rank[neg:] += z
    runs, tie_term = _runs_and_tie_term(v, z)
    if runs is not None:
        start, _, length = runs
        pos, offset = _sparse_offsets(_Runs(start, length, start))
        sorted_rank[pos] += offset
    ranks = np.empty(n, dtype=np.float32)
    if z:
        ranks.fill(neg + (z + 1) / 2.0)  # the zeros' average rank; the others are overwritten
    ranks[order] = sorted_rank
    return ranks, _ss(n, tie_term), False


def _runs_and_tie_term(v: np.ndarray, z: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, float]:
    """Tied runs of the sorted non-zero values ``v`` as (start, end, length), or ``None``, and
    sum of (L^3 - L) over every tied run, the ``z`` zeros included."""
    tie_term = float(z) ** 3 - z
    runs = _row_runs(v)
    if runs is None:
        return None, tie_term
    start, end = runs
    length = end - start + 1
    lf = length.astype(np.float64)
    return (start, end, length), tie_term + float(np.sum(lf**3 - lf))


def _ss(n: int, tie_term: float) -> float:
    """Sum of squared centred average ranks: n(n^2-1)/12 - sum over tied runs of (L^3-L)/12."""
    return n * (n * n - 1.0) / 12.0 - tie_term / 12.0


def _value_centred_ranks(counts: np.ndarray, n: int) -> np.ndarray:
    """Centred average rank of each distinct value, from the values' counts in ascending order."""
    return np.cumsum(counts) - (counts + 1.0) / 2.0 - (n - 1) / 2.0


def _value_index(x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(index of each pixel's value among the map's sorted distinct values (intp (n,)), each
    value's count (int64 (d,))) for a map with few distinct values -- or None where ranking by
    sorting is expected to be cheaper.

    A strided sample proposes the distinct values (and the cost model below says whether counting
    pays); each pixel's index is read from a table addressed by 16 bits of its float32 pattern
    (:func:`_value_hash`: a fixed number of passes) or, where no 16 bits tell the values apart,
    counted as the number of values <= it, minus one (one vector compare per value). One gather and
    compare then check every pixel against the value at its index: values the sample missed (rare
    tail values) join the set and the pixels are indexed again, and the counts come from one
    ``np.bincount``. No pass sorts the map: where numpy's float32 sort is slow (1.1 ms for a 224x224
    map on the AMD EPYC measured here, about 6x the Intel Xeon's), one sort costs more than the
    count. None for a map with a NaN, with more than ``_COUNT_MAX_VALUES`` values, or where the sort
    of :func:`_row_sort` should be cheaper.
    """
    n = x.size
    sample = x[:: max(1, n // _COUNT_SAMPLE)]
    values = np.unique(sample)  # sorted; -0.0 and +0.0 merge
    if values.size > _COUNT_MAX_VALUES or np.isnan(values[-1]):
        return None
    # cost model (bench/bench_spearman.py): indexing ~ _HASH_PASSES passes over all pixels (a
    # table is assumed: few values almost always have one), the sort ~ _COUNT_BREAK_EVEN passes
    # over the non-zero pixels
    if _HASH_PASSES > _COUNT_BREAK_EVEN * (np.count_nonzero(sample) / sample.size):
        return None
    index = _index_of(x, values)
    missed = np.flatnonzero(_value_at(values, index) != x)  # -0.0 == +0.0; a NaN never equals
    if missed.size:
        if missed.size * _COUNT_MAX_VALUES > n:  # many pixels outside the sampled values: not few
            return None
        extra = np.unique(x.take(missed))
        if np.isnan(extra[-1]) or values.size + extra.size > _COUNT_MAX_VALUES:
            return None
        values = np.union1d(values, extra)  # every value of the map now: the index is exact
        index = _index_of(x, values)
    return index, np.bincount(index, minlength=values.size)


def _value_at(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]`` for the intp indices of :func:`_index_of`, NaN where a pixel matched no
    value (index 255, or -1: take counts it from the end like Python indexing)."""
    table = np.full(256, np.nan, dtype=np.float32)
    table[: values.size] = values
    return table.take(index)


_HASH_BITS = 16  # table of 2^16 one-byte entries (64 KiB: stays in L2)


def _value_hash(values: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(shift, table) such that ``table[(bits >> shift) & 0xFFFF]`` is the index in `values` (sorted
    distinct float32, NaN-free) of every pixel whose float32 bit pattern is one of theirs -- both
    zeros included -- and 255 where no value hashes; None where no shift separates the values."""
    patterns = values.view(np.uint32)
    owner = np.arange(values.size, dtype=np.uint8)
    zero = np.flatnonzero(values == 0)
    if zero.size:  # -0.0 and +0.0 are one value with two patterns
        patterns = np.append(patterns, patterns[zero] ^ np.uint32(0x80000000))
        owner = np.append(owner, owner[zero])
    for shift in range(32 - _HASH_BITS, -1, -1):  # the sign, exponent and top mantissa bits first
        slots = (patterns >> np.uint32(shift)) & np.uint32((1 << _HASH_BITS) - 1)
        if np.unique(slots).size == slots.size:
            table = np.full(1 << _HASH_BITS, 255, dtype=np.uint8)
            table[slots] = owner
            return shift, table
    return None


def _index_of(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """intp (n,): the index in `values` (distinct float32, sorted, NaN-free) of each pixel whose value
    is one of them, by the table of :func:`_value_hash` or, without one, by one compare per value.
    A pixel of any other value gets 255 (table) or the index of the largest value below it (-1 below
    them all): callers check (:func:`_value_at`)."""
    table = _value_hash(values)
    if table is not None:
        shift, lut = table
        slot = x.view(np.uint32) >> np.uint32(shift)
        if shift < 32 - _HASH_BITS:
            slot &= np.uint32((1 << _HASH_BITS) - 1)
        # intp indices: numpy's take of other index types is several times slower than cast + take
        return lut.take(slot.astype(np.intp)).astype(np.intp)
    at_most = np.zeros(x.size, dtype=np.uint8)  # number of values <= each pixel (<= _COUNT_MAX_VALUES: a byte)
    mask = np.empty(x.size, dtype=bool)
    for v in values:
        np.greater_equal(x, v, out=mask)
        at_most += mask
    return at_most.astype(np.intp) - 1


def _row_sort(x: np.ndarray, payload: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """Sort the non-zero pixels of one float32 map (n,): (sorted uint32 keys (m,), what each carries
    (m,), number of zeros z = n - m, number of negative values); None if the map has a NaN.

    Each pixel carries ``payload[pixel]`` (uint32 (n,), e.g. the bits of a reference rank: no
    gather after the sort) or, by default, its pixel index. Within a tied run the carried values
    may come in any order (both kernels give the same multiset per run), which no average rank or
    score depends on. The returned arrays may be strided views.

    Exact zeros (ReLU dead regions, |gradient| = 0) are the common long tie: they are left out
    of the sort, since their average rank follows from their count and the number of negative
    values. The other pixels' float32 bits are mapped to uint32 keys in the same order (for a map
    without negative values, the bits themselves) and sorted, with what they carry, by whichever
    kernel :func:`sort_kernel` measured faster on this CPU.
    """
    bits = x.view(np.uint32)
    nonzero = x != 0  # -0.0 == 0.0: both zeros are one tie, as for scipy
    m = int(np.count_nonzero(nonzero))
    z = x.size - m
    if m == 0:
        return np.empty(0, np.uint32), np.empty(0, np.uint32), z, 0
    pixel = np.flatnonzero(nonzero).astype(np.uint32) if z else None
    v = bits.take(pixel) if z else bits  # `bits` is never written: each branch below makes a new array
    if payload is None:
        carried = pixel if z else np.arange(x.size, dtype=np.uint32)
    else:
        carried = payload.take(pixel) if z else payload
    signed = not float(x.min()) >= 0.0  # a NaN reads as signed too, and is then caught below
    sign = np.uint32(0x80000000)
    if signed:  # order-preserving map of float32 bits to uint32: negatives flip all bits, others the sign
        v = v ^ ((np.uint32(0) - (v >> np.uint32(31))) | sign)
    else:  # non-negative floats (saliency maps) already order as their bits; +0.0 is left out
        v = np.bitwise_or(v, sign, out=v if z else None)
    v, carried = _SORT_KERNELS[sort_kernel(v)](v, carried)
    # NaNs map above +inf (0xff800000) or, with the sign bit set, below -inf (0x007fffff)
    if v[-1] > 0xFF800000 or v[0] < 0x007FFFFF:
        return None
    return v, carried, z, int(np.searchsorted(v, 0x80000000)) if signed else 0


def _radix_sort(v: np.ndarray, carried: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable sort of uint32 keys (m,) carrying uint32 values (m,): (sorted keys, carried values in
    that order). Two LSD passes of numpy's stable argsort of 16-bit keys, a counting radix sort."""
    low_first = np.argsort(v.astype(np.uint16), kind="stable")  # radix pass on the low 16 bits
    v = v.take(low_first)
    high_then = np.argsort((v >> np.uint32(16)).astype(np.uint16), kind="stable")
    return v.take(high_then), carried.take(low_first.take(high_then))


_KEY_WORD, _CARRIED_WORD = (1, 0) if sys.byteorder == "little" else (0, 1)  # uint32 halves of a uint64


def _packed_sort(v: np.ndarray, carried: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort of uint32 keys (m,) carrying uint32 values (m,), as :func:`_radix_sort` but within a
    tied run ordered by the carried value: each key is packed with its value into one uint64 (key
    high), so numpy's SIMD ``np.sort`` of uint64 (x86-simd-sort on AVX2 / AVX-512) moves both in
    one pass. The keys come back contiguous (the tie scan reads them twice), the carried values
    as a strided view into the sorted words (no gather)."""
    packed = np.empty(v.size, dtype=np.uint64)
    words = packed.view(np.uint32)  # each word's halves written in place: two passes, not a widen, shift and or
    words[_KEY_WORD::2] = v
    words[_CARRIED_WORD::2] = carried
    packed.sort()
    return words[_KEY_WORD::2].copy(), words[_CARRIED_WORD::2]


SORT_KERNEL_ENV = "ALIGNBENCH_SORT_KERNEL"
_SORT_KERNELS = {"radix": _radix_sort, "packed": _packed_sort}
_CALIBRATION_ROUNDS = 3
_kernel_choice: dict[tuple[int, str], str] = {}  # (size bucket = bit length of m, input kind) -> fastest kernel
_KIND_SAMPLE = 512  # keys sampled to tell a tie-heavy input (quantised maps) from a continuous one


def sort_kernel(keys: np.ndarray) -> str:
    """The permutation sort used for uint32 `keys` (m,): ``"radix"`` or ``"packed"``.

    ``$ALIGNBENCH_SORT_KERNEL`` (``radix`` / ``packed`` / ``auto``, default ``auto``) forces
    one. Under ``auto`` the two are timed, interleaved, on the first real row of each input kind
    that this process sorts -- size bucket (m within a factor 2) and whether the keys are
    tie-heavy (quantised maps: under 90% distinct in a strided sample) or continuous -- and the
    faster is kept for that kind: which wins depends on the CPU's SIMD sort (numpy's uint64 sort
    is vectorised on AVX2 / AVX-512, its 16-bit radix argsort is not) and on the ties, so it is
    measured rather than assumed. Both kernels return the same sorted keys and, within each tied
    run, the same carried values (possibly in another order), so the choice never changes a rank
    or a score.
    """
    forced = os.environ.get(SORT_KERNEL_ENV, "").strip().lower() or "auto"
    if forced in _SORT_KERNELS:
        return forced
    if forced != "auto":
        raise InvalidInputError(f"{SORT_KERNEL_ENV}={forced!r}: expected auto, {' or '.join(_SORT_KERNELS)}")
    sample = np.sort(keys[:: max(1, keys.size // _KIND_SAMPLE)])
    distinct = 1 + int(np.count_nonzero(sample[1:] != sample[:-1])) if sample.size else 0
    kind = (int(keys.size).bit_length(), "ties" if distinct < 0.9 * sample.size else "continuous")
    if kind not in _kernel_choice:
        _kernel_choice[kind] = _calibrate(keys)
    return _kernel_choice[kind]


def _calibrate(keys: np.ndarray) -> str:
    """The faster kernel on `keys`: best of _CALIBRATION_ROUNDS interleaved timings each, so a
    burst of load from other processes hits both alike (about 10 ms for a 224x224 map)."""
    best = {name: float("inf") for name in _SORT_KERNELS}
    carried = np.arange(keys.size, dtype=np.uint32)
    for _ in range(_CALIBRATION_ROUNDS):
        for name, kernel in _SORT_KERNELS.items():
            start = time.perf_counter()
            kernel(keys, carried)
            best[name] = min(best[name], time.perf_counter() - start)
    return min(best, key=best.__getitem__)


def _row_runs(v: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Runs of >= 2 equal keys in a sorted row: (first, last) sorted positions, int64; None if
    there is no tie."""
    pairs = np.flatnonzero(v[1:] == v[:-1])  # i where v[i] == v[i + 1]
    if pairs.size == 0:
        return None
    breaks = np.flatnonzero(np.diff(pairs) != 1)  # a run ends where the tied pairs stop being consecutive
    first = np.concatenate((pairs[:1], pairs[breaks + 1]))
    last = np.concatenate((pairs[breaks], pairs[-1:])) + 1
    return first, last


def spearman(a: Any, b: Any) -> np.ndarray:
    """Per-map Spearman rho of two stacks of maps of the same shape ((N,H,W), (N,H,W,1) or
    (H,W) -> (1,)); float64 (N,), NaN where a map is constant or contains a NaN. Matches
    ``scipy.stats.spearmanr(a[i].ravel(), b[i].ravel())`` within 1e-6."""
    a_shape, b_shape = tuple(a.shape), tuple(b.shape)
    if a_shape != b_shape:
        raise InvalidInputError(f"spearman: map stacks differ in shape: {a_shape} vs {b_shape}")
    if (_is_torch(a) and a.device.type != "cpu") or (_is_torch(b) and b.device.type != "cpu"):
        import torch

        device = a.device if _is_torch(a) and a.device.type != "cpu" else b.device
        a_t, b_t = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)
        ra, ua = _torch_ranks(_torch_rows(a_t, "a"))
        rb, ub = _torch_ranks(_torch_rows(b_t, "b"))
        return _torch_pearson(ra, rb, ua | ub)
    return spearman_ranked(rank_maps(b), a)


# ---------------------------------------------------------------------------------------------
# Helpers shared by the numpy and torch paths
# ---------------------------------------------------------------------------------------------

def _resolve_index(ranked: RankedMaps, index: Any) -> np.ndarray | None:
    if index is None:
        return None
    if _is_torch(index):
        index = index.detach().cpu().numpy()
    idx = np.asarray(index)
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise InvalidInputError(f"index: expected a 1-D integer array, got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < -len(ranked) or idx.max() >= len(ranked)):
        raise InvalidInputError(f"index: rows must lie in [0, {len(ranked)}), got {idx.min()}..{idx.max()}")
    return idx.astype(np.int64) % len(ranked)  # negative rows count from the end


def _check_match(ranked: RankedMaps, m: int, map_shape: tuple[int, ...], rows_idx) -> None:
    if map_shape != ranked.map_shape:
        raise InvalidInputError(
            f"maps of shape {map_shape} cannot be compared with ranked maps of shape {ranked.map_shape}"
        )
    expected = len(ranked) if rows_idx is None else rows_idx.size
    if m != expected:
        what = "len(index)" if rows_idx is not None else "the number of ranked maps"
        raise InvalidInputError(f"got {m} maps but {what} is {expected}")


def _finish(num: np.ndarray, ss: np.ndarray, ref_ss: np.ndarray, undefined: np.ndarray) -> np.ndarray:
    undefined = undefined | (ss <= 0.0) | (ref_ss <= 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = num / np.sqrt(ss * ref_ss)
    rho = np.clip(rho, -1.0, 1.0)
    rho[undefined] = np.nan
    return rho


# ---------------------------------------------------------------------------------------------
# Torch path (used for CUDA tensors; runs on any device)
# ---------------------------------------------------------------------------------------------

def _torch_rows(x: Any, name: str) -> Any:
    import torch

    n_maps, map_shape = _map_shape(tuple(x.shape), name)
    n_pix = int(np.prod(map_shape))
    if n_pix < 2:
        raise InvalidInputError(f"{name}: a map needs at least 2 pixels, got shape {map_shape}")
    if x.dtype == torch.float64 and metric_dtype() == "native":
        return x.reshape(n_maps, n_pix)
    return x.reshape(n_maps, n_pix).to(torch.float32)  # the paper's float32 cast (see metric_maps)


def _torch_sorted_ranks(rows: Any) -> tuple[Any, Any, Any]:
    """(perm, centred average rank at each sorted position (float64), undefined rows)."""
    import torch

    m, n = rows.shape
    values, perm = torch.sort(rows, dim=1)
    undefined = torch.isnan(rows).any(dim=1)
    pos = torch.arange(n, device=rows.device).expand(m, n)
    new_run = torch.ones((m, n), dtype=torch.bool, device=rows.device)
    new_run[:, 1:] = values[:, 1:] != values[:, :-1]
    end_run = torch.ones_like(new_run)
    end_run[:, :-1] = new_run[:, 1:]
    start = torch.cummax(torch.where(new_run, pos, torch.zeros_like(pos)), dim=1).values
    end_rev = torch.where(end_run, pos, torch.full_like(pos, n - 1)).flip(1)
    end = torch.cummin(end_rev, dim=1).values.flip(1)
    centred = (start + end).to(torch.float64) / 2.0 - (n - 1) / 2.0
    return perm, centred, undefined


def _torch_ranks(rows: Any) -> tuple[Any, Any]:
    import torch

    perm, centred, undefined = _torch_sorted_ranks(rows)
    ranks = torch.empty_like(centred).scatter_(1, perm, centred)
    return ranks, undefined


def _torch_pearson(a: Any, b: Any, undefined: Any) -> np.ndarray:
    """Pearson of rows of already-centred float64 tensors."""
    num = (a * b).sum(dim=1)
    ss_a, ss_b = (a * a).sum(dim=1), (b * b).sum(dim=1)
    return _finish(*(t.cpu().numpy() for t in (num, ss_a, ss_b, undefined)))


def spearman_ranked_torch(ranked: RankedMaps, maps: Any, index: Any = None) -> np.ndarray:
    """:func:`spearman_ranked` computed by the torch algorithm (``torch.sort`` on the tensor's own
    device) whatever the device: the path CUDA tensors take, callable on CPU tensors so it is
    checked where there is no GPU (tests, ``bench/gpu_smoke.sh --dry``). `maps`: a torch tensor."""
    if not _is_torch(maps):
        raise InvalidInputError(f"maps: spearman_ranked_torch takes a torch tensor, got {type(maps).__name__}")
    return _spearman_ranked_torch(ranked, maps, _resolve_index(ranked, index))


def _spearman_ranked_torch(ranked: RankedMaps, maps: Any, rows_idx: np.ndarray | None) -> np.ndarray:
    import torch

    rows = _torch_rows(maps, "maps")
    _check_match(ranked, rows.shape[0], _map_shape(tuple(maps.shape), "maps")[1], rows_idx)
    human = ranked.ranks_on(rows.device)
    if rows_idx is not None:
        human = human[torch.as_tensor(rows_idx, device=rows.device)]
    perm, centred, undefined = _torch_sorted_ranks(rows)
    gathered = torch.gather(human, 1, perm).to(torch.float64)
    num = (centred * gathered).sum(dim=1)
    ss = (centred * centred).sum(dim=1)
    ref_ss = ranked.ss if rows_idx is None else ranked.ss[rows_idx]
    ref_undefined = ranked.undefined if rows_idx is None else ranked.undefined[rows_idx]
    return _finish(num.cpu().numpy(), ss.cpu().numpy(), ref_ss, undefined.cpu().numpy() | ref_undefined)
