"""Neural predictivity maths on generated data (numpy only): PLS equals scikit-learn, ceilings match
their closed forms, noise scores zero, layer selection never sees the held-out image, resampling."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.neural import pls
from benchmark.neural import predictivity as pr
from benchmark.neural.resample import bilinear_resize, grid_pool, reduce_channels, to_grid
from model_zoo.errors import InvalidInputError


# ----------------------------------------------------------------------------- PLS
@pytest.mark.parametrize("d,c,k", [(30, 5, 10), (8, 12, 25), (40, 1, 25)])
def test_moment_pls_equals_sklearn(d, c, k):
    rng = np.random.default_rng(d + c)
    x = rng.normal(size=(6, 36, d))
    y = x[..., : min(d, 4)] @ rng.normal(size=(min(d, 4), c)) + 0.5 * rng.normal(size=(6, 36, c))
    fast = pls.fit_moments(pls.image_moments(x, y).total([2]), k)
    ref = pls.fit_sklearn(np.delete(x, 2, 0).reshape(-1, d), np.delete(y, 2, 0).reshape(-1, c), k, tol=1e-12)
    assert fast.n_components == min(k, d)
    np.testing.assert_allclose(fast.predict(x[2]), ref.predict(x[2]), rtol=1e-5, atol=1e-6 * np.abs(ref.predict(x[2])).max())


def test_moments_leave_out_equals_fit_on_the_rest():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 20, 7)), rng.normal(size=(5, 20, 3))
    m = pls.image_moments(x, y)
    a = pls.fit_moments(m.total([0, 3]), 4)
    b = pls.fit_moments(pls.image_moments(x[[1, 2, 4]], y[[1, 2, 4]]).total(), 4)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9, atol=1e-12)
    with pytest.raises(InvalidInputError, match="no training images"):
        m.total(range(5))


def test_rank_deficient_features_stop_early():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(4, 25, 2))
    x = np.concatenate([base, base @ rng.normal(size=(2, 3))], -1)  # rank 2 in 5 columns
    y = base @ rng.normal(size=(2, 2))
    model = pls.fit_moments(pls.image_moments(x, y).total([0]), 25)
    assert model.n_components <= 2
    np.testing.assert_allclose(model.predict(x[0]), y[0], atol=1e-8)  # exact: y is linear in x


# ----------------------------------------------------------------------------- ceilings
def test_split_half_ceiling_matches_closed_form():
    """Signal maps with unit variance within every image and site, plus N(0, sd^2) per trial: the
    trial mean's reliability is 1 / (1 + sd^2 / T), and a perfect model's r is its square root."""
    rng = np.random.default_rng(3)
    n, g, s, t, sd = 6, 12, 24, 8, 1.5
    signal = rng.normal(size=(n, g, g, s))
    signal = (signal - signal.mean((1, 2), keepdims=True)) / signal.std((1, 2), keepdims=True)
    trials = signal[None] + rng.normal(0, sd, size=(t, n, g, g, s))
    ceiling = pr.split_half_ceiling(trials, n_splits=20)
    expected = np.sqrt(1 / (1 + sd ** 2 / t))
    assert ceiling.value == pytest.approx(expected, abs=0.03)
    assert ceiling.reliability == pytest.approx(1 / (1 + sd ** 2 / t), abs=0.04)
    # and a perfect model scores the ceiling (what the ceiling means)
    from benchmark.neural.synthetic import oracle_score

    assert oracle_score(signal, trials.mean(0)) == pytest.approx(ceiling.value, abs=0.03)
    assert pr.ceiling_for(trials.mean(0), trials).method == "split-half"


def _maps_with_correlations(n_loc: int, cosines: list[float], rng) -> np.ndarray:
    """(n_loc, S) zero-mean maps: site 0 = u, site k = c_k u + sqrt(1-c_k^2) v_k (orthonormal u, v_k),
    so corr(0, k) = c_k exactly and corr(j, k) = c_j c_k."""
    q, _ = np.linalg.qr(rng.normal(size=(n_loc, len(cosines) + 1)) - 0)
    q = q - q.mean(0)  # keep zero mean, then re-orthonormalise
    q, _ = np.linalg.qr(np.column_stack([np.ones(n_loc), q]))
    u, vs = q[:, 1], q[:, 2:]
    cols = [u] + [c * u + np.sqrt(1 - c * c) * v for c, v in zip(cosines, vs.T)]
    return np.column_stack(cols)


def test_inter_channel_ceiling_closed_form_and_the_papers_bug():
    rng = np.random.default_rng(4)
    g = 9
    img0 = _maps_with_correlations(g * g, [0.3, 0.5, 0.9], rng)  # best pair (0, 3): the last site
    img1 = _maps_with_correlations(g * g, [0.7, 0.2, 0.1], rng)  # best pair (0, 1)
    resp = np.stack([img0, img1]).reshape(2, g, g, 4) * 3.0 + 10.0
    fixed = pr.inter_channel_ceiling(resp)
    np.testing.assert_allclose(fixed.per_image, [0.9, 0.7], atol=1e-9)
    assert fixed.value == pytest.approx(0.8)
    buggy = pr.inter_channel_ceiling(resp, paper_bugs=True)
    # skipping the last site loses image 0's best pair; for image 0 the best among sites 0..2 is 0.5
    np.testing.assert_allclose(buggy.per_image, [0.5, 0.7], atol=1e-9)
    assert "BUGGY" in buggy.method
    with pytest.raises(InvalidInputError, match="at least 2 sites"):
        pr.inter_channel_ceiling(resp[..., :1])


def test_precedence_bug_alone_changes_no_correlation():
    rng = np.random.default_rng(5)
    resp = rng.normal(size=(3, 6, 6, 5))
    resp = np.concatenate([resp, resp[..., :1] * 0 + rng.normal(size=(3, 6, 6, 1))], -1)  # last site: noise
    a = pr.inter_channel_ceiling(resp[..., :5]).per_image
    b = pr.inter_channel_ceiling(resp, paper_bugs=True).per_image  # skips the added last site
    np.testing.assert_allclose(a, b, atol=1e-12)


# ----------------------------------------------------------------------------- scores
def _panel(rng, n=8, g=7, d=12, s=6, noise=0.2):
    feats = {f"l{k}": rng.normal(size=(n, g, g, d)).astype(np.float32) for k in range(3)}
    x = pr.prepare_features(feats["l1"]).reshape(n, g, g, d)
    resp = x @ rng.normal(size=(d, s)) + noise * rng.normal(size=(n, g, g, s))
    return feats, resp


def test_right_layer_wins_and_noise_sites_score_zero():
    rng = np.random.default_rng(6)
    feats, resp = _panel(rng)
    res = pr.score_panel(resp, feats, n_resamples=200)
    assert res.best_layer == "l1" and set(res.chosen_layers) == {"l1"}
    assert res.heldout.mean > 0.9 and res.heldout.low <= res.heldout.mean <= res.heldout.high
    scores = {l.layer: l.score for l in res.layers}
    assert abs(scores["l0"]) < 0.15 and abs(scores["l2"]) < 0.15
    noise = pr.score_panel(rng.normal(size=resp.shape), feats, n_resamples=200)
    assert abs(noise.heldout.mean) < 0.1 and abs(noise.best_on_test.mean) < 0.15
    assert noise.best_on_test.mean >= max(l.score for l in noise.layers) - 1e-12  # optimistic by construction
    d = res.to_dict()
    assert d["predictivity_label"] == pr.HELDOUT_LABEL and d["best_on_test"]["label"] == pr.OPTIMISTIC_LABEL
    assert len(d["per_layer"]) == 3 and d["chosen_layer_counts"] == {"l1": 8}


def test_layer_choice_for_an_image_never_looks_at_that_image():
    rng = np.random.default_rng(7)
    feats, resp = _panel(rng, n=6)
    base = pr.score_panel(resp, feats, n_resamples=50)
    spoiled = dict(feats)
    spoiled["l2"] = feats["l2"].copy()
    # make layer l2 perfect on image 0 only: the choice for fold 0 must not notice
    spoiled["l2"][0] = feats["l1"][0]
    again = pr.score_panel(resp, spoiled, n_resamples=50)
    assert again.chosen[0] == base.chosen[0]


def test_sklearn_engine_gives_the_same_scores():
    rng = np.random.default_rng(8)
    feats, resp = _panel(rng, n=5, g=5, d=6, s=3)
    a = pr.score_layer(feats["l1"], resp, engine="moments", inner=False)
    b = pr.score_layer(feats["l1"], resp, engine="sklearn", inner=False)
    np.testing.assert_allclose(a.fold_scores, b.fold_scores, atol=1e-4)


def test_spatial_map_score_and_pearson_edge_cases():
    rng = np.random.default_rng(9)
    resp = rng.normal(size=(3, 8, 8, 4))
    full, coarse = pr.spatial_map_scores(resp * 2 + 1, resp)
    np.testing.assert_allclose(full, 1.0)
    np.testing.assert_allclose(coarse, 1.0)
    r = pr.pearson_columns(np.ones((10, 2)), rng.normal(size=(10, 2)))
    assert np.isnan(r).all()


def test_bootstrap_interval_contains_the_mean():
    v = np.random.default_rng(10).normal(0.4, 0.1, size=14)
    iv = pr.bootstrap_mean(v, n_resamples=500)
    assert iv.low < v.mean() < iv.high and iv.high - iv.low < 0.15 and iv.n == 14
    both = pr.combine_intervals([iv, iv])
    assert both.mean == pytest.approx(iv.mean)


# ----------------------------------------------------------------------------- resampling
def test_grid_pool_matches_adaptive_pooling_on_multiples_and_resize_up():
    rng = np.random.default_rng(11)
    maps = rng.normal(size=(2, 18, 18, 3)).astype(np.float32)
    pooled = grid_pool(maps, 6)
    np.testing.assert_allclose(pooled, maps.reshape(2, 6, 3, 6, 3, 3).mean((2, 4)), atol=1e-6)
    assert to_grid(maps[:, :4, :4], 9).shape == (2, 9, 9, 3)  # smaller map: bilinear upsample
    const = np.full((1, 3, 3, 1), 2.0, np.float32)
    np.testing.assert_allclose(bilinear_resize(const, 7), 2.0)
    red = reduce_channels(np.arange(10, dtype=np.float32).reshape(1, 1, 1, 10) * np.ones((1, 2, 2, 1)), 4)
    np.testing.assert_allclose(red[0, 0, 0], [1.0, 4.0, 7.0, 9.0])  # groups of 3, last group of 1
