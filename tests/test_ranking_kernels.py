"""The permutation-sort kernel of the Spearman row path is chosen per CPU at run time
(benchmark.ranking.sort_kernel); every choice must give the identical ranks and scores."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import ranking
from benchmark.ranking import SORT_KERNEL_ENV, rank_maps, sort_kernel, spearman_ranked
from model_zoo.errors import InvalidInputError


def _maps(rng: np.random.Generator) -> dict[str, np.ndarray]:
    side = 72  # 5184 pixels: above _ROW_PATH_MIN_PIXELS, so the per-map path runs
    assert side * side >= ranking._ROW_PATH_MIN_PIXELS
    signed = rng.normal(size=(3, side, side)).astype(np.float32)
    signed[0, :4, :4] = -0.0  # both zeros tie
    signed[1, 0, :3] = [np.inf, -np.inf, 0.0]
    return {
        "continuous": rng.random((3, side, side), dtype=np.float32),
        "relu-zeros": np.maximum(rng.normal(size=(3, side, side)), 0).astype(np.float32),
        "ties": np.round(rng.normal(size=(3, side, side)) * 64).astype(np.float32),  # ~500 values: sorted
        "signed": signed,
    }


@pytest.mark.parametrize("kind", ["continuous", "relu-zeros", "ties", "signed"])
def test_every_kernel_gives_identical_ranks_and_scores(kind: str, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    maps = _maps(rng)[kind]
    human = np.maximum(rng.normal(size=maps.shape), 0).astype(np.float32)
    results = {}
    for kernel in ("radix", "packed", "auto"):
        monkeypatch.setenv(SORT_KERNEL_ENV, kernel)
        ranked = rank_maps(maps)
        results[kernel] = (ranked.ranks, ranked.ss, spearman_ranked(rank_maps(human), maps))
    for kernel in ("packed", "auto"):
        np.testing.assert_array_equal(results[kernel][0], results["radix"][0])
        np.testing.assert_array_equal(results[kernel][1], results["radix"][1])
        np.testing.assert_array_equal(results[kernel][2], results["radix"][2])


def test_kernels_sort_keys_and_carry_values_alike() -> None:
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 50, size=10_000, dtype=np.uint32)  # many ties
    index = np.arange(keys.size, dtype=np.uint32)
    (v_radix, o_radix), (v_packed, o_packed) = ranking._radix_sort(keys, index), ranking._packed_sort(keys, index)
    np.testing.assert_array_equal(v_radix, np.sort(keys))
    np.testing.assert_array_equal(o_radix, np.argsort(keys, kind="stable"))  # carrying the index: stable
    np.testing.assert_array_equal(v_packed, v_radix)
    np.testing.assert_array_equal(o_packed, o_radix)
    values = rng.integers(0, 1 << 32, size=keys.size, dtype=np.uint64).astype(np.uint32)  # any payload
    (v_radix, c_radix), (v_packed, c_packed) = ranking._radix_sort(keys, values), ranking._packed_sort(keys, values)
    np.testing.assert_array_equal(v_packed, v_radix)
    np.testing.assert_array_equal(c_radix, values[np.argsort(keys, kind="stable")])
    for key in np.unique(keys):  # within a tied run the packed kernel orders by value: same multiset
        run = v_radix == key
        np.testing.assert_array_equal(np.sort(c_packed[run]), np.sort(c_radix[run]))


def test_auto_times_each_size_bucket_once(monkeypatch) -> None:
    monkeypatch.delenv(SORT_KERNEL_ENV, raising=False)
    monkeypatch.setattr(ranking, "_kernel_choice", {})
    calls = []
    real = ranking._calibrate
    monkeypatch.setattr(ranking, "_calibrate", lambda keys: calls.append(keys.size) or real(keys))
    keys = np.arange(5000, dtype=np.uint32)
    first = sort_kernel(keys)
    assert first in ("radix", "packed")
    assert sort_kernel(keys[:4500]) == first  # same size bucket and kind: cached, not timed again
    sort_kernel(keys[:1000])  # another size bucket: timed
    sort_kernel(keys // 16)  # tie-heavy keys of the first size: another kind, timed
    sort_kernel(keys[:4500] // 16)  # and then cached
    assert calls == [5000, 1000, 5000]
    assert set(ranking._kernel_choice) == {(13, "continuous"), (10, "continuous"), (13, "ties")}


def test_forced_kernel_and_bad_value(monkeypatch) -> None:
    monkeypatch.setenv(SORT_KERNEL_ENV, "Radix")
    assert sort_kernel(np.arange(10, dtype=np.uint32)) == "radix"
    monkeypatch.setenv(SORT_KERNEL_ENV, "quick")
    with pytest.raises(InvalidInputError, match=SORT_KERNEL_ENV):
        sort_kernel(np.arange(10, dtype=np.uint32))


def test_few_valued_maps_are_indexed_by_table_or_by_compares_and_match_scipy(monkeypatch) -> None:
    from scipy import stats

    rng = np.random.default_rng(11)
    side = 72
    n = side * side
    table_map = rng.choice(np.array([0.0, -0.0, 0.25, 0.5, 1.0, 2.0, 3.5], dtype=np.float32), size=n)
    stride = n // ranking._COUNT_SAMPLE  # the sample _value_index looks at first
    assert stride > 1
    table_map[1::stride * 200] = 7.75  # a rare value the sample misses: the check of every pixel must find it
    assert 7.75 not in table_map[::stride]
    p = np.float32(1.5)
    # p, its neighbour (differs in bit 0) and -p (bit 31): no 16 contiguous bits tell all three apart
    inseparable = rng.choice(np.array([p, np.nextafter(p, np.float32(2)), -p], dtype=np.float32), size=n)
    assert ranking._value_hash(np.unique(table_map)) is not None
    assert ranking._value_hash(np.unique(inseparable)) is None
    maps = np.stack([table_map, inseparable]).reshape(2, side, side)
    human = rng.random((2, side, side), dtype=np.float32)
    ranked_human = rank_maps(human)
    counted = []
    real = ranking._value_index
    monkeypatch.setattr(ranking, "_value_index", lambda x: counted.append(real(x) is not None) or real(x))
    got = spearman_ranked(ranked_human, maps)
    ranks = rank_maps(maps).ranks
    assert counted == [True] * 4  # both maps counted, not sorted, when scored and when ranked
    for i in range(2):
        want = stats.spearmanr(maps[i].ravel(), human[i].ravel())[0]
        assert abs(got[i] - want) <= 1e-12, (i, got[i], want)
        np.testing.assert_array_equal(ranks[i], stats.rankdata(maps[i].ravel()).astype(np.float32))


def test_a_map_whose_sample_lies_is_sorted_not_counted() -> None:
    """The strided sample sees three values, but the pixels between its stride points are continuous:
    the check finds far too many pixels outside the sampled values, so the map is sorted (exactly)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    side = 72
    n = side * side
    x = rng.random(n, dtype=np.float32) + 1.0
    stride = n // ranking._COUNT_SAMPLE
    x[::stride] = rng.choice(np.array([0.5, 1.5, 2.5], dtype=np.float32), size=x[::stride].size)
    assert np.unique(x[::stride]).size == 3
    assert ranking._value_index(x) is None
    human = rng.random((1, side, side), dtype=np.float32)
    got = spearman_ranked(rank_maps(human), x.reshape(1, side, side))[0]
    assert abs(got - stats.spearmanr(x, human.ravel())[0]) <= 1e-12
    np.testing.assert_array_equal(rank_maps(x.reshape(1, side, side)).ranks[0],
                                  stats.rankdata(x).astype(np.float32))


