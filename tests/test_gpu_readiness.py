"""GPU paths exercised where CUDA is absent: the torch Spearman algorithm on CPU tensors, device
strings, AMP off by default, and bench/gpu_smoke.py's python part in its --dry mode."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from benchmark.ranking import rank_maps, spearman_ranked, spearman_ranked_torch
from model_zoo.errors import InvalidInputError

torch = pytest.importorskip("torch")


def test_torch_spearman_algorithm_matches_numpy_on_cpu_tensors() -> None:
    rng = np.random.default_rng(5)
    human = np.maximum(rng.normal(size=(6, 72, 72)), 0).astype(np.float32)
    model = np.abs(rng.normal(size=(6, 72, 72))).astype(np.float32)
    model[:, :10] = 0.0  # a long tie
    model[2] = np.round(model[2] * 3)  # few values
    model[3] = 1.0  # constant: undefined
    ranked = rank_maps(human)
    want = spearman_ranked(ranked, model)
    got = spearman_ranked_torch(ranked, torch.from_numpy(model))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, equal_nan=True)
    index = np.array([5, 0, 0])
    np.testing.assert_allclose(spearman_ranked_torch(ranked, torch.from_numpy(model[:3]), index),
                               spearman_ranked(ranked, model[:3], index), atol=1e-9, equal_nan=True)
    with pytest.raises(InvalidInputError, match="torch tensor"):
        spearman_ranked_torch(ranked, model)


def test_cuda_device_strings_without_cuda(monkeypatch) -> None:
    from benchmark import job
    from model_zoo.adapters import torch_adapter

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert job.resolve_device("auto") == "cpu"
    assert torch_adapter.resolve_device("auto").type == "cpu"
    with pytest.raises(InvalidInputError, match="CUDA is not available"):
        torch_adapter.resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert job.resolve_device("auto") == "cuda"
    assert torch_adapter.resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(InvalidInputError, match="only 1 CUDA device"):
        torch_adapter.resolve_device("cuda:1")


def test_amp_is_off_by_default() -> None:
    from benchmark.runner import RunConfig
    from model_zoo.adapters.torch_adapter import TorchAdapter

    assert RunConfig().precision == "float32"
    adapter = TorchAdapter(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10)), None)
    assert adapter.precision == "float32" and adapter.fast_path == "eager"
    with adapter._autocast():
        assert not torch.is_autocast_enabled("cpu")


def test_gpu_smoke_dry_run(capsys) -> None:
    path = Path(__file__).resolve().parents[1] / "bench" / "gpu_smoke.py"
    spec = importlib.util.spec_from_file_location("gpu_smoke", path)
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    out = smoke.main(["--dry", "--saliency-models", "tv_resnet18", "--models", "2", "--val-images", "100"])
    printed = capsys.readouterr().out
    for line in ("(1) Spearman cpu vs CPU", "OK", "(2) saliency tv_resnet18", "fast path fused:",
                 "(3) prepared data", "(4) projection"):
        assert line in printed
    assert out["tv_resnet18 fused"] > 0
    per_image = 1 / out["tv_resnet18"] + 1 / out["prepared"] + out["spearman_s"]
    assert out["gpu_hours"] == pytest.approx(2 * 100 * per_image / 3600)


def test_tf_memory_growth_is_set_on_every_gpu(monkeypatch) -> None:
    from model_zoo.frameworks import import_tensorflow

    tf = import_tensorflow()
    fake_gpus = ["GPU:0", "GPU:1"]
    grown = []
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake_gpus if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", lambda gpu, on: grown.append((gpu, on)))
    assert import_tensorflow() is tf
    assert grown == [("GPU:0", True), ("GPU:1", True)]  # TF takes memory on demand, leaving torch room
    grown.clear()
    import_tensorflow(gpu_memory_growth=False)
    assert grown == []
