"""``alignbench models convert ID --to torch OUT``: a harmonized model as a PyTorch model folder.

The folder is the exported-model format of :mod:`model_zoo.api` (``alignbench_model.json`` plus
``model.safetensors``), with ``"architecture": {"source": "harmonized_torch", "source_id": ID}``, so
``model_zoo.load(OUT)`` and ``alignbench run --model OUT`` rebuild the PyTorch port
(:mod:`model_zoo.convert.ports`) and load it ``strict``ly. The safetensors file is also a plain
state dict of that port: for the timm ports ``timm.create_model(name).load_state_dict(...)`` takes it
as it is.
"""
from __future__ import annotations

import os
from pathlib import Path

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError

TARGETS = ("torch",)


def convert(model: str | ModelSpec, out: str | os.PathLike, *, to: str = "torch",
            weights: str | os.PathLike = "pretrained") -> Path:
    """Convert harmonized row ``model`` (an id, or a spec whose ``input_size`` to build at) with
    ``weights`` (``"pretrained"``: the released file from the cache, mirror or URL; or a local
    ``.h5``) into an exported model folder at ``out``; returns the path of its ``alignbench_model.json``.

    Raises :class:`InvalidInputError` for a model without a PyTorch port, a target other than
    ``torch``, or ``weights="random"`` (there would be nothing to convert).
    """
    from model_zoo.api import get_spec, save_model_folder
    from model_zoo.builders.harmonized import weights_file
    from model_zoo.builders.harmonized_torch import port_with_weights
    from model_zoo.convert.ports import PORTED, library_name
    from model_zoo.weights import WeightsRequest

    if to not in TARGETS:
        raise InvalidInputError(f"convert: --to must be one of {TARGETS}, got {to!r}")
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    if spec.id not in PORTED:
        raise InvalidInputError(f"convert: model {spec.id!r} has no PyTorch port; convertible: {', '.join(PORTED)}")
    request = WeightsRequest.parse(weights)
    if request.random:
        raise InvalidInputError("convert: weights='random' leaves nothing to convert; give the released "
                                "weights (the default) or a local .h5")
    built = port_with_weights(spec.id, spec.input_size, weights_file(spec, request))
    return save_model_folder(
        out, built.model, id=f"{spec.id}_torch", framework="torch",
        architecture={"source": "harmonized_torch", "source_id": spec.id, "library": library_name(spec.id),
                      "converted_from_sha256": built.weights_sha256 or ""},
        preprocess=spec.preprocess(), display_name=f"{spec.display_name} (PyTorch)", family=spec.family,
        top1=spec.top1, base_model=spec.base_model)
