"""Aggregates: bootstrap errors, summaries and Score records, the split-half ceiling and the
centre-bias baseline on generated maps whose answer is known."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from benchmark import metrics
from benchmark.scores import Score
from model_zoo.errors import InvalidInputError


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def blob(h: int = 24, w: int = 24, cy: float = 12, cx: float = 12, width: float = 30.0) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / width)


def participants(rng, n_images: int, n_people: int, noise: float, size: int = 24) -> np.ndarray:
    """(N, P, H, W): each image has its own true map; each participant sees it plus noise."""
    truth = rng.random((n_images, 1, size, size))
    return (truth + noise * rng.normal(size=(n_images, n_people, size, size))).astype(np.float32)


# --- bootstrap and summaries ---------------------------------------------------------------------

def test_bootstrap_sd_close_to_analytic_standard_error(rng):
    values = rng.normal(2.0, 3.0, size=400)
    analytic = values.std(ddof=1) / math.sqrt(values.size)
    sd = metrics.bootstrap_sd(values, n_boot=2000, seed=1)
    assert sd == pytest.approx(analytic, rel=0.08)
    low, high = metrics.bootstrap_ci(values, n_boot=2000, seed=1)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * stats.norm.ppf(0.975) * analytic, rel=0.12)


def test_bootstrap_is_seeded_and_ignores_nan(rng):
    values = rng.random(50)
    with_nan = np.concatenate([values, [np.nan, np.nan]])
    assert metrics.bootstrap_sd(values, seed=3) == metrics.bootstrap_sd(with_nan, seed=3)
    assert metrics.bootstrap_sd(values, seed=3) != metrics.bootstrap_sd(values, seed=4)
    assert metrics.bootstrap_sd([5.0]) == 0.0
    assert math.isnan(metrics.bootstrap_sd([np.nan]))
    assert all(math.isnan(x) for x in metrics.bootstrap_ci([]))
    with pytest.raises(InvalidInputError, match="level"):
        metrics.bootstrap_ci(values, level=95)
    with pytest.raises(InvalidInputError, match="1-D"):
        metrics.bootstrap_sd(np.ones((2, 2)))


def test_summarize_counts_undefined_values(rng):
    values = np.array([0.2, np.nan, 0.4, 0.6, np.nan])
    s = metrics.summarize(values)
    assert s.mean == pytest.approx(0.4) and s.n == 5 and s.n_undefined == 2 and s.n_defined == 3
    assert s.sd == metrics.bootstrap_sd(values)
    assert s.ci == metrics.bootstrap_ci(values)
    empty = metrics.summarize([np.nan, np.nan])
    assert math.isnan(empty.mean) and empty.n_undefined == empty.n == 2
    assert json.loads(json.dumps(empty.to_dict()))["mean"] is None


def test_score_record_roundtrips_to_json():
    score = metrics.alignment_score([0.3, 0.5, np.nan], ceiling=0.5, seed=2)
    assert score.value == pytest.approx(0.4) and score.normalized == pytest.approx(0.8)
    assert (score.n, score.n_undefined) == (3, 1)
    d = json.loads(json.dumps(score.to_dict(per_image=True)))
    assert d["per_image"] == [0.3, 0.5, None] and d["params"]["seed"] == 2
    assert "per_image" not in score.to_dict()
    assert metrics.alignment_score([0.3]).ceiling == metrics.CLICKME_PUBLISHED_CEILING
    ceiling = Score.from_values([0.6, 0.8], method="split_half_spearman")
    assert metrics.alignment_score([0.35], ceiling=ceiling).normalized == pytest.approx(0.5)
    with pytest.raises(InvalidInputError, match="ceiling"):
        metrics.alignment_score([0.3], ceiling=0.0)


# --- split-half ceiling ---------------------------------------------------------------------------

def test_ceiling_identical_participants_is_one(rng):
    maps = np.repeat(rng.random((5, 1, 16, 16)), 4, axis=1)
    score = metrics.split_half_ceiling(maps, n_splits=3)
    assert score.value == pytest.approx(1.0, abs=1e-12) and score.n == 5


def test_ceiling_independent_participants_is_near_zero(rng):
    maps = rng.random((30, 6, 16, 16)).astype(np.float32)
    score = metrics.split_half_ceiling(maps, n_splits=4)
    # 30 images x 4 splits of 256-pixel correlations: SE about 1/sqrt(256 * 30) ~ 0.01
    assert abs(score.value) < 0.04
    assert score.sd < 0.02


def test_ceiling_falls_with_noise_and_spearman_brown_steps_up(rng):
    values = [metrics.split_half_ceiling(participants(rng, 12, 6, noise), n_splits=4).value
              for noise in (0.1, 0.5, 2.0)]
    assert values[0] > values[1] > values[2] > 0
    maps = participants(rng, 12, 6, 0.5)
    plain = metrics.split_half_ceiling(maps, n_splits=4)
    stepped = metrics.split_half_ceiling(maps, n_splits=4, spearman_brown=True)
    r = plain.per_image
    np.testing.assert_allclose(stepped.per_image, 2 * r / (1 + r), rtol=1e-12)
    assert stepped.params["spearman_brown"] is True


def test_ceiling_per_image_matches_direct_computation(rng):
    """Two participants: the only split puts one in each half, whatever the permutation."""
    maps = participants(rng, 3, 2, 0.7)
    score = metrics.split_half_ceiling(maps, n_splits=2)
    want = [stats.spearmanr(m[0].ravel(), m[1].ravel())[0] for m in maps]
    np.testing.assert_allclose(score.per_image, want, atol=1e-6)


def test_ceiling_counts_excluded_and_undefined_images(rng):
    stacks = [
        rng.random((3, 10, 10)),          # scored
        rng.random((1, 10, 10)),          # one participant: excluded
        np.zeros((4, 10, 10)),            # nobody clicked: every split undefined
        rng.random((5, 10, 10)),          # scored, odd count
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = metrics.split_half_ceiling(stacks, n_splits=3, seed=5)
    assert (score.n, score.n_excluded, score.n_undefined) == (3, 1, 1)
    assert np.isnan(score.per_image[[1, 2]]).all()
    assert score.value == pytest.approx(np.mean(score.per_image[[0, 3]]))
    again = metrics.split_half_ceiling(stacks, n_splits=3, seed=5)
    np.testing.assert_array_equal(again.per_image, score.per_image)
    other_seed = metrics.split_half_ceiling(stacks, n_splits=3, seed=6)
    assert not np.array_equal(other_seed.per_image[[0, 3]], score.per_image[[0, 3]])


def test_ceiling_applies_preprocess_to_half_means(rng):
    maps = participants(rng, 4, 4, 1.0, size=16)
    seen = []

    def downsample(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return batch.reshape(batch.shape[0], 8, 2, 8, 2).mean(axis=(2, 4))

    score = metrics.split_half_ceiling(maps, n_splits=3, preprocess=downsample)
    assert seen and all(s == (6, 16, 16) for s in seen)
    plain = metrics.split_half_ceiling(maps, n_splits=3)
    assert score.value > plain.value  # averaging pixels averages the noise away
    assert score.params["preprocess"] == "downsample"


def test_ceiling_rejects_bad_input(rng):
    with pytest.raises(InvalidInputError, match=r"\(P, H, W\)"):
        metrics.split_half_ceiling([rng.random((10, 10))])
    with pytest.raises(InvalidInputError, match="different map shapes"):
        metrics.split_half_ceiling([rng.random((2, 10, 10)), rng.random((2, 8, 8))])
    with pytest.raises(InvalidInputError, match="n_splits"):
        metrics.split_half_ceiling(rng.random((2, 2, 4, 4)), n_splits=0)


# --- centre-bias baseline ---------------------------------------------------------------------------

def test_center_bias_high_for_shared_blob_and_zero_for_random(rng):
    shared = (blob() + 0.05 * rng.random((40, 24, 24))).astype(np.float32)
    high = metrics.center_bias_baseline(shared, n_folds=5)
    assert high.value > 0.9 and high.n == 40
    random = rng.random((40, 24, 24)).astype(np.float32)
    low = metrics.center_bias_baseline(random, n_folds=5)
    assert abs(low.value) < 0.05


def test_center_bias_leave_one_out_matches_scipy(rng):
    maps = (blob()[None] + 0.5 * rng.random((6, 24, 24))).astype(np.float32)
    score = metrics.center_bias_baseline(maps, n_folds=6)
    want = []
    for i in range(6):
        others = np.delete(maps, i, axis=0).astype(np.float64).mean(axis=0).astype(np.float32)
        want.append(stats.spearmanr(others.ravel(), maps[i].ravel())[0])
    np.testing.assert_allclose(score.per_image, want, atol=1e-6)
    assert score.params["n_folds"] == 6


def test_center_bias_validation(rng):
    with pytest.raises(InvalidInputError, match="at least 2"):
        metrics.center_bias_baseline(rng.random((1, 8, 8)))
    with pytest.raises(InvalidInputError, match="n_folds"):
        metrics.center_bias_baseline(rng.random((4, 8, 8)), n_folds=5)
