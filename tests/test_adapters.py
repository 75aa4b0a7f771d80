"""TorchAdapter and the shared Adapter contract: saliency values, batching, OOM fallback, validation.

References are computed independently of the adapter: an analytic linear model, central finite
differences and a float64 autograd pass on a numpy-preprocessed input (resize as an explicit
interpolation matrix, not F.interpolate).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model_zoo.adapters.torch_adapter import TorchAdapter
from model_zoo.errors import AlignbenchError, InvalidInputError
from model_zoo.preprocessing import Preprocess
from model_zoo.wrap import wrap

pytestmark = pytest.mark.torch

PREP = Preprocess(input_size=160, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), channel_order="BGR")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)


class SmoothNet(nn.Module):
    """Tiny differentiable-everywhere network (tanh, average pooling): finite differences are exact."""

    def __init__(self, classes: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 5, stride=4)
        self.fc = nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=0.5)
    return module


def bilinear_matrix(out: int, size: int) -> np.ndarray:
    """Half-pixel bilinear interpolation (no antialias) as an (out, size) matrix."""
    m = np.zeros((out, size))
    for i in range(out):
        src = max((i + 0.5) * size / out - 0.5, 0.0)
        lo = min(int(np.floor(src)), size - 1)
        hi = min(lo + 1, size - 1)
        frac = src - lo
        m[i, lo] += 1 - frac
        m[i, hi] += frac
    return m


def reference_input(x: np.ndarray, p: Preprocess) -> np.ndarray:
    """Numpy version of the documented preprocessing, (N,224,224,3) -> float64 NCHW."""
    r = bilinear_matrix(p.input_size, 224)
    y = r @ x.astype(np.float64).transpose(0, 3, 1, 2) @ r.T  # (N, 3, size, size)
    y = (y * p.scale - np.array(p.mean)[None, :, None, None]) / np.array(p.std)[None, :, None, None]
    return y[:, ::-1].copy() if p.channel_order == "BGR" else y


def reference_saliency(module: nn.Module, x: np.ndarray, labels: np.ndarray, p: Preprocess) -> np.ndarray:
    """Float64 autograd through an explicit-matrix preprocessing."""
    model = seeded(type(module)(), 0).double()
    model.load_state_dict({k: v.double() for k, v in module.state_dict().items()})
    r = torch.from_numpy(bilinear_matrix(p.input_size, 224))
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    y = torch.einsum("ih,nhwc,jw->ncij", r, xt, r) * p.scale
    y = (y - torch.tensor(p.mean).view(1, 3, 1, 1).double()) / torch.tensor(p.std).view(1, 3, 1, 1).double()
    if p.channel_order == "BGR":
        y = y.flip(1)
    logits = model(y)
    (g,) = torch.autograd.grad(logits[torch.arange(len(x)), torch.from_numpy(labels)].sum(), xt)
    return g.abs().amax(-1).numpy()


# ---------------------------------------------------------------------- saliency values
def test_saliency_equals_float64_autograd_with_preprocess():
    net = seeded(SmoothNet())
    x, labels = images(3), np.array([0, 4, 6])
    maps = TorchAdapter(net, PREP).saliency(x, labels)
    ref = reference_saliency(net, x, labels, PREP)
    assert maps.shape == (3, 224, 224) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, ref, rtol=2e-3, atol=1e-4 * ref.max())


def test_saliency_equals_finite_differences():
    net = seeded(SmoothNet())
    x, label = images(1, seed=1), 2
    maps = TorchAdapter(net, PREP).saliency(x, np.array([label]))
    model = seeded(SmoothNet()).double()
    model.load_state_dict({k: v.double() for k, v in net.state_dict().items()})

    def f(img: np.ndarray) -> float:
        with torch.no_grad():
            return float(model(torch.from_numpy(reference_input(img, PREP)))[0, label])

    rng = np.random.default_rng(2)
    h = 1e-2
    for r, c in rng.integers(0, 224, (6, 2)):
        grads = []
        for ch in range(3):
            up, down = x.astype(np.float64), x.astype(np.float64)
            up[0, r, c, ch] += h
            down[0, r, c, ch] -= h
            grads.append((f(up) - f(down)) / (2 * h))
        assert maps[0, r, c] == pytest.approx(max(abs(g) for g in grads), rel=2e-3, abs=1e-6 * float(maps.max()))


def test_labels_select_the_logit_of_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Linear(3 * 224 * 224, 5)
    net = nn.Sequential(nn.Flatten(), linear)
    labels = np.array([3, 0, 4, 3])
    maps = TorchAdapter(net, None).saliency(images(4), labels)
    weights = linear.weight.detach().numpy().reshape(5, 3, 224, 224)
    expected = np.abs(weights).max(axis=1)[labels]  # d logit_c / d x = W_c, whatever x
    np.testing.assert_allclose(maps, expected, rtol=1e-6)


def test_wrap_without_preprocess_feeds_the_module_raw_nchw_pixels():
    net = seeded(SmoothNet())
    x, labels = images(2), np.array([1, 5])
    adapter = wrap(net, None)
    assert isinstance(adapter, TorchAdapter) and adapter.preprocess is None
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
    direct = net(xt)
    (g,) = torch.autograd.grad(direct[[0, 1], [1, 5]].sum(), xt)
    logits, maps = adapter.predict_and_saliency(x, labels)
    np.testing.assert_allclose(logits, direct.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adapter.predict(x), logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(maps, g.abs().amax(1).numpy(), rtol=1e-4, atol=1e-6 * float(maps.max()))


def test_wrap_accepts_a_preprocess_dict_and_rejects_foreign_options():
    adapter = wrap(SmoothNet(), {"input_size": 160}, batch_size=2)
    assert adapter.preprocess == Preprocess(input_size=160) and adapter.batch_size == 2
    with pytest.raises(InvalidInputError, match="logits_layer"):
        wrap(SmoothNet(), None, logits_layer="fc")
    with pytest.raises(InvalidInputError, match="torch.nn.Module or a keras.Model"):
        wrap(object())


# ---------------------------------------------------------------------- batching
def test_batched_equals_unbatched():
    net = seeded(SmoothNet())
    x, labels = images(5), np.array([0, 1, 2, 3, 4])
    whole = TorchAdapter(net, PREP, batch_size=5).predict_and_saliency(x, labels)
    singles = [TorchAdapter(net, PREP).predict_and_saliency(x[i : i + 1], labels[i : i + 1]) for i in range(5)]
    chunked = TorchAdapter(net, PREP, batch_size=2).predict_and_saliency(x, labels)
    for out in (np.concatenate([s[0] for s in singles]), chunked[0]):
        np.testing.assert_allclose(out, whole[0], rtol=1e-5, atol=1e-6)
    for out in (np.concatenate([s[1] for s in singles]), chunked[1]):
        np.testing.assert_allclose(out, whole[1], rtol=1e-5, atol=1e-6 * whole[1].max())


class OomAbove(nn.Module):
    """Raises torch.OutOfMemoryError for batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.inner, self.sizes = limit, seeded(SmoothNet()), []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x)


