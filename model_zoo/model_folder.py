"""The exported model folder: one format, one reader, one writer (``alignbench train`` exports,
``save_model_folder``, ``alignbench models convert``, leaderboard plugin exports).

A folder holding ``alignbench_model.json`` and one weights file::

    {
      "format": "alignbench-model/1",
      "id": "resnet50-harmonized-1a2b3c4d",    # model id (required)
      "display_name": "ResNet-50 (harmonized)",
      "family": "harmonized",                  # one of catalog.FAMILIES
      "framework": "torch" | "keras",
      "architecture": {"source": "timm" | "torchvision" | "keras" | <catalog builder>,
                       "source_id": "resnet50.a1_in1k"},   # what builds the graph (torch, .h5 weights)
      "preprocess": {"input_size": 224, "interpolation": "bilinear", "mean": [..3], "std": [..3],
                     "scale": 0.00392156862745098, "channel_order": "RGB"},   # Preprocess fields
      "weights": "model.safetensors" | "model.keras",      # a file name inside the folder
      "weights_sha256": "<64 hex>",            # checked on load when present
      "top1": null | 76.1,
      "harmonized": true,
      "base_model": "tv_resnet50" | null,      # the model it was trained from (Pareto arrows)
      "training": {...}                        # optional: the recipe that produced it
    }

* ``torch``: the architecture is built with random weights by the catalog builder named by
  ``architecture.source`` (``timm``, ``torchvision``, or any catalog ``builder`` such as ``bagnet``),
  and the ``.safetensors`` weights are loaded with ``strict=True``.
* ``keras``: ``model.keras`` is read with ``keras.saving.load_model(safe_mode=True)`` (no lambdas,
  no arbitrary code); ``.weights.h5``/``.h5`` weights need an ``architecture`` that keras.applications
  or a catalog builder can build.

Weights are written first, the JSON last, both atomically, so a folder with a JSON always has
complete weights whose sha256 it records.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

from model_zoo.catalog import FAMILIES, FRAMEWORKS, ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_output, atomic_write_bytes, atomic_write_json, sha256_file
from model_zoo.preprocessing import Preprocess

FORMAT = "alignbench-model/1"
MANIFEST = "alignbench_model.json"
WEIGHTS_FILES = {"torch": "model.safetensors", "keras": "model.keras"}


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder holding :data:`MANIFEST`."""
    return (Path(path) / MANIFEST).is_file()


def read(folder: str | os.PathLike) -> tuple[ModelSpec, dict[str, Any]]:
    """Parse and validate ``alignbench_model.json``; returns the spec and the raw document."""
    folder = Path(folder)
    meta_path = folder / MANIFEST
    if not meta_path.is_file():
        raise InvalidInputError(f"{folder}: not an exported model folder (no {MANIFEST})")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else doc
        raise InvalidInputError(f"{meta_path}: field 'format' must be {FORMAT!r}, got {found!r}")
    for key in ("id", "framework", "weights"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise InvalidInputError(f"{meta_path}: field {key!r} is required (a non-empty string)")
    if doc["framework"] not in FRAMEWORKS:
        raise InvalidInputError(f"{meta_path}: field 'framework' must be one of {FRAMEWORKS}, got {doc['framework']!r}")
    family = doc.get("family") or ("harmonized" if doc.get("harmonized") else "cnn")
    if family not in FAMILIES:
        raise InvalidInputError(f"{meta_path}: field 'family' must be one of {FAMILIES}, got {family!r}")
    if bool(doc.get("harmonized", family == "harmonized")) != (family == "harmonized"):
        raise InvalidInputError(f"{meta_path}: fields 'harmonized' and 'family' disagree")
    weights = Path(doc["weights"])
    if weights.is_absolute() or ".." in weights.parts:
        raise InvalidInputError(f"{meta_path}: field 'weights' must be a file name inside the folder, got {doc['weights']!r}")
    arch = doc.get("architecture") or {}
    if not isinstance(arch, dict):
        raise InvalidInputError(f"{meta_path}: field 'architecture' must be an object")
    pre = Preprocess.coerce(doc.get("preprocess") or {})
    top1 = doc.get("top1")
    if top1 is not None and not (isinstance(top1, (int, float)) and 0 < top1 <= 100):
        raise InvalidInputError(f"{meta_path}: field 'top1' must be null or a percentage, got {top1!r}")
    spec = ModelSpec(
        id=doc["id"], display_name=doc.get("display_name") or doc["id"], family=family, framework=doc["framework"],
        source=str(arch.get("source", "folder")), source_id=str(arch.get("source_id", "")),
        input_size=pre.input_size, interpolation=pre.interpolation, mean=pre.mean, std=pre.std, scale=pre.scale,
        channel_order=pre.channel_order, top1=top1, top1_source="exported model folder" if top1 is not None else "",
        in_paper="no", notes=f"exported model folder {folder}", builder=str(arch.get("source", "")),
        weights_sha256=str(doc.get("weights_sha256") or ""),
        meta={"base_model": doc.get("base_model"), "folder": str(folder)},
    )
    return spec, doc


def write(folder: str | os.PathLike, model: Any, *, id: str, framework: str, preprocess: Preprocess | Mapping | None,
          architecture: Mapping[str, str] | None = None, display_name: str | None = None,
          family: str = "harmonized", harmonized: bool | None = None, top1: float | None = None,
          base_model: str | None = None, training: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (a torch ``nn.Module`` as safetensors, or a Keras model as ``.keras``) and its
    manifest into ``folder``; returns the folder. Tied torch tensors are saved as separate copies
    (safetensors refuses shared storage)."""
    if framework not in FRAMEWORKS:
        raise InvalidInputError(f"model folder: framework must be one of {FRAMEWORKS}, got {framework!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wname = WEIGHTS_FILES[framework]
    if framework == "torch":
        from safetensors.torch import save

        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        atomic_write_bytes(folder / wname, save(state, metadata={"format": "pt"}))
    else:
        _save_keras(model, folder / wname)
    pre = Preprocess.coerce(preprocess) or Preprocess(scale=1.0)
    harmonized = family == "harmonized" if harmonized is None else harmonized
    doc = {
        "format": FORMAT, "id": id, "display_name": display_name or id,
        "family": "harmonized" if harmonized else family, "framework": framework,
        "architecture": dict(architecture or {}), "preprocess": dataclasses.asdict(pre), "weights": wname,
        "weights_sha256": sha256_file(folder / wname), "top1": top1, "harmonized": harmonized,
        "base_model": base_model,
    }
    if training is not None:
        doc["training"] = dict(training)
    atomic_write_json(folder / MANIFEST, doc)
    return folder


def _save_keras(model: Any, path: Path) -> None:
    """``model.save`` to a temporary name in the same folder, then an atomic rename."""
    with atomic_output(path, suffix=path.suffix) as tmp:  # Keras picks the format by the extension
        model.save(str(tmp))
