"""Layer activations through the adapters: spatial layout kept (NCHW -> NHWC, tokens -> grid with the
class token dropped), layer discovery, the per-(model, layer) cache, Keras sub-models."""
from __future__ import annotations

import numpy as np
import pytest

from model_zoo.errors import InvalidInputError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


class TinyViT(torch.nn.Module):
    """Patch embedding 32x32 -> 7x7 tokens + a class token; 'blocks.k' keep (N, 50, C)."""

    def __init__(self, dim: int = 8):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, dim, 32, stride=32)
        self.cls = torch.nn.Parameter(torch.full((1, 1, dim), 1000.0))  # recognisable if not dropped
        self.blocks = torch.nn.Sequential(*[Block(dim) for _ in range(2)])
        self.head = torch.nn.Linear(dim, 5)

    def forward(self, x):
        t = self.patch(x / 255.0).flatten(2).transpose(1, 2)  # (N, 49, C), row-major over the grid
        t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        return self.head(self.blocks(t)[:, 0])


class Block(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc = torch.nn.Linear(dim, dim)

    def forward(self, t):
        return t + self.fc(t)


def _images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(n, 224, 224, 3)).astype(np.float32)


def test_conv_layers_come_back_channel_last():
    from benchmark.neural.synthetic import random_convnet
    from model_zoo.activations import activations, spatial_layers
    from model_zoo.wrap import wrap

    net = random_convnet(0)
    adapter = wrap(net, batch_size=2)
    layers = spatial_layers(adapter)
    assert layers == ["stages.0", "stages.1", "stages.2", "stages.3"]
    assert spatial_layers(adapter, max_layers=2) == ["stages.0", "stages.3"]
    imgs = _images(3)
    acts = activations(adapter, imgs, ["stages.1"])  # chunks of 2 images: concatenated in order
    with torch.no_grad():
        ref = net.stages[:2](torch.from_numpy(imgs).permute(0, 3, 1, 2) / 127.5 - 1.0)
    np.testing.assert_allclose(acts["stages.1"], ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidInputError, match="no such module"):
        activations(adapter, imgs, ["stages.9"])
    with pytest.raises(InvalidInputError, match="no spatial layout"):
        activations(adapter, imgs, ["head"])


def test_vit_tokens_reshaped_to_grid_without_class_token():
    from model_zoo.activations import activations, spatial_layers, to_spatial
    from model_zoo.wrap import wrap

    net = TinyViT()
    adapter = wrap(net)
    assert spatial_layers(adapter) == ["blocks.0", "blocks.1"]
    imgs = _images(2)
    out = activations(adapter, imgs, ["blocks.0"])["blocks.0"]
    assert out.shape == (2, 7, 7, 8)
    assert np.abs(out).max() < 500  # the class token (about 1000) was dropped
    with torch.no_grad():
        patch = net.patch(torch.from_numpy(imgs).permute(0, 3, 1, 2) / 255.0)  # (N, C, 7, 7)
        tokens = patch.flatten(2).transpose(1, 2)
        ref = (tokens + net.blocks[0].fc(tokens)).reshape(2, 7, 7, 8)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)  # token k -> row k // 7, column k % 7
    with pytest.raises(InvalidInputError, match="no spatial layout"):
        to_spatial(np.zeros((1, 61, 4)), "torch")  # 61 = 49 + 12: too many extra tokens


def test_grid_features_are_cached_per_model_and_layer(tmp_path, monkeypatch):
    import model_zoo.activations as act
    from benchmark.neural.activations import grid_features, model_key
    from benchmark.neural.synthetic import random_convnet
    from model_zoo.wrap import wrap

    adapter = wrap(random_convnet(1))
    imgs = _images(3, seed=1)
    key = model_key("rand", None)
    first = grid_features(adapter, imgs, ["stages.0", "stages.3"], 5, image_fingerprint="f" * 64, key=key,
                          max_channels=10, cache_root=tmp_path)
    assert first["stages.0"].shape == (3, 5, 5, 8)  # 16 channels -> groups of 2 -> 8 <= 10
    calls = []
    real = act.activations
    monkeypatch.setattr(act, "activations", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    again = grid_features(adapter, imgs, ["stages.0", "stages.3", "stages.2"], 5, image_fingerprint="f" * 64,
                          key=key, max_channels=10, cache_root=tmp_path)
    assert calls == [["stages.2"]]  # only the missing layer ran
    np.testing.assert_array_equal(again["stages.0"], first["stages.0"])
    grid_features(adapter, imgs, ["stages.0"], 5, image_fingerprint="e" * 64, key=key, max_channels=10,
                  cache_root=tmp_path)
    assert calls[-1] == ["stages.0"]  # other images: recomputed


@pytest.mark.tf
def test_keras_layers_through_a_sub_model():
    pytest.importorskip("tensorflow")
    from model_zoo.activations import activations, spatial_layers
    from model_zoo.frameworks import import_tensorflow
    from model_zoo.wrap import wrap

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(4, 8, strides=8, name="c1")(inp)
    x = keras.layers.Conv2D(6, 2, strides=2, name="c2")(x)
    out = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    model = keras.Model(inp, out)
    adapter = wrap(model)
    assert spatial_layers(adapter) == ["c1", "c2"]
    imgs = _images(2)
    acts = activations(adapter, imgs, ["c2"])
    ref = keras.Model(inp, model.get_layer("c2").output)(imgs).numpy()
    assert acts["c2"].shape == (2, 14, 14, 6)
    np.testing.assert_allclose(acts["c2"], ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(InvalidInputError, match="not in"):
        activations(adapter, imgs, ["nope"])
