"""Decisions, human responses, accuracy curves and the curve alignment (numpy/scipy references)."""
from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from benchmark.psychophysics import decisions, humans, scores
from model_zoo.errors import DataUnavailableError, InvalidInputError

REVS = [1, 1.58, 2.51, 3.98, 6.31, 10, 15.8, 25.1, 39.8, 63.1]


def test_decision_rules_match_independent_definitions():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(200, 1000))
    z[:50, :398] += 2.0
    p = softmax(z, axis=1)
    assert np.array_equal(decisions.decide(z, "argmax"), np.argmax(z, axis=1) < 398)
    assert np.array_equal(decisions.decide(z, "summed_probability"), p[:, :398].sum(axis=1) > 0.5)
    assert np.array_equal(decisions.decide(z, "mean_logit"), z[:, :398].mean(1) - z[:, 398:].mean(1) > 0)
    # the rules differ: many weak animal classes vs one strong non-animal class
    z2 = np.zeros((1, 1000))
    z2[0, :398] = 1.0
    z2[0, 700] = 5.0
    assert not decisions.decide(z2, "argmax")[0] and decisions.decide(z2, "summed_probability")[0]
    huge = np.full((1, 1000), -1e4)
    huge[0, 3] = 1e4
    assert decisions.decide(huge, "summed_probability")[0]  # no overflow


def test_decide_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="1000"):
        decisions.decide(np.zeros((2, 10)))
    with pytest.raises(InvalidInputError, match="rule"):
        decisions.decide(np.zeros((2, 1000)), "vote")


def test_accuracy_per_level_matches_pandas():
    rng = np.random.default_rng(1)
    level = rng.integers(0, 11, 500)
    dec, truth = rng.random(500) < 0.5, rng.random(500) < 0.5
    got = scores.accuracy_per_level(dec, truth, level)
    ref = pd.DataFrame({"l": level, "c": dec == truth}).groupby("l")["c"].agg(["mean", "count"])
    assert np.array_equal(got.levels, ref.index.to_numpy())
    assert np.allclose(got.accuracy, ref["mean"]) and np.array_equal(got.n, ref["count"])


def _reference_alignment(m, h, n_boot, seed):
    mn = (m - m.min()) / (m.max() - m.min())
    hn = (h - h.min()) / (h.max() - h.min())
    idx = np.random.default_rng(seed).integers(0, len(m), size=(n_boot, len(m)))
    v = -np.log(np.maximum(((mn[idx] - hn[idx]) ** 2).mean(1), scores.MSE_FLOOR))
    return v.mean(), v.std(ddof=1)


def test_curve_alignment_matches_reference_and_orders_models():
    h = np.array([0.52, 0.55, 0.6, 0.66, 0.72, 0.8, 0.86, 0.9, 0.93, 0.94])
    close = h + np.array([0.02, -0.03, 0.01, 0.0, 0.03, -0.02, 0.01, 0.0, -0.01, 0.02])
    reversed_ = h[::-1]
    got = scores.curve_alignment(close, h, n_boot=500, seed=4)
    ref = _reference_alignment(close, h, 500, 4)
    assert np.isclose(got.mean, ref[0]) and np.isclose(got.sd, ref[1])
    assert got.mean > scores.curve_alignment(reversed_, h, n_boot=500, seed=4).mean
    same = scores.curve_alignment(h, h, n_boot=50)
    assert np.isclose(same.mean, -np.log(scores.MSE_FLOOR)) and np.isfinite(same.mean)


def test_flat_model_curve_is_defined():
    h = np.linspace(0.5, 0.95, 10)
    flat = scores.curve_alignment(np.full(10, 0.5), h, n_boot=200, seed=0)
    assert flat.model_flat and not flat.human_flat and np.isfinite(flat.mean)
    ref = -np.log(((0.5 - (h - h.min()) / (h.max() - h.min()))[np.random.default_rng(0).integers(0, 10, (200, 10))] ** 2)
                  .mean(1))
    assert np.isclose(flat.mean, ref.mean())
    # uninformative beats anti-human, loses to human-like
    assert scores.curve_alignment(h[::-1], h, n_boot=200).mean < flat.mean < scores.curve_alignment(h + 0.01, h).mean


def test_published_code_score_is_model_independent():
    h = np.linspace(0.5, 0.9, 10)
    x = [10 ** (k / 5) for k in range(11)]
    a = scores.published_code_score_BUGGY(np.linspace(0.5, 1, 10), h, x, n_boot=100, seed=2)
    b = scores.published_code_score_BUGGY(np.linspace(1, 0.5, 10), h, x, n_boot=100, seed=2)
    assert a == b
    rng = np.random.default_rng(2)
    hn = (h - h.min()) / (h.max() - h.min())
    ref = []
    for _ in range(100):
        idx = rng.choice(10, 10, replace=True)
        ref.append(-np.log(np.mean((np.asarray(x)[idx] - hn[idx]) ** 2)))
    assert np.isclose(a[0], np.mean(ref)) and np.isclose(a[1], np.std(ref))


def test_human_responses_round_trip(tmp_path):
    acc = np.linspace(0.55, 0.9, 10)
    path = humans.write_synthetic_responses(tmp_path / humans.HUMAN_FILE, acc, revelations=REVS,
                                            trials_per_level=80, seed=3)
    with np.load(path) as raw:
        table, cols = raw["data_human"], list(raw["columns"])
    frame = pd.DataFrame(table, columns=cols)
    ref = frame.groupby("Revelation")["correct"].mean()
    curve = humans.human_curve(humans.read_responses(path))
    assert np.allclose(curve.revelations, REVS)
    assert np.allclose(curve.accuracy, ref.drop(200).to_numpy())
    assert np.isclose(curve.full_accuracy, ref[200]) and curve.n_full == 80
    assert np.all(curve.n_trials == 80)


def test_human_file_errors(tmp_path):
    with pytest.raises(DataUnavailableError, match=str(tmp_path)):
        humans.fetch_human_data(download=False, dest_dir=tmp_path)
    bad = tmp_path / "bad.npz"
    np.savez(bad, data_human=np.zeros((3, 2)), columns=np.array(["Revelation", "rt"]))
    with pytest.raises(InvalidInputError, match="correct"):
        humans.read_responses(bad)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, data_human=np.array([[1, 1]], dtype=object), columns=np.array(["Revelation", "correct"]))
    with pytest.raises(InvalidInputError, match="trust_pickle"):
        humans.read_responses(pickled)
    assert len(humans.read_responses(pickled, trust_pickle=True)) == 1


@pytest.mark.network
def test_human_file_download_from_loopback_mirror(tmp_path):
    served = tmp_path / "served"
    humans.write_synthetic_responses(served / humans.HUMAN_FILE, [0.6] * 10, revelations=REVS, trials_per_level=10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        got = humans.fetch_human_data(mirror=url, dest_dir=tmp_path / "cache")
    finally:
        server.shutdown()
    assert got.read_bytes() == (served / humans.HUMAN_FILE).read_bytes()
    assert humans.fetch_human_data(download=False, dest_dir=tmp_path / "cache") == got  # cached now
