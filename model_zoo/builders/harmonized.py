"""The authors' harmonized models (serre-lab/Harmonization): an architecture built here plus the
released ``.h5`` weights, loaded layer by layer with :func:`load_h5_by_name` (no ``load_model``: the
files' configs name packages that do not run on Keras 3, and weights-only loading runs no code).

| id | architecture |
|---|---|
| harmonized_vgg16 | ``keras.applications.VGG16`` |
| harmonized_resnet50v2 | ``keras.applications.ResNet50V2`` |
| harmonized_efficientnet_b0 | ``keras.applications.EfficientNetB0``; its built-in rescale/normalise layers are set to the identity, which leaves the ``efficientnet`` package's graph the authors used |
| harmonized_vit_b16 | :func:`model_zoo.builders.vit_keras.vit_b16` |
| harmonized_convnext_tiny | ``keras_cv_attention_models.convnext.ConvNeXtTiny`` (builds on Keras 3) |
| harmonized_maxvit_tiny, harmonized_levit_128 | kecam's MaxViT/LeViT do not build on Keras 3 (they pass Keras tensors to raw TensorFlow ops): ``load`` raises a clear error |

All take x/255 then ImageNet mean/std, RGB (the catalog rows), and end in a linear head (logits).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from model_zoo.catalog import ModelSpec
from model_zoo.errors import AlignbenchError, InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.weights import Built, WeightsRequest, fetch_url

KERAS_APPS = {"harmonized_vgg16": "VGG16", "harmonized_resnet50v2": "ResNet50V2",
              "harmonized_efficientnet_b0": "EfficientNetB0"}
UNSUPPORTED = {
    "harmonized_maxvit_tiny": "keras_cv_attention_models.maxvit.MaxViT_Tiny",
    "harmonized_levit_128": "keras_cv_attention_models.levit.LeViT128",
}
# the released files name some heads differently from keras.applications
_HEAD_ALIASES = {"predictions": ("probs", "head", "predictions")}


def architecture(spec: ModelSpec):
    """The randomly initialised Keras architecture of a harmonized row."""
    if spec.id in UNSUPPORTED:
        raise AlignbenchError(
            f"model {spec.id!r} cannot be built here: its architecture ({UNSUPPORTED[spec.id]}) does not build "
            "under Keras 3 (keras-cv-attention-models passes Keras tensors to raw TensorFlow ops). Run it in an "
            "environment with tf-keras 2 and serre-lab/Harmonization's own loader."
        )
    if spec.id in KERAS_APPS:
        from model_zoo.builders.keras_apps import application

        model = application(KERAS_APPS[spec.id], input_size=spec.input_size, weights=None)
        if spec.id == "harmonized_efficientnet_b0":
            _identity_preprocessing(model)
        return model
    if spec.id == "harmonized_vit_b16":
        from model_zoo.builders.vit_keras import vit_b16

        return vit_b16(spec.input_size)
    if spec.id == "harmonized_convnext_tiny":
        from model_zoo.frameworks import import_tensorflow

        import_tensorflow()
        try:
            from keras_cv_attention_models import convnext
        except ImportError:
            raise AlignbenchError(f"model {spec.id!r} needs `pip install --no-deps keras-cv-attention-models`") from None
        return convnext.ConvNeXtTiny(input_shape=(spec.input_size, spec.input_size, 3), num_classes=1000,
                                     classifier_activation=None, pretrained=None)
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


def _vit_rename(name: str) -> str:
    return name.replace("/", ".")


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    model = architecture(spec)
    if request.random:
        return Built(model)
    path = request.path if request.mode == "file" else fetch_url(spec.weights_url, model_id=spec.id,
                                                                   sha256=spec.weights_sha256 or None)
    # the identity normalisation set above is not in the authors' graph: leave it out of the match
    skip = ("normalization",) if spec.id == "harmonized_efficientnet_b0" else ()
    load_h5_by_name(model, Path(path), rename=_vit_rename, skip=skip)
    return Built(model, sha256_file(path), Path(path))


def _model_layers(model) -> dict:
    return {layer.name: layer for layer in model.layers if layer.weights}


def load_h5_by_name(model, path: Path, *, rename: Callable[[str], str] = lambda n: n, skip=()) -> None:
    """Load a legacy Keras ``.h5`` (full model or weights only) into ``model``, layer by layer.

    Each file layer is matched to the model layer named ``rename(file_name)`` (heads also through
    ``_HEAD_ALIASES``); inside a layer, weights are paired in Keras's saved order (trainable then
    non-trainable) and each pair must agree in variable name (``kernel``, ``gamma``...), parent
    layer name and shape. Every model layer with weights (except ``skip``) must be filled, and every
    file layer with weights used: anything else raises :class:`InvalidInputError` listing the layers.
    """
    import re

    import h5py

    def base(name: str) -> str:  # "normalization_3" -> "normalization" (Keras's per-session numbering)
        return re.sub(r"_\d+$", "", name)

    skipped = {base(n) for n in skip}

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(f"{path}: not an HDF5 weights file ({exc})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        file_layers = {}
        for name in root.attrs.get("layer_names", list(root.keys())):
            name = name.decode() if isinstance(name, bytes) else str(name)
            group = root[name]
            wnames = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
            if wnames and base(name) not in skipped:
                file_layers[name] = (group, wnames)
        targets = {n: layer for n, layer in _model_layers(model).items() if base(n) not in skipped}
        filled, problems = set(), []
        for fname, (group, wnames) in file_layers.items():
            kname = rename(fname)
            layer = targets.get(kname)
            if layer is None:
                for canonical, aliases in _HEAD_ALIASES.items():
                    if fname in aliases and canonical in targets:
                        layer, kname = targets[canonical], canonical
            if layer is None:
                problems.append(f"file layer {fname!r} has no model layer")
                continue
            variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
            if len(variables) != len(wnames):
                problems.append(f"layer {kname!r}: file has {len(wnames)} weights, model {len(variables)}")
                continue
            values = []
            for var, wname in zip(variables, wnames):
                value = group[wname][()]
                fparts = wname.split(":")[0].split("/")
                kparts = var.path.replace(".", "/").split("/")
                if fparts[-1] != kparts[-1] or (len(fparts) > 1 and fparts[-2] not in (kparts[-2], fname, kname)):
                    problems.append(f"layer {kname!r}: file weight {wname!r} does not match model variable {var.path!r}")
                elif tuple(value.shape) != tuple(var.shape):
                    problems.append(f"layer {kname!r}: {wname!r} has shape {value.shape}, model {tuple(var.shape)}")
                values.append(value)
            if len(problems) == 0:
                for var, value in zip(variables, values):
                    var.assign(value)
                filled.add(kname)
        empty = sorted(set(targets) - filled)
        if empty and not problems:
            problems.append(f"model layers with no weights in the file: {empty[:8]}{' ...' if len(empty) > 8 else ''}")
    if problems:
        raise InvalidInputError(f"{path}: weights do not fit {model.name}: " + "; ".join(problems[:6]))
