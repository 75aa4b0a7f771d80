"""One preprocessing function per framework, shared by the adapters and the trainers."""
from __future__ import annotations

import numpy as np
import pytest

from model_zoo.preprocessing import Preprocess

pytestmark = [pytest.mark.torch, pytest.mark.tf]

CASES = [Preprocess(input_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
         Preprocess(input_size=160, interpolation="bilinear", mean=(0.5,) * 3, std=(0.5,) * 3, channel_order="BGR"),
         Preprocess(input_size=112, interpolation="nearest", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
         None]


@pytest.mark.parametrize("pre", CASES, ids=lambda p: "none" if p is None else f"{p.interpolation}-{p.input_size}-{p.channel_order}")
def test_torch_and_tensorflow_preprocess_alike(pre):
    import model_zoo  # noqa: F401  (framework import order)
    from model_zoo.preprocessing_tf import TFPreprocess, tf
    from model_zoo.preprocessing_torch import TorchPreprocess, torch

    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    a = TorchPreprocess(pre)(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    b = TFPreprocess(pre)(tf.constant(x)).numpy()
    assert a.shape == b.shape == (2, pre.input_size if pre else 224, pre.input_size if pre else 224, 3)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    if pre is not None and pre.channel_order == "BGR":  # the last channel in is the first out
        gain, offset = pre.affine()
        mean_in = x[..., 2].mean() * gain[2] + offset[2]
        assert abs(a[..., 0].mean() - mean_in) < 0.05


def test_the_torch_trainer_takes_every_interpolation_the_adapter_takes(tmp_path):
    """The trainer used to pass align_corners with "nearest", which F.interpolate rejects."""
    torch = pytest.importorskip("torch")
    from model_zoo.harmonization import trainer_torch
    from model_zoo.harmonization.config import TrainConfig
    from model_zoo.harmonization.models import Architecture

    arch = Architecture("tiny-harmonized", "Tiny (harmonized)", "cnn", "torch", "user", "tiny",
                        preprocess=Preprocess(input_size=24, interpolation="nearest", mean=(0.5,) * 3, std=(0.25,) * 3))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 3))
    rng = np.random.default_rng(0)
    batch = {"images": rng.uniform(0, 255, (4, 16, 16, 3)).astype(np.float32), "labels": np.array([0, 1, 2, 0]),
             "heatmaps": rng.random((4, 16, 16)).astype(np.float32)}
    config = TrainConfig(model="tiny", epochs=1, warmup_epochs=0, steps_per_epoch=1, batch_size=4, lr=0.01,
                         mixup_alpha=0.0, checkpoint_every=0, num_classes=3, tensorboard=False)
    result = trainer_torch.train(model, [batch], config, tmp_path, arch=arch, export=False)
    assert result.steps == 1 and np.isfinite(result.last_metrics["total"])