def test_out_of_memory_halves_the_chunk_and_remembers_it():
    fake = OomAbove(limit=3)
    adapter = TorchAdapter(fake, PREP, batch_size=16)
    x, labels = images(10), np.arange(10) % 7
    maps = adapter.saliency(x, labels)
    assert fake.sizes[:3] == [10, 5, 2] and adapter.batch_size == 2
    reference = TorchAdapter(fake.inner, PREP, batch_size=10).saliency(x, labels)
    np.testing.assert_allclose(maps, reference, rtol=1e-5, atol=1e-6 * reference.max())
    fake.sizes.clear()
    adapter.predict(x)
    assert set(fake.sizes) == {2}  # the working size is kept for later calls


def test_out_of_memory_at_batch_one_is_a_clear_error():
    adapter = TorchAdapter(OomAbove(limit=0), None, batch_size=4)
    with pytest.raises(AlignbenchError, match="out of memory with a batch of one"):
        adapter.predict(images(4))


def test_other_errors_are_not_retried():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        TorchAdapter(Broken(), None, batch_size=4).predict(images(4))


# ---------------------------------------------------------------------- module state, precision, device
def test_module_training_mode_and_requires_grad_are_restored_and_bn_stats_untouched():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(1), nn.LazyLinear(3))
    net(torch.zeros(1, 3, 224, 224))  # materialise the lazy layer
    net.train()
    net[0].weight.requires_grad_(False)
    before = net[1].running_mean.clone()
    TorchAdapter(net, Preprocess(mean=PREP.mean, std=PREP.std)).saliency(images(2), np.array([0, 2]))
    assert net.training and net[1].training
    assert [p.requires_grad for p in net.parameters()] == [False, True, True, True, True, True]
    assert torch.equal(net[1].running_mean, before)  # ran in eval mode
    assert all(p.grad is None for p in net.parameters())  # only the input gradient was computed


