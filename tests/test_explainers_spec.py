"""Explainers are data: validated specs, a registry with the paper's presets, third-party plugins."""
from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from model_zoo.errors import InvalidInputError
from model_zoo.explainers import (Explainer, get_explainer, is_default, list_explainers, register_explainer,
                                  unregister_explainer)
from model_zoo.explainers import registry
from model_zoo.explainers.compute import gauss_legendre, reduce_channels, smoothgrad_noise


def test_builtins_and_the_paper_presets():
    names = list_explainers()
    for name in ("saliency", "paper-release", "paper-sweep", "training", "smoothgrad", "integrated-gradients",
                 "gradient-x-input", "grad-cam"):
        assert name in names
    default = get_explainer()
    assert default.name == "saliency" and (default.method, default.target, default.reduction, default.wrt) == (
        "saliency", "logit", "max-abs", "image")
    # the description records have always carried: a default record is the record it was
    assert default.description == "saliency: max over channels of |d logit[label] / d image| (224x224 image frame)"
    release = get_explainer("paper-release")  # xplique Saliency on the softmax head, preprocessed input
    assert (release.method, release.target, release.reduction, release.wrt) == (
        "saliency", "probability", "max-abs", "model-input")
    sweep = get_explainer("paper-sweep")  # |mean over channels| of the logit gradient
    assert (sweep.target, sweep.reduction) == ("logit", "abs-mean")
    assert get_explainer("training").reduction == "signed-mean"
    assert is_default("saliency") and not is_default("paper-sweep")


def test_unknown_names_and_bad_specs_are_clear_errors():
    with pytest.raises(InvalidInputError, match=r"unknown explainer 'salency'.*grad-cam.*saliency"):
        get_explainer("salency")
    with pytest.raises(InvalidInputError, match="reduction 'max' is not one of max-abs"):
        Explainer("x", reduction="max")
    with pytest.raises(InvalidInputError, match="target 'softmax'"):
        Explainer("x", target="softmax")
    with pytest.raises(InvalidInputError, match="parameter.*steps do not apply to smoothgrad"):
        Explainer("x", method="smoothgrad", params={"steps": 3})
    with pytest.raises(InvalidInputError, match="samples must be an int >= 1"):
        Explainer("x", method="smoothgrad", params={"samples": 0})
    with pytest.raises(InvalidInputError, match="grad-cam maps have no colour channels"):
        Explainer("x", method="grad-cam")
    with pytest.raises(InvalidInputError, match="explainer name"):
        Explainer("a/b")


def test_a_spec_is_hashable_and_round_trips_through_json():
    spec = Explainer("sg8", method="smoothgrad", params={"samples": 8})
    assert spec.params == (("samples", 8), ("seed", 0), ("sigma", 0.15))  # defaults filled in, sorted
    assert spec.samples == 8 and hash(spec) == hash(Explainer("sg8", method="smoothgrad", params={"samples": 8}))
    doc = json.loads(json.dumps(spec.to_dict()))
    assert Explainer.from_dict(doc) == spec
    assert "samples=8" in spec.description and "max-abs" in spec.description
    with pytest.raises(InvalidInputError, match="unknown field"):
        Explainer.from_dict({**doc, "colour": 1})
    for params in ([["samples", 8, 1]], "samples=8", {1: 8}):  # a record is a file: anything may be in it
        with pytest.raises(InvalidInputError, match="'params' must map parameter names"):
            Explainer.from_dict({**doc, "params": params})


def test_register_and_unregister():
    mine = Explainer("mylab-sweep", reduction="mean-abs", target="probability")
    try:
        register_explainer(mine)
        assert get_explainer("mylab-sweep") is mine and "mylab-sweep" in list_explainers()
        register_explainer(mine)  # the same spec again (a notebook re-run) is fine
        with pytest.raises(InvalidInputError, match="already registered"):
            register_explainer(Explainer("mylab-sweep"))
        with pytest.raises(InvalidInputError, match="built-in"):
            register_explainer(Explainer("saliency", reduction="mean-abs"))
    finally:
        unregister_explainer("mylab-sweep")
    assert "mylab-sweep" not in list_explainers()


def test_entry_point_plugins_register_and_a_broken_one_only_warns(tmp_path, monkeypatch, caplog):
    """A distribution declaring `alignbench.explainers` entry points: one names an Explainer, one a
    function registering one, one is broken."""
    (tmp_path / "lab_explainers.py").write_text(textwrap.dedent("""
        from model_zoo.explainers import Explainer, register_explainer
        SPEC = Explainer("lab-ig", method="integrated-gradients", params={"steps": 8})
        def register():
            register_explainer(Explainer("lab-gxi", method="gradient-x-input", reduction="mean-abs"))
        def broken():
            raise RuntimeError("boom")
    """))
    dist = tmp_path / "lab_explainers-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-explainers\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[alignbench.explainers]\nig = lab_explainers:SPEC\n"
                                           "gxi = lab_explainers:register\nbad = lab_explainers:broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.setattr(registry, "_user", {})
    with caplog.at_level("WARNING"):
        names = list_explainers()
    assert {"lab-ig", "lab-gxi"} <= set(names)
    assert get_explainer("lab-ig").samples == 8
    assert any("bad" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)
    sys.modules.pop("lab_explainers", None)


def test_channel_reductions():
    a = np.array([[[[1.0, -3.0, 2.0]]]], np.float32)  # one pixel, three channels
    assert reduce_channels(a, "max-abs")[0, 0, 0] == 3.0
    assert reduce_channels(a, "mean-abs")[0, 0, 0] == pytest.approx(2.0)
    assert reduce_channels(a, "abs-mean")[0, 0, 0] == pytest.approx(0.0)
    assert reduce_channels(a, "signed-mean")[0, 0, 0] == pytest.approx(0.0)
    assert reduce_channels(a - 1, "signed-mean")[0, 0, 0] == pytest.approx(-1.0)  # signed: no abs anywhere


def test_noise_depends_on_the_image_index_not_the_batching():
    whole = smoothgrad_noise(3, 0, 4, 2, (5, 5, 3))
    parts = np.concatenate([smoothgrad_noise(3, 0, 1, 2, (5, 5, 3)), smoothgrad_noise(3, 1, 3, 2, (5, 5, 3))])
    np.testing.assert_array_equal(whole, parts)
    assert not np.allclose(whole[0], whole[1])
    assert abs(float(whole.std()) - 1.0) < 0.15


def test_gauss_legendre_integrates_polynomials_on_the_unit_interval():
    alphas, weights = gauss_legendre(5)
    assert 0 < alphas.min() and alphas.max() < 1 and weights.sum() == pytest.approx(1.0, abs=1e-6)
    assert float((weights * alphas ** 7).sum()) == pytest.approx(1 / 8, rel=1e-5)  # exact to degree 9
