"""Keras and PyTorch compute every explainer the same way on the same weights.

The zoo parity test's network (tests/test_zoo_parity.py: built in Keras, its weights copied into an
equivalent PyTorch module, a resizing BGR mean/std preprocessing) behind both adapters; every built-in
explainer (samples reduced), both targets and both frames agree to float32 tolerance, and the Keras
adapter's own refusals name the model.
"""
from __future__ import annotations

import numpy as np
import pytest

from model_zoo.frameworks import import_tensorflow, import_torch

torch = import_torch()
tf = import_tensorflow()
import keras  # noqa: E402

from model_zoo import wrap  # noqa: E402
from model_zoo.errors import InvalidInputError  # noqa: E402
from model_zoo.explainers import Explainer, get_explainer, list_explainers  # noqa: E402
from test_zoo_parity import PREP, keras_net, torch_copy  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.tf]


@pytest.fixture(scope="module")
def pair():
    model = keras_net()
    return wrap(model, PREP, batch_size=8), wrap(torch_copy(model), PREP, batch_size=8)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)


LABELS = np.array([0, 4, 9])


def small(spec: Explainer) -> Explainer:
    """The same recipe with few samples (the arithmetic is shared; the passes are what is compared)."""
    if spec.method == "smoothgrad":
        return Explainer(spec.name, method=spec.method, params={"samples": 3, "seed": 1})
    if spec.method == "integrated-gradients":
        return Explainer(spec.name, method=spec.method, params={"steps": 4})
    if spec.method == "grad-cam":  # the torch copy's relu is functional: compare the conv2 activation
        return Explainer(spec.name, method=spec.method, reduction="none", params={"layer": "conv2"})
    return spec


@pytest.mark.parametrize("name", [n for n in list_explainers()])
def test_every_builtin_explainer_agrees_across_frameworks(pair, name):
    k, t = pair
    x, spec = images(3, seed=1), small(get_explainer(name))
    (lk, mk), (lt, mt) = k.predict_and_explain(x, LABELS, spec), t.predict_and_explain(x, LABELS, spec)
    assert mk.shape == mt.shape == (3, 224, 224)
    assert np.count_nonzero(mk) > 0.1 * mk.size  # a vacuous (all-zero) map would agree trivially
    np.testing.assert_allclose(lk, lt, rtol=1e-4, atol=1e-4 * np.abs(lt).max())
    np.testing.assert_allclose(mk, mt, rtol=1e-3, atol=1e-4 * np.abs(mt).max())


@pytest.mark.parametrize("target,reduction,wrt", [("probability", "mean-abs", "image"),
                                                  ("logit", "signed-mean", "model-input")])
def test_targets_and_frames_agree_across_frameworks(pair, target, reduction, wrt):
    k, t = pair
    x = images(3, seed=2)
    spec = Explainer("x", method="gradient-x-input", target=target, reduction=reduction, wrt=wrt)
    mk, mt = k.explain(x, LABELS, spec), t.explain(x, LABELS, spec)
    np.testing.assert_allclose(mk, mt, rtol=1e-3, atol=1e-4 * np.abs(mt).max())


def test_keras_grad_cam_picks_the_last_4d_layer_and_refuses_token_models(pair):
    k, _ = pair
    assert k.gradcam_layer() == k.logits_model.layers[-3].name  # the relu after conv2, before pooling
    x_in = keras.Input((224, 224, 3))
    tokens = keras.layers.Reshape((49, 48))(keras.layers.Conv2D(48, 32, strides=32, name="patch")(x_in))
    tokens = keras.layers.Dense(16, name="mix")(tokens)
    out = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling1D()(tokens))
    vit = wrap(keras.Model(x_in, out, name="tiny_vit"), None)
    with pytest.raises(InvalidInputError, match=r"keras tiny_vit has no last convolutional stage.*'patch'"):
        vit.explain(images(1), LABELS[:1], "grad-cam")
    with pytest.raises(InvalidInputError, match="has no layer 'nope'"):
        vit.explain(images(1), LABELS[:1], Explainer("g", method="grad-cam", reduction="none", params={"layer": "nope"}))
