"""Float32 fast paths of the torch adapter (channels_last, fused; compile is timed by bench_saliency
only: compiling a network takes minutes on 2 cores) and the --fast-path run option."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import runner
from benchmark.metrics import spearman
from benchmark.tasks.maps import MapsTask
from model_zoo.errors import InvalidInputError
from tests.runner_support.fakes import FakeDataset, fake_loader

torch = pytest.importorskip("torch")


def _adapter():
    from model_zoo.adapters.torch_adapter import TorchAdapter

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 8, 3, stride=2), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1000))
    return TorchAdapter(net, {"input_size": 224, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})


def test_channels_last_keeps_float32_maps() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (3, 224, 224, 3)).astype(np.float32)
    labels = np.array([1, 400, 999])
    adapter = _adapter()
    eager = adapter.saliency(x, labels)
    adapter.set_fast_path("channels_last")
    assert adapter.fast_path == "channels_last"
    assert next(adapter.module.parameters()).is_contiguous(memory_format=torch.channels_last)
    fast = adapter.saliency(x, labels)
    assert fast.dtype == np.float32 and fast.shape == eager.shape
    np.testing.assert_allclose(fast, eager, rtol=1e-4, atol=1e-6 * float(eager.max()))
    assert np.nanmin(spearman(fast, eager)) >= 0.999
    adapter.set_fast_path("eager")  # and back
    np.testing.assert_array_equal(adapter.saliency(x, labels), eager)


def test_unknown_fast_path_is_named() -> None:
    with pytest.raises(InvalidInputError, match="fast_path: 'turbo'"):
        _adapter().set_fast_path("turbo")
    with pytest.raises(InvalidInputError, match="--fast-path 'turbo'"):
        runner.run(runner.RunConfig(dataset="fake-set", models=["good-model"], fast_path="turbo", progress=False))


def test_fast_path_is_recorded_and_part_of_identity(tmp_path) -> None:
    ds = FakeDataset()

    def loader(*args, **kw):
        return _adapter()

    cfg = dict(dataset="fake-set", models=["good-model"], results_dir=tmp_path, batch_size=6, device="cpu",
               progress=False)
    eager = runner.run(runner.RunConfig(**cfg), task=MapsTask(ds), loader=loader).outcomes[0]
    assert eager.status == "ok" and eager.record["fast_path"] == "eager"
    assert "fast_path" not in eager.record["identity"]  # eager records keep their identity
    fast = runner.run(runner.RunConfig(**cfg, fast_path="channels_last"), task=MapsTask(ds), loader=loader).outcomes[0]
    assert fast.status == "ok"  # not reused: another identity
    assert fast.record["fast_path"] == "channels_last" and fast.record["identity"]["fast_path"] == "channels_last"
    assert abs(fast.record["score"] - eager.record["score"]) < 1e-4


def test_fast_path_on_a_model_without_one_is_that_model_failure(tmp_path) -> None:
    out = runner.run(runner.RunConfig(dataset="fake-set", models=["good-model"], results_dir=tmp_path, batch_size=6,
                                      device="cpu", progress=False, fast_path="compile"),
                     task=MapsTask(FakeDataset()), loader=fake_loader()).outcomes[0]
    assert out.status == "failed" and "only PyTorch models have fast paths" in out.error


def test_fused_keeps_float32_maps_and_grad_cam_still_hooks_the_module() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (3, 224, 224, 3)).astype(np.float32)
    labels = np.array([1, 400, 999])
    adapter = _adapter()
    bn = adapter.module[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2.0)
    eager = adapter.saliency(x, labels)
    cam = adapter.explain(x, labels, "grad-cam")
    adapter.set_fast_path("fused")
    assert adapter.fast_path == "fused"
    assert isinstance(adapter.module[1], torch.nn.BatchNorm2d)  # the module itself keeps its BatchNorm
    fast = adapter.saliency(x, labels)
    assert fast.dtype == np.float32 and fast.shape == eager.shape
    np.testing.assert_allclose(fast, eager, rtol=1e-4, atol=1e-5 * float(eager.max()))
    assert np.nanmin(spearman(fast, eager)) >= 0.999
    np.testing.assert_allclose(adapter.explain(x, labels, "grad-cam"), cam, rtol=1e-4, atol=1e-6)


def test_a_network_without_a_fused_path_is_that_model_failure(tmp_path) -> None:
    from model_zoo.adapters.torch_adapter import TorchAdapter

    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1000))

        def forward(self, x):
            return self.head(x) if x.mean() > 0 else -self.head(x)  # data-dependent: untraceable

    def loader(*args, **kw):
        return TorchAdapter(Branchy(), {"input_size": 224, "mean": (0.5,) * 3, "std": (0.25,) * 3})

    out = runner.run(runner.RunConfig(dataset="fake-set", models=["good-model"], results_dir=tmp_path, batch_size=6,
                                      device="cpu", progress=False, fast_path="fused"),
                     task=MapsTask(FakeDataset()), loader=loader).outcomes[0]
    assert out.status == "failed" and "cannot be traced by torch.fx" in out.error
