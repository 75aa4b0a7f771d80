"""``keras.applications`` models: ``source_id`` is the application's name (``VGG16``, ``EfficientNetB0``).

Built with ``classifier_activation=None`` so the output is the logit (the paper's xplique run took the
softmax of these models; alignbench differentiates logits, see conventions.md "Saliency"). Pretrained
weights come through ``keras.utils.get_file`` and its cache (``~/.keras/models``).
"""
from __future__ import annotations

from pathlib import Path

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.weights import Built, WeightsRequest, unavailable


def application(name: str, *, input_size: int, weights: str | None):
    """``keras.applications.<name>`` with a logits head for 1000 classes."""
    from model_zoo.frameworks import import_tensorflow

    import_tensorflow()
    import keras

    ctor = getattr(keras.applications, name, None)
    if ctor is None:
        raise InvalidInputError(f"keras.applications has no model {name!r}")
    return ctor(weights=weights, include_top=True, classes=1000, classifier_activation=None,
                input_shape=(input_size, input_size, 3))


def keras_cache_dir() -> Path:
    import os

    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    if request.mode == "pretrained":
        try:
            return Built(application(spec.source_id, input_size=spec.input_size, weights="imagenet"))
        except Exception as exc:  # keras.utils.get_file raises plain Exception on fetch failure
            raise unavailable(spec.id, f"keras.applications.{spec.source_id}(weights='imagenet')",
                              keras_cache_dir(), f"{type(exc).__name__}: {str(exc)[:200]}") from None
    model = application(spec.source_id, input_size=spec.input_size, weights=None)
    if request.mode == "file":
        return keras_file_into(model, request.path)
    return Built(model)


def keras_file_into(model, path: Path) -> Built:
    """Load a Keras weights file (``.weights.h5`` or a legacy ``.h5``) into ``model``; records sha256."""
    path = Path(path)
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise InvalidInputError(f"{path}: weights do not fit the architecture: {type(exc).__name__}: {str(exc)[:400]}") from None
    return Built(model, sha256_file(path), path)