def test_bfloat16_maps_are_float32_and_close_to_float32_maps():
    from scipy.stats import spearmanr

    net = seeded(SmoothNet())
    x, labels = images(2), np.array([1, 2])
    full = TorchAdapter(net, PREP).saliency(x, labels)
    half = TorchAdapter(net, PREP, precision="bfloat16").saliency(x, labels)
    assert half.dtype == np.float32 and not np.array_equal(half, full)  # autocast really ran
    assert min(spearmanr(h.ravel(), f.ravel())[0] for h, f in zip(half, full)) > 0.95


def test_precision_and_device_errors():
    with pytest.raises(InvalidInputError, match="float16 is not supported on CPU"):
        TorchAdapter(SmoothNet(), None, precision="float16")
    with pytest.raises(InvalidInputError, match="precision"):
        TorchAdapter(SmoothNet(), None, precision="int8")
    with pytest.raises(InvalidInputError, match="device"):
        TorchAdapter(SmoothNet(), None, device="tpu:0")


def test_cuda_request_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        TorchAdapter(SmoothNet(), None, device="cuda:1")
    assert TorchAdapter(SmoothNet(), None, device="auto").device.type == "cpu"


# ---------------------------------------------------------------------- input validation
@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((2, 3, 224, 224), np.float32), "shape"),
        (np.zeros((2, 224, 224, 3), np.uint8), "dtype uint8"),
        (np.full((2, 224, 224, 3), 300, np.float32), r"\[0, 255\]"),
        (np.full((2, 224, 224, 3), np.nan, np.float32), "NaN"),
        ([[0.0]], "numpy array"),
    ],
)
def test_bad_images_are_rejected(bad, match):
    with pytest.raises(InvalidInputError, match=match):
        TorchAdapter(SmoothNet(), None).saliency(bad, np.zeros(2, np.int64))


@pytest.mark.parametrize(
    "labels,match",
    [(np.array([0]), r"shape \(2,\)"), (np.array([0.5, 1.0]), "integer"), (np.array([-1, 0]), "0..")],
)
def test_bad_labels_are_rejected(labels, match):
    with pytest.raises(InvalidInputError, match=f"labels.*{match}|{match}"):
        TorchAdapter(SmoothNet(), None).saliency(images(2), labels)


def test_label_beyond_the_logits_is_rejected_before_and_after_the_width_is_known():
    adapter = TorchAdapter(SmoothNet(classes=7), None)
    with pytest.raises(InvalidInputError, match="7 classes"):
        adapter.saliency(images(2), np.array([0, 7]))
    assert adapter.num_classes == 7
    with pytest.raises(InvalidInputError, match="labels must be in 0..6"):
        adapter.saliency(images(2), np.array([0, 9]))
    assert adapter.saliency(images(2), np.array([0.0, 6.0])).shape == (2, 224, 224)  # integral floats are fine


def test_nan_maps_are_reported_not_returned():
    class NanNet(SmoothNet):
        def forward(self, x):
            return super().forward(x) * torch.sqrt(x.mean() - 1e9)

    with pytest.raises(InvalidInputError, match="NaN"):
        TorchAdapter(NanNet(), None).saliency(images(1), np.array([0]))


def test_non_logit_outputs_are_rejected():
    with pytest.raises(InvalidInputError, match=r"\(N, classes\)"):
        TorchAdapter(nn.Conv2d(3, 2, 3), None).predict(images(1))


def test_empty_batch_gives_empty_outputs():
    logits, maps = TorchAdapter(SmoothNet(), None).predict_and_saliency(images(0), np.zeros(0, np.int64))
    assert maps.shape == (0, 224, 224) and logits.shape[0] == 0
