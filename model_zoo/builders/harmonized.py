"""The authors' harmonized models (serre-lab/Harmonization): an architecture built here plus the
released ``.h5`` weights, read array by array (no ``load_model``: the files' configs name packages
that do not run on Keras 3, and reading arrays runs no code).

| id | runs as | architecture |
|---|---|---|
| harmonized_vgg16 | Keras | ``keras.applications.VGG16`` |
| harmonized_resnet50v2 | Keras | ``keras.applications.ResNet50V2`` |
| harmonized_efficientnet_b0 | Keras | ``keras.applications.EfficientNetB0``; its built-in rescale/normalise layers are set to the identity, which leaves the ``efficientnet`` package's graph the authors used |
| harmonized_vit_b16 | Keras | :func:`model_zoo.builders.vit_keras.vit_b16` |
| harmonized_convnext_tiny | PyTorch | timm ``convnext_tiny`` |
| harmonized_maxvit_tiny | PyTorch | timm ``maxvit_tiny_tf_224`` |
| harmonized_levit_128 | PyTorch | timm ``levit_128`` |

The last three were built by the authors with keras-cv-attention-models (kecam) under Keras 2, whose
MaxViT and LeViT do not build under Keras 3; their weights are converted on load to the timm
models, which compute the same function (:mod:`model_zoo.convert.ports`, checked to float32
precision against kecam itself by ``tests/test_zoo_harmonized.py``). ``alignbench models convert``
gives the other four a PyTorch form as well.

All take x/255 then ImageNet mean/std, RGB (the catalog rows), and end in a linear head (logits).
"""
from __future__ import annotations

from pathlib import Path

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.weights import Built, WeightsRequest, fetch_url

KERAS_APPS = {"harmonized_vgg16": "VGG16", "harmonized_resnet50v2": "ResNet50V2",
              "harmonized_efficientnet_b0": "EfficientNetB0"}
# the released files name some heads differently from keras.applications
HEAD_ALIASES = {"predictions": ("probs", "head")}


def architecture(spec: ModelSpec):
    """The randomly initialised architecture of a harmonized row: a ``keras.Model`` for the Keras
    rows, a ``torch.nn.Module`` for the PyTorch ones (``spec.framework``)."""
    if spec.framework == "torch":
        from model_zoo.convert.ports import torch_architecture

        return torch_architecture(spec.id, spec.input_size)
    if spec.id in KERAS_APPS:
        from model_zoo.builders.keras_apps import application

        model = application(KERAS_APPS[spec.id], input_size=spec.input_size, weights=None)
        if spec.id == "harmonized_efficientnet_b0":
            _identity_preprocessing(model)
        return model
    if spec.id == "harmonized_vit_b16":
        from model_zoo.builders.vit_keras import vit_b16

        return vit_b16(spec.input_size)
    raise InvalidInputError(f"catalog row {spec.id!r}: no harmonized architecture is known for this id")


def _identity_preprocessing(model) -> None:
    """keras.applications' EfficientNet divides by 255 then normalises; make that pair the identity
    (mean 0, variance 1/255^2), since the harmonized weights expect the catalog's preprocessing."""
    import keras
    import numpy as np

    # by type, not name: Keras numbers auto-named layers per session ("normalization_1", ...)
    (layer,) = [l for l in model.layers if isinstance(l, keras.layers.Normalization)]
    layer.adapt_mean.assign(np.zeros(3, "float32"))
    layer.adapt_variance.assign(np.full(3, (1 / 255) ** 2, "float32"))
    layer.finalize_state()


def weights_file(spec: ModelSpec, request: WeightsRequest) -> Path | None:
    """The released file for ``request``: the local path, or the cached/downloaded (or mirrored)
    file of ``spec.weights_url``; ``None`` for random weights."""
    if request.random:
        return None
    if request.mode == "file":
        return Path(request.path)
    return fetch_url(spec.weights_url, model_id=spec.id, sha256=spec.weights_sha256 or None)


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    path = weights_file(spec, request)
    if spec.framework == "torch":
        from model_zoo.builders.harmonized_torch import port_with_weights

        return port_with_weights(spec.id, spec.input_size, path)
    model = architecture(spec)
    if path is None:
        return Built(model)
    from model_zoo.builders.vit_keras import keras_layer_name
    from model_zoo.h5weights import load_into_keras

    # the identity normalisation set above is not in the authors' graph: leave it out of the match
    skip = ("normalization",) if spec.id == "harmonized_efficientnet_b0" else ()
    load_into_keras(model, path, rename=keras_layer_name, aliases=HEAD_ALIASES, skip=skip)
    return Built(model, sha256_file(path), path)
