"""Precision convention: maps are cast to float32 before every metric, as the paper's code does
(shared/reference/conventions.md); ALIGNBENCH_METRIC_DTYPE=native keeps float64 maps exact."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from benchmark import metrics
from benchmark.ranking import METRIC_DTYPE_ENV
from model_zoo.errors import InvalidInputError


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def paper_masks(m: np.ndarray, p: float = 10) -> np.ndarray:
    """The paper's binarisation of one map, on its float32 values (per-map np.percentile, strict >)."""
    m = np.asarray(m, np.float32).ravel()
    return m > np.percentile(m, 100 - p)


def paper_dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    for x, y in zip(a, b):
        ma, mb = paper_masks(x), paper_masks(y)
        out.append(2 * np.sum(ma & mb) / (ma.sum() + mb.sum() + 1e-9))
    return np.array(out)


def paper_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = []
    for x, y in zip(a, b):
        ma, mb = paper_masks(x), paper_masks(y)
        out.append(np.sum(ma & mb) / (np.sum(ma | mb) + 1e-9))
    return np.array(out)


def paper_rho(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input
        return np.array([stats.spearmanr(np.asarray(x, np.float32).ravel(), np.asarray(y, np.float32).ravel())[0]
                         for x, y in zip(a, b)])


@pytest.fixture
def float16_pair() -> tuple[np.ndarray, np.ndarray]:
    """5x5 maps whose 90th percentile lies between two neighbouring float16 values: taken in float16,
    the threshold rounds up onto the upper one and the strict > drops it from the mask."""
    a = np.array([*np.arange(21) / 100, 1.0, 1.0009765625, 2.0, 3.0], np.float16).reshape(1, 5, 5)
    b = np.arange(25, dtype=np.float16).reshape(1, 5, 5)  # same order, well-separated values
    return a, b


def test_float16_maps_give_the_papers_dice_and_iou(float16_pair):
    a, b = float16_pair
    assert paper_masks(a[0]).sum() == 3  # the float32 threshold keeps the 3 top pixels
    np.testing.assert_array_equal(metrics.dice(a, b), paper_dice(a, b))
    np.testing.assert_array_equal(metrics.iou(a, b), paper_iou(a, b))
    assert metrics.dice(a, b)[0] == pytest.approx(1.0, abs=1e-9)  # in float16: 2*2/(2+3) = 0.8


def test_float16_saliency_against_float32_human_maps(rng):
    a = rng.random((6, 56, 56), dtype=np.float32).astype(np.float16)
    b = rng.random((6, 56, 56), dtype=np.float32)
    np.testing.assert_array_equal(metrics.dice(a, b), paper_dice(a, b))
    np.testing.assert_array_equal(metrics.iou(a, b), paper_iou(a, b))
    np.testing.assert_allclose(metrics.spearman(a, b), paper_rho(a, b), atol=1e-6)


@pytest.fixture
def float64_pair(rng) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): a's values differ only below float32 resolution (constant once cast), b is ordinary."""
    order = rng.permutation(100).reshape(1, 10, 10)
    return 1.0 + order * 1e-10, order.astype(np.float64)  # b ranks the pixels exactly as a does in float64


def test_float64_maps_are_cast_to_float32_like_the_paper(float64_pair):
    a, b = float64_pair
    assert np.unique(a.astype(np.float32)).size == 1
    assert np.isnan(paper_rho(a, b)[0]) and np.isnan(metrics.spearman(a, b)[0])  # constant in float32
    assert metrics.rank_maps(a).undefined[0]
    np.testing.assert_array_equal(metrics.dice(a, b), paper_dice(a, b))  # a's mask is empty: 0
    np.testing.assert_array_equal(metrics.iou(a, b), paper_iou(a, b))
    assert metrics.dice(a, b)[0] == 0.0


def test_native_precision_is_one_switch_away(float64_pair, float16_pair, monkeypatch):
    a, b = float64_pair
    monkeypatch.setenv(METRIC_DTYPE_ENV, "native")
    assert metrics.spearman(a, b)[0] == pytest.approx(1.0, abs=1e-12)  # float64 ranks: a and b agree
    assert metrics.dice(a, b)[0] == pytest.approx(1.0, abs=1e-9)
    a16, b16 = float16_pair  # float16 is widened under both conventions
    np.testing.assert_array_equal(metrics.dice(a16, b16), paper_dice(a16, b16))
    monkeypatch.setenv(METRIC_DTYPE_ENV, "float128")
    with pytest.raises(InvalidInputError, match="ALIGNBENCH_METRIC_DTYPE='float128'"):
        metrics.spearman(a, b)


def test_ceiling_and_baseline_use_the_same_cast(float64_pair):
    a, _ = float64_pair
    stack = np.concatenate([a, a + 0.0, a * 1.0, a])[None]  # one image, 4 participants constant in float32
    score = metrics.split_half_ceiling(stack, n_splits=3, n_boot=10)
    assert score.n_undefined == 1 and np.isnan(score.value)
    maps = np.concatenate([a, a, a])
    base = metrics.center_bias_baseline(maps, n_folds=3, n_boot=10)
    assert base.n_undefined == 3
