"""The PyTorch and Keras paths cannot drift apart, and the two frameworks share a process safely.

1. One small network (conv with TF 'SAME' padding that is asymmetric at stride 2 and at an even
   kernel, batch norm with non-trivial statistics, relu, 'SAME' max pooling, global average pooling,
   dense) is built in Keras, its weights copied into an equivalent PyTorch module, and both are run
   through :func:`model_zoo.wrap` with the same preprocessing (bilinear resize 224 -> 96, mean/std,
   BGR). Logits and saliency maps must agree to float32 tolerance.
2. ``import model_zoo`` then ``tensorflow`` and ``timm`` in either order (and TensorFlow before
   ``model_zoo``) runs in a fresh interpreter and exits 0: the guard in ``model_zoo/frameworks.py``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from model_zoo.frameworks import import_tensorflow, import_torch

torch = import_torch()
tf = import_tensorflow()
import keras  # noqa: E402

from model_zoo import wrap  # noqa: E402
from model_zoo.preprocessing import Preprocess  # noqa: E402
from tests.torch_parity_net import TorchParityNet  # noqa: E402

pytestmark = [pytest.mark.torch, pytest.mark.tf]

F = torch.nn.functional
SIDE = 96  # model input side: 224 -> 96 exercises the in-graph bilinear resize of both adapters
PREP = Preprocess(input_size=SIDE, interpolation="bilinear", mean=(0.485, 0.456, 0.406),
                  std=(0.229, 0.224, 0.225), channel_order="BGR")
CLASSES = 10


def keras_net() -> keras.Model:
    """conv3x3/2 SAME (pads 0 top/left, 1 bottom/right at 96) -> BN -> relu -> maxpool3/2 SAME (same
    asymmetry, -inf padding) -> conv4x4/1 SAME (pads 1 before, 2 after) -> relu -> GAP -> dense."""
    keras.utils.set_random_seed(3)
    x_in = keras.Input((SIDE, SIDE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(x_in)
    x = keras.layers.BatchNormalization(epsilon=1e-3, name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Conv2D(12, 4, strides=1, padding="same", name="conv2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(CLASSES, name="head")(x)
    model = keras.Model(x_in, out)
    # non-trivial BN statistics and affine parameters (fresh ones are the identity)
    rng = np.random.default_rng(4)
    gamma, beta, mean, var = (v.shape for v in model.get_layer("bn1").get_weights())
    model.get_layer("bn1").set_weights([
        rng.uniform(0.5, 1.5, gamma).astype("float32"), rng.normal(0, 0.2, beta).astype("float32"),
        rng.normal(0, 0.3, mean).astype("float32"), rng.uniform(0.5, 2.0, var).astype("float32")])
    return model


class TorchNet(TorchParityNet):
    """The same network in PyTorch (NCHW), TensorFlow's SAME padding written out with F.pad."""

    def __init__(self) -> None:
        super().__init__(CLASSES)


def torch_copy(model: keras.Model) -> TorchNet:
    """A :class:`TorchNet` holding ``model``'s weights (HWIO -> OIHW, Dense (in,out) -> (out,in))."""
    net = TorchNet()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    with torch.no_grad():
        for name in ("conv1", "conv2"):
            kernel, bias = model.get_layer(name).get_weights()
            getattr(net, name).weight.copy_(t(kernel.transpose(3, 2, 0, 1)))
            getattr(net, name).bias.copy_(t(bias))
        gamma, beta, mean, var = model.get_layer("bn1").get_weights()
        for target, value in ((net.bn1.weight, gamma), (net.bn1.bias, beta), (net.bn1.running_mean, mean),
                              (net.bn1.running_var, var)):
            target.copy_(t(value))
        kernel, bias = model.get_layer("head").get_weights()
        net.head.weight.copy_(t(kernel.T))
        net.head.bias.copy_(t(bias))
    return net


@pytest.fixture(scope="module")
def pair():
    model = keras_net()
    return wrap(model, PREP), wrap(torch_copy(model), PREP)


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)


def test_same_logits_in_both_frameworks(pair):
    k, t = pair
    x = images(3)
    lk, lt = k.predict(x), t.predict(x)
    assert lk.shape == lt.shape == (3, CLASSES)
    assert np.ptp(lk) > 1e-2  # a degenerate (constant) network would make the comparison vacuous
    np.testing.assert_allclose(lt, lk, rtol=1e-4, atol=1e-4 * np.abs(lk).max())


def test_same_saliency_maps_in_both_frameworks(pair):
    k, t = pair
    x, labels = images(3, seed=1), np.array([0, 4, 9])
    (lk, mk), (lt, mt) = k.predict_and_saliency(x, labels), t.predict_and_saliency(x, labels)
    assert mk.shape == mt.shape == (3, 224, 224)
    assert (mk > 0).mean() > 0.2  # the gradient reaches many pixels (relu and max pooling zero the rest)
    np.testing.assert_allclose(lt, lk, rtol=1e-4, atol=1e-4 * np.abs(lk).max())
    np.testing.assert_allclose(mt, mk, rtol=1e-3, atol=1e-4 * mk.max())
    # and the maps depend on the label: the comparison is not between two label-blind maps
    assert not np.allclose(k.saliency(x, np.array([1, 1, 1])), mk, rtol=1e-2)


def test_padding_is_what_makes_them_agree(pair):
    """Symmetric (PyTorch-style) padding gives different maps: the test can see a padding drift."""
    k, _ = pair
    model = k.model
    drifted = torch_copy(model)
    drifted.forward = lambda x: drifted.head(F.relu(drifted.conv2(F.pad(F.max_pool2d(F.relu(drifted.bn1(
        drifted.conv1(F.pad(x, (1, 0, 1, 0))))), 3, stride=2, padding=1), (1, 2, 1, 2)))).mean(dim=(2, 3)))
    x, labels = images(2, seed=2), np.array([2, 3])
    assert not np.allclose(wrap(drifted, PREP).saliency(x, labels), k.saliency(x, labels), rtol=1e-3, atol=1e-6)


# ---------------------------------------------------------------------- import order
_ORDERS = {
    "tensorflow_then_timm": "import model_zoo\nimport tensorflow as tf\nimport timm\n",
    "timm_then_tensorflow": "import model_zoo\nimport timm\nimport tensorflow as tf\n",
    "tensorflow_before_model_zoo": "import tensorflow as tf\nimport model_zoo\nimport timm\n",
}
_USE_BOTH = """
import torch
m = timm.create_model("resnet10t", pretrained=False, num_classes=3).eval()
with torch.no_grad():
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
assert float(tf.reduce_sum(tf.ones((2, 2)))) == 4.0
print("ok")
"""


@pytest.mark.parametrize("order", sorted(_ORDERS))
def test_both_import_orders_run_in_one_process(order):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = _ORDERS[order] + textwrap.dedent(_USE_BOTH)
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{order}: exit {proc.returncode} (a negative code is a signal)\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip().endswith("ok")
