"""PyTorch explainers agree with captum's implementations of the same methods on the same network
(1e-4 relative), and obey the invariances captum's own tests check (completeness, batching, limits).

The network is the zoo parity test's (conv/BN/relu/maxpool/conv/GAP/dense, TF 'SAME' padding) behind
a real preprocessing (bilinear 224 -> 96, mean/std, BGR), so the explainers differentiate through the
adapter's preprocessing as they do for catalog models. captum differentiates ``f(z) = net(prep(x(z)))``
with ``z`` the image or the normalised image, exactly the function the explainer's spec names.
"""
from __future__ import annotations

import numpy as np
import pytest

from model_zoo.frameworks import import_torch

torch = import_torch()
captum_attr = pytest.importorskip("captum.attr")
from captum.attr import (InputXGradient, IntegratedGradients, LayerAttribution, LayerGradCam,  # noqa: E402
                         NoiseTunnel, Saliency)
from captum.attr._core import noise_tunnel  # noqa: E402

from model_zoo import wrap  # noqa: E402
from model_zoo.errors import InvalidInputError  # noqa: E402
from model_zoo.explainers import Explainer, get_explainer  # noqa: E402
from model_zoo.explainers.compute import reduce_channels, smoothgrad_noise  # noqa: E402
from model_zoo.preprocessing import Preprocess  # noqa: E402
from model_zoo.preprocessing_torch import TorchPreprocess  # noqa: E402
from tests.torch_parity_net import TorchParityNet  # noqa: E402

pytestmark = [pytest.mark.torch,
              pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")]

F = torch.nn.functional
PREP = Preprocess(input_size=96, interpolation="bilinear", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                  channel_order="BGR")
CLASSES = 10


class Net(TorchParityNet):
    def __init__(self) -> None:
        torch.manual_seed(0)  # before the layers are made: the same weights every time
        super().__init__(CLASSES)
        with torch.no_grad():  # non-trivial BN statistics (fresh ones are the identity)
            self.bn1.running_mean.uniform_(-0.3, 0.3)
            self.bn1.running_var.uniform_(0.5, 2.0)


@pytest.fixture(scope="module")
def net():
    return Net().eval()


@pytest.fixture(scope="module")
def adapter(net):
    return wrap(net, PREP, batch_size=8)


def images(n: int, seed: int = 0) -> np.ndarray:
    """Random images in which every channel spans exactly [0, 255] (so every image has the same value
    range, and captum's one SmoothGrad stdev equals the per-image one of the spec)."""
    x = np.random.default_rng(seed).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)
    x[:, 0, 0], x[:, 0, 1] = 0.0, 255.0
    return x


LABELS = np.array([0, 4, 9])


def affine(wrt: str):
    if wrt == "image":
        return np.ones(3, np.float32), np.zeros(3, np.float32)
    gain, offset = PREP.affine()
    return np.asarray(gain, np.float32), np.asarray(offset, np.float32)


def forward(net, wrt: str, target: str):
    """captum's forward function: NHWC z -> logits or probabilities, through the same preprocessing."""
    prep = TorchPreprocess(PREP)
    gain, offset = (torch.from_numpy(a) for a in affine(wrt))

    def f(z):
        out = net(prep(((z - offset) / gain).permute(0, 3, 1, 2)))
        return out.softmax(dim=1) if target == "probability" else out

    return f


def to_z(x: np.ndarray, wrt: str) -> torch.Tensor:
    gain, offset = affine(wrt)
    return torch.from_numpy(x * gain + offset)