@pytest.mark.parametrize("table", [True, False], ids=["table", "compares"])
def test_counted_index_and_counts_are_exact(table: bool) -> None:
    """_value_index gives every pixel the index of its own value (both zeros one value) and each
    value's count, when the table indexes the pixels and when the compares do, values the strided
    sample misses (below, between and above the sampled ones) included."""
    rng = np.random.default_rng(6)
    p = np.float32(1.5)
    if table:
        common = np.array([-2.0, -0.0, 0.0, 0.5, 3.0], dtype=np.float32)
        rare = np.array([-7.0, 0.75, 9.0], dtype=np.float32)
    else:  # p, its neighbour and -p: no 16 contiguous bits tell them apart
        common = np.array([-p, p, np.nextafter(p, np.float32(2))], dtype=np.float32)
        rare = np.array([-9.0, 1.0, 4.0], dtype=np.float32)
    n = 64 * 64
    x = rng.choice(common, size=n)
    stride = n // ranking._COUNT_SAMPLE
    x[[1, 2 * stride + 1, 5 * stride + 1]] = rare  # off the sample's stride points
    distinct = np.unique(x)
    assert (ranking._value_hash(distinct) is not None) == table
    assert not np.isin(rare, x[::stride]).any()
    index, counts = ranking._value_index(x)
    assert index.dtype == np.intp
    np.testing.assert_array_equal(distinct[index], x)  # -0.0 == 0.0
    np.testing.assert_array_equal(counts, [np.count_nonzero(x == v) for v in distinct])
