"""PyTorch forms of the harmonized models (catalog builder ``harmonized_torch``).

Exported model folders written by ``alignbench models convert`` name their architecture as
``{"source": "harmonized_torch", "source_id": "<harmonized catalog id>"}``; :func:`build` rebuilds
that PyTorch port (:mod:`model_zoo.convert.ports`) at the folder's input size and loads the
folder's safetensors. :func:`port_with_weights` also serves the catalog rows that run in PyTorch
(:mod:`model_zoo.builders.harmonized`), from the authors' ``.h5`` files.
"""
from __future__ import annotations

from pathlib import Path

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.weights import Built, WeightsRequest, torch_file_into


def port_with_weights(model_id: str, input_size: int, path: Path | None) -> Built:
    """The PyTorch port of harmonized row ``model_id`` at ``input_size`` px, with the weights of
    ``path``: a Keras ``.h5`` (converted, :mod:`model_zoo.convert.keras_to_torch`) or a
    ``.safetensors`` state dict of the port; random weights when ``path`` is None."""
    from model_zoo.convert.ports import library_name, torch_architecture

    module = torch_architecture(model_id, input_size)
    if path is None:
        return Built(module)
    path = Path(path)
    if path.suffix == ".safetensors":
        return torch_file_into(module, path)
    from model_zoo.convert.keras_to_torch import load_keras_h5_into_torch

    load_keras_h5_into_torch(module, path, model_id, architecture=f"{model_id} ({library_name(model_id)})")
    return Built(module, sha256_file(path), path)


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    """Catalog-builder entry point: ``spec.source_id`` names the harmonized row whose port to build."""
    if request.mode == "pretrained":
        raise InvalidInputError(f"model {spec.id!r}: a PyTorch port has no published weights of its own; "
                                f"load the catalog row {spec.source_id!r} or pass weights=PATH")
    return port_with_weights(spec.source_id, spec.input_size, request.path if request.mode == "file" else None)