def close(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape == (len(LABELS), 224, 224)
    assert np.abs(theirs).max() > 0 and np.count_nonzero(theirs) > 0.1 * theirs.size  # not a vacuous comparison
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


CASES = [(t, r, w) for t in ("logit", "probability") for r in ("max-abs", "mean-abs", "abs-mean", "signed-mean")
         for w in ("image", "model-input")]


@pytest.mark.parametrize("target,reduction,wrt", CASES[::3] + [("probability", "max-abs", "model-input")])
def test_saliency_equals_captum_saliency(net, adapter, target, reduction, wrt):
    x = images(3)
    spec = Explainer("s", target=target, reduction=reduction, wrt=wrt)
    theirs = Saliency(forward(net, wrt, target)).attribute(to_z(x, wrt), target=torch.from_numpy(LABELS), abs=False)
    close(adapter.explain(x, LABELS, spec), reduce_channels(theirs.detach().numpy(), reduction))


def test_the_paper_presets_equal_captum_saliency(net, adapter):
    x = images(3, seed=1)
    for name in ("paper-release", "paper-sweep", "training"):
        spec = get_explainer(name)
        theirs = Saliency(forward(net, spec.wrt, spec.target)).attribute(
            to_z(x, spec.wrt), target=torch.from_numpy(LABELS), abs=False)
        close(adapter.explain(x, LABELS, name), reduce_channels(theirs.detach().numpy(), spec.reduction))


@pytest.mark.parametrize("wrt", ["image", "model-input"])
def test_smoothgrad_equals_captum_noise_tunnel_with_the_same_noise(net, adapter, monkeypatch, wrt):
    x, k, sigma = images(3, seed=2), 6, 0.2
    spec = Explainer("sg", method="smoothgrad", wrt=wrt, params={"samples": k, "sigma": sigma, "seed": 5})
    z = to_z(x, wrt)
    stdev = sigma * float(z[0].max() - z[0].min())
    fixed = torch.from_numpy(smoothgrad_noise(5, 0, 3, k, (224, 224, 3)).reshape(3 * k, 224, 224, 3))
    # captum draws torch.normal(0, stdev) for the repeat_interleave'd inputs: give it the spec's noise
    monkeypatch.setattr(noise_tunnel.torch, "normal", lambda mean, std: std * fixed)
    theirs = NoiseTunnel(Saliency(forward(net, wrt, "logit"))).attribute(
        z, nt_type="smoothgrad", nt_samples=k, stdevs=stdev, target=torch.from_numpy(LABELS), abs=False)
    monkeypatch.undo()
    close(adapter.explain(x, LABELS, spec), reduce_channels(theirs.detach().numpy(), "max-abs"))


@pytest.mark.parametrize("target,wrt", [("logit", "image"), ("probability", "model-input")])
def test_integrated_gradients_equal_captum(net, adapter, target, wrt):
    x = images(3, seed=3)
    spec = Explainer("ig", method="integrated-gradients", target=target, wrt=wrt, reduction="signed-mean",
                     params={"steps": 12})
    theirs = IntegratedGradients(forward(net, wrt, target)).attribute(
        to_z(x, wrt), target=torch.from_numpy(LABELS), n_steps=12, method="gausslegendre")
    close(adapter.explain(x, LABELS, spec), reduce_channels(theirs.detach().numpy(), "signed-mean"))


def test_gradient_x_input_equals_captum(net, adapter):
    x = images(3, seed=4)
    spec = Explainer("gxi", method="gradient-x-input", wrt="model-input", reduction="mean-abs")
    theirs = InputXGradient(forward(net, "model-input", "logit")).attribute(
        to_z(x, "model-input"), target=torch.from_numpy(LABELS))
    close(adapter.explain(x, LABELS, spec), reduce_channels(theirs.detach().numpy(), "mean-abs"))


@pytest.mark.parametrize("target", ["logit", "probability"])
def test_grad_cam_equals_captum_layer_grad_cam(net, adapter, target):
    x = images(3, seed=5)
    assert adapter.gradcam_layer(x) == "conv2"  # the last 4-D activation
    cam = LayerGradCam(forward(net, "image", target), net.conv2).attribute(
        to_z(x, "image"), target=torch.from_numpy(LABELS), relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (224, 224), interpolate_mode="bilinear")[:, 0]
    spec = Explainer("gc", method="grad-cam", reduction="none", target=target)
    close(adapter.explain(x, LABELS, spec), theirs.detach().numpy())


# ------------------------------------------------------------------ invariances (captum's test style)
def test_integrated_gradients_are_complete(net, adapter):
    """Attributions sum to f(x) - f(baseline) (the zero baseline: a black image)."""
    x = images(2, seed=6)
    labels = np.array([3, 7])
    spec = Explainer("ig", method="integrated-gradients", reduction="signed-mean", params={"steps": 64})
    total = adapter.explain(x, labels, spec).reshape(2, -1).sum(axis=1) * 3  # mean over 3 channels -> sum
    logits = adapter.predict(np.concatenate([x, np.zeros_like(x[:1])]))
    expected = logits[[0, 1], labels] - logits[2, labels]
    assert np.abs(expected).min() > 1e-3
    np.testing.assert_allclose(total, expected, rtol=2e-2, atol=1e-3 * np.abs(expected).max())


def test_maps_do_not_depend_on_the_batch_size(net):
    x = images(3, seed=7)
    spec = Explainer("sg", method="smoothgrad", params={"samples": 4})
    one, many = wrap(net, PREP, batch_size=1), wrap(net, PREP, batch_size=16)
    np.testing.assert_allclose(one.explain(x, LABELS, spec), many.explain(x, LABELS, spec), rtol=1e-5, atol=1e-9)


def test_smoothgrad_with_vanishing_noise_is_saliency(adapter):
    x = images(3, seed=8)
    tiny = Explainer("sg", method="smoothgrad", params={"samples": 2, "sigma": 1e-7})
    np.testing.assert_allclose(adapter.explain(x, LABELS, tiny), adapter.explain(x, LABELS, "saliency"),
                               rtol=1e-4, atol=1e-6 * adapter.saliency(x, LABELS).max())


def test_model_input_gradients_are_image_gradients_over_the_gain(net, adapter):
    """The documented meaning of wrt=model-input: with z = x * gain + offset, dF/dz_c = dF/dx_c / gain_c
    (per channel, so max-abs may pick another channel and the channel mean weighs them differently)."""
    x = images(3, seed=9)
    gain, _ = affine("model-input")
    dx = Saliency(forward(net, "image", "logit")).attribute(to_z(x, "image"), target=torch.from_numpy(LABELS),
                                                           abs=False).detach().numpy()
    close(adapter.explain(x, LABELS, "training"), (dx / gain).mean(axis=-1))
    close(adapter.explain(x, LABELS, Explainer("r", wrt="model-input")), np.abs(dx / gain).max(axis=-1))
    assert not np.allclose(adapter.explain(x, LABELS, "training"), dx.mean(axis=-1), rtol=1e-2)


def test_the_default_explainer_is_the_saliency_path(adapter):
    x = images(2, seed=10)
    logits, maps = adapter.predict_and_explain(x, LABELS[:2])
    ref_logits, ref_maps = adapter.predict_and_saliency(x, LABELS[:2])
    np.testing.assert_array_equal(maps, ref_maps)
    np.testing.assert_array_equal(logits, ref_logits)


def test_explainers_depend_on_the_label(adapter):
    x = images(3, seed=11)
    for spec in (get_explainer("paper-release"), Explainer("gc", method="grad-cam", reduction="none")):
        assert not np.allclose(adapter.explain(x, LABELS, spec), adapter.explain(x, np.array([1, 1, 1]), spec), rtol=1e-2)


class Tokens(torch.nn.Module):
    """A vision-transformer-shaped model: a patch convolution, then token layers only."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = torch.nn.Conv2d(3, 16, 32, stride=32)
        self.mix = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, CLASSES)

    def forward(self, x):
        tokens = self.mix(self.patch(x).flatten(2).transpose(1, 2))
        return self.head(tokens.mean(dim=1))


def test_grad_cam_refuses_a_model_without_a_last_conv_stage_by_name():
    vit = wrap(Tokens(), None)
    with pytest.raises(InvalidInputError, match=r"grad-cam: torch Tokens has no last convolutional stage.*'patch'.*'mix'"):
        vit.explain(images(1), LABELS[:1], "grad-cam")
    with pytest.raises(InvalidInputError, match="has no module 'layer9'"):
        vit.explain(images(1), LABELS[:1], Explainer("gc", method="grad-cam", reduction="none", params={"layer": "layer9"}))
    # naming a 4-D layer is the user's explicit choice, and works
    maps = vit.explain(images(1), LABELS[:1], Explainer("gc", method="grad-cam", reduction="none", params={"layer": "patch"}))
    assert maps.shape == (1, 224, 224) and maps.min() >= 0


def test_bad_input_is_refused_before_any_pass(adapter):
    with pytest.raises(InvalidInputError, match="labels must have shape"):
        adapter.explain(images(2), LABELS, "smoothgrad")
    with pytest.raises(InvalidInputError, match="unknown explainer 'nope'"):
        adapter.explain(images(3), LABELS, "nope")


@pytest.mark.parametrize("method,param", [("smoothgrad", "samples"), ("integrated-gradients", "steps")])
def test_many_pass_methods_batch_their_copies(net, method, param):
    """8 copies of 4 images through an adapter of chunk 16: two passes of 16 rows, not 32 passes of one."""
    seen: list[int] = []
    handle = net.conv1.register_forward_hook(lambda _m, inputs, _o: seen.append(int(inputs[0].shape[0])))
    try:
        wrap(net, PREP, batch_size=16).explain(images(4, seed=12), np.array([0, 1, 2, 3]),
                                               Explainer("m", method=method, params={param: 8}))
    finally:
        handle.remove()
    assert seen == [16, 16]
