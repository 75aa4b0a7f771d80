"""Per-image metrics: Spearman (exactness vs scipy, ties, undefined maps, reuse of ranks),
Dice/IoU (vs a plain per-map loop), input validation."""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

from benchmark import metrics
from model_zoo.errors import InvalidInputError


def scipy_rho(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input; we compare the NaN
        return np.array([stats.spearmanr(x, y)[0] for x, y in zip(a, b)], dtype=np.float64)


def assert_matches_scipy(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    want = scipy_rho(a, b)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=0, atol=1e-6)


def quantised(rng: np.random.Generator, shape, levels: float = 3.0) -> np.ndarray:
    """Maps with many ties: rounded values and a ReLU-zero region."""
    return np.maximum(np.round(rng.normal(size=shape) * levels), 0).astype(np.float32)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


# --- Spearman ---------------------------------------------------------------------------------

def test_spearman_random_float32_224(rng):
    a = rng.random((4, 224, 224), dtype=np.float32)
    b = rng.random((4, 224, 224), dtype=np.float32)
    b[1] = a[1] + 0.3 * b[1]  # a strongly correlated pair as well
    b[2] = -a[2]
    got = metrics.spearman(a, b)
    assert_matches_scipy(got, a, b)
    assert got[1] > 0.9 and got[2] == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("levels", [0.5, 3.0, 40.0])
def test_spearman_with_many_ties(rng, levels):
    a = quantised(rng, (6, 48, 40), levels)
    b = quantised(rng, (6, 48, 40), levels)
    b[0] = a[0]  # identical tied maps -> exactly 1
    got = metrics.spearman(a, b)
    assert_matches_scipy(got, a, b)
    assert got[0] == pytest.approx(1.0, abs=1e-12)


def test_spearman_float64_not_representable_in_float32(rng, monkeypatch):
    """ALIGNBENCH_METRIC_DTYPE=native keeps float64 maps exact (the paper's float32 cast is the default:
    tests/test_metrics_precision.py)."""
    monkeypatch.setenv("ALIGNBENCH_METRIC_DTYPE", "native")
    base = rng.random((3, 30, 30))
    a = 1.0 + base * 1e-9  # all collapse to 1.0 in float32; scipy ranks them apart
    a[0, :3] = -0.0  # signed zeros tie on this (float64) path too
    a[0, 3:6] = 0.0
    b = rng.random((3, 30, 30))
    assert np.unique(a[1:].astype(np.float32)).size == 1
    assert_matches_scipy(metrics.spearman(a, b), a, b)


def test_spearman_signed_zero_infinities_and_ints(rng):
    a = rng.normal(size=(5, 20, 20)).astype(np.float32)
    a[0, :10] = -0.0
    a[0, 10:] = 0.0  # -0.0 and +0.0 are one tie
    a[1, 0, :5] = np.inf
    a[2, 3, :4] = -np.inf
    a[3, :2, :2] = np.inf
    a[3, 5, :2] = -np.inf
    b = rng.integers(0, 7, size=(5, 20, 20))  # integer maps, ties galore
    assert_matches_scipy(metrics.spearman(a, b), a, b)
    assert_matches_scipy(metrics.spearman(b, a), b, a)


def test_spearman_undefined_maps_are_nan_without_warnings(rng):
    a = rng.random((5, 16, 16), dtype=np.float32)
    b = rng.random((5, 16, 16), dtype=np.float32)
    a[0] = 3.0  # constant model map
    b[1] = 0.0  # constant human map
    a[2, 4, 4] = np.nan
    b[3, 0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = metrics.spearman(a, b)
    assert np.isnan(got[:4]).all()
    assert_matches_scipy(got[4:], a[4:], b[4:])


def test_spearman_shapes(rng):
    a = rng.random((12, 12), dtype=np.float32)
    b = rng.random((12, 12), dtype=np.float32)
    got = metrics.spearman(a, b)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    a4, b4 = rng.random((3, 12, 12, 1)), rng.random((3, 12, 12, 1))
    assert_matches_scipy(metrics.spearman(a4, b4), a4, b4)
    with pytest.raises(InvalidInputError, match="differ in shape"):
        metrics.spearman(a4, b4[:2])
    with pytest.raises(InvalidInputError, match=r"\(N,H,W\)"):
        metrics.spearman(rng.random((2, 3, 4, 5)), rng.random((2, 3, 4, 5)))


def test_rank_maps_equals_scipy_rankdata(rng):
    maps = quantised(rng, (4, 20, 25))
    maps[1] = rng.random((20, 25))
    ranked = metrics.rank_maps(maps)
    np.testing.assert_array_equal(ranked.ranks, stats.rankdata(maps.reshape(4, -1), axis=1))
    assert ranked.map_shape == (20, 25) and len(ranked) == 4
    assert not ranked.undefined.any()
    assert metrics.rank_maps(np.ones((2, 4, 4))).undefined.all()


def test_spearman_ranked_reuses_ranks_with_index(rng):
    human = quantised(rng, (5, 24, 24), 10.0)
    ranked = metrics.rank_maps(human)
    model = rng.random((5, 24, 24), dtype=np.float32)
    assert_matches_scipy(metrics.spearman_ranked(ranked, model), model, human)
    index = np.array([4, 0, 0, 2])  # rows in any order, repeated
    model_sub = rng.random((4, 24, 24), dtype=np.float32)
    assert_matches_scipy(metrics.spearman_ranked(ranked, model_sub, index=index), model_sub, human[index])


def test_spearman_ranked_rejects_mismatches(rng):
    ranked = metrics.rank_maps(rng.random((3, 8, 8)))
    with pytest.raises(InvalidInputError, match="3 maps but len\\(index\\) is 2"):
        metrics.spearman_ranked(ranked, rng.random((3, 8, 8)), index=[0, 1])
    with pytest.raises(InvalidInputError, match="index"):
        metrics.spearman_ranked(ranked, rng.random((1, 8, 8)), index=[3])
    with pytest.raises(InvalidInputError, match="shape"):
        metrics.spearman_ranked(ranked, rng.random((3, 8, 9)))
    with pytest.raises(InvalidInputError, match="number of ranked maps"):
        metrics.spearman_ranked(ranked, rng.random((2, 8, 8)))


@pytest.mark.torch
def test_torch_path_matches_scipy(rng):
    """The CUDA path's code, run on the CPU (it is device-agnostic)."""
    torch = pytest.importorskip("torch")
    from benchmark import ranking

    human = quantised(rng, (4, 16, 16), 2.0)
    human[3] = 1.0
    model = quantised(rng, (4, 16, 16), 1.0)
    model[1] = rng.random((16, 16))
    model[2, 0, 0] = np.nan
    ranked = metrics.rank_maps(human)
    got = ranking._spearman_ranked_torch(ranked, torch.from_numpy(model), None)
    assert_matches_scipy(got, model, human)
    ra, ua = ranking._torch_ranks(ranking._torch_rows(torch.from_numpy(model), "a"))
    rb, ub = ranking._torch_ranks(ranking._torch_rows(torch.from_numpy(human), "b"))
    assert_matches_scipy(ranking._torch_pearson(ra, rb, ua | ub), model, human)
    # CPU tensors take the numpy path
    assert_matches_scipy(metrics.spearman(torch.from_numpy(model), torch.from_numpy(human)), model, human)


def test_importing_metrics_loads_no_framework():
    code = "import sys, benchmark.metrics; print('torch' in sys.modules, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# --- Dice / IoU ---------------------------------------------------------------------------------

def loop_dice_iou(a: np.ndarray, b: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """The paper's per-map code, one map at a time."""
    dices, ious = [], []
    for x, y in zip(a, b):
        mx = x > np.percentile(x, 100 - p)
        my = y > np.percentile(y, 100 - p)
        inter = np.logical_and(mx, my).sum()
        dices.append(2 * inter / (mx.sum() + my.sum() + 1e-9))
        ious.append(inter / (np.logical_or(mx, my).sum() + 1e-9))
    return np.array(dices), np.array(ious)


@pytest.mark.parametrize("p", [10, 25.5, 100])
def test_dice_iou_match_plain_loop(rng, p):
    a = rng.random((6, 30, 30), dtype=np.float32)
    b = quantised(rng, (6, 30, 30), 2.0)
    a[1] = b[1]  # identical -> 1
    a[2] = 7.0  # constant -> empty mask
    want_dice, want_iou = loop_dice_iou(a, b, p)
    got_dice, got_iou = metrics.dice(a, b, percentile=p), metrics.iou(a, b, percentile=p)
    np.testing.assert_allclose(got_dice, want_dice, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_iou, want_iou, rtol=0, atol=1e-12)
    assert got_dice[2] == 0.0 and got_iou[2] == 0.0
    if b[1].max() > np.percentile(b[1], 100 - p):  # non-empty mask
        assert got_dice[1] == pytest.approx(1.0, abs=1e-6)


def test_dice_iou_validation_and_nan(rng):
    a, b = rng.random((2, 8, 8)), rng.random((2, 8, 8))
    a[0, 0, 0] = np.nan
    assert np.isnan(metrics.dice(a, b)[0]) and not np.isnan(metrics.dice(a, b)[1])
    assert np.isnan(metrics.iou(a, b)[0])
    for bad in (0, -5, 101):
        with pytest.raises(InvalidInputError, match="percentile"):
            metrics.dice(a, b, percentile=bad)
    with pytest.raises(InvalidInputError, match="differ in shape"):
        metrics.iou(a, b[:1])


# --- the per-map fast path (float32 maps of >= 4096 pixels) ---------------------------------------

def _negative_nan() -> np.float32:
    return np.array([0xFFC00000], dtype=np.uint32).view(np.float32)[0]


def _edge_case_maps(rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """float32 model maps that exercise every branch of the per-map path."""
    maps = rng.normal(size=(12, side, side)).astype(np.float32)
    maps[0] = np.maximum(maps[0], 0)  # ReLU: half exact zeros
    maps[1, :20] = -0.0  # negative zeros tie with +0.0 ...
    maps[1, 20:40] = 0.0  # ... amid negative and positive values
    maps[2] = 0.0  # all-zero map: undefined
    maps[3] = -0.0
    maps[3, 0, :7] = 0.0  # all zeros of both signs: still constant
    maps[4, 5, 5] = np.nan
    maps[5, 0, 0] = _negative_nan()  # sign bit set: must not sort as a tiny value
    maps[6, :2] = np.inf
    maps[6, 2, :5] = -np.inf
    maps[6, 3:10] = 0.0
    maps[7] = np.round(maps[7]) - 3  # ~8 values, mostly negative, few zeros: counted
    maps[8] = np.abs(np.round(maps[8] * 1.5))
    maps[8, 0, 1:4] = [17.25, -3.0, 0.125]  # values the strided sample misses: counted after all
    maps[9] = np.round(maps[9])
    maps[9, 1, 1] = np.nan  # NaN in a few-valued map
    maps[10] = np.where(maps[10] > 0.5, 2.0, -1.0)  # two values: counted
    maps[11] = np.round(maps[11] * 4) / 4  # ~25 values: sorted, many long runs
    maps[11, :30] = np.maximum(maps[11, :30], 0)
    return maps


def test_fast_path_edge_cases_match_scipy_and_the_chunk_path(rng, monkeypatch):
    from benchmark import ranking

    model = _edge_case_maps(rng)
    human = np.maximum(rng.normal(size=model.shape), 0).astype(np.float32)
    human[:, 0, 0] = 1e-3  # no constant human map
    calls = {"count": 0, "sort": 0}
    real_index, real_sort = ranking._value_index, ranking._row_sort

    def spy_index(x):
        out = real_index(x)
        calls["count"] += out is not None
        return out

    def spy_sort(x, *payload):
        calls["sort"] += 1
        return real_sort(x, *payload)

    ranked = metrics.rank_maps(human)
    monkeypatch.setattr(ranking, "_value_index", spy_index)
    monkeypatch.setattr(ranking, "_row_sort", spy_sort)
    got = metrics.spearman_ranked(ranked, model)
    assert calls["count"] == 3 and calls["sort"] == 9  # both strategies ran (7, 8, 10 counted)
    assert_matches_scipy(got, model, human)
    assert np.isnan(got[[2, 3, 4, 5, 9]]).all() and not np.isnan(got[[0, 1, 6, 7, 8, 10, 11]]).any()
    monkeypatch.setattr(ranking, "_ROW_PATH_MIN_PIXELS", 1 << 30)  # the batched chunk path
    np.testing.assert_allclose(metrics.spearman_ranked(metrics.rank_maps(human), model), got,
                               rtol=0, atol=1e-12)


def test_fast_path_ranks_equal_scipy_rankdata(rng):
    maps = _edge_case_maps(rng)
    ranked = metrics.rank_maps(maps)
    defined = [0, 1, 6, 7, 8, 10, 11]
    want = stats.rankdata(maps.reshape(len(maps), -1)[defined], axis=1)
    np.testing.assert_array_equal(ranked.ranks[defined], want)
    assert ranked.ranks.dtype == np.float32 and ranked.map_shape == (64, 64)
    np.testing.assert_array_equal(ranked.undefined, [i not in defined for i in range(len(maps))])
    centred = want - (want.shape[1] + 1) / 2.0
    np.testing.assert_allclose(ranked.ss[defined], (centred**2).sum(axis=1), rtol=1e-12)
    # both stacks ranked by the per-map path
    other = np.maximum(rng.normal(size=maps.shape), 0).astype(np.float32)
    assert_matches_scipy(metrics.spearman(maps, other), maps, other)
    assert_matches_scipy(metrics.spearman(other, maps), other, maps)


def test_fast_path_exact_against_itself_and_large_maps(rng):
    """Identical / reversed maps give exactly +-1 and 224x224 maps with ties match scipy."""
    human = np.maximum(rng.normal(size=(3, 224, 224)), 0).astype(np.float32)
    model = np.stack([human[0], -human[1], np.round(human[2] * 8) / 8])
    got = metrics.spearman_ranked(metrics.rank_maps(human), model)
    assert got[0] == pytest.approx(1.0, abs=1e-12) and got[1] == pytest.approx(-1.0, abs=1e-12)
    assert_matches_scipy(got, model, human)


def test_fast_path_with_index_and_nan_reference(rng):
    human = rng.random((3, 64, 64), dtype=np.float32)
    human[2, 0, 0] = np.nan
    model = np.maximum(rng.normal(size=(4, 64, 64)), 0).astype(np.float32)
    index = np.array([2, 1, 1, 0])
    got = metrics.spearman_ranked(metrics.rank_maps(human), model, index=index)
    assert np.isnan(got[0]) and not np.isnan(got[1:]).any()
    assert_matches_scipy(got, model, human[index])
