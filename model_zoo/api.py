"""Public entry points: :func:`list_models`, :func:`get_spec`, :func:`load`, and exported model folders.

Exported model folder (written by the harmonized trainer, or by :func:`save_model_folder`)
------------------------------------------------------------------------------------------
A folder holding ``alignbench_model.json`` and one weights file::

    {
      "format": "alignbench-model/1",
      "id": "my_resnet50_harmonized",          # model id (required)
      "display_name": "ResNet-50 (harmonized)",
      "family": "harmonized",                  # one of catalog.FAMILIES
      "framework": "torch" | "keras",
      "architecture": {"source": "timm" | "torchvision" | "keras" | <catalog builder>,
                       "source_id": "resnet50.a1_in1k"},   # what builds the graph (torch only)
      "preprocess": {"input_size": 224, "interpolation": "bilinear", "mean": [..3], "std": [..3],
                     "scale": 0.00392156862745098, "channel_order": "RGB"},   # Preprocess fields
      "weights": "model.safetensors" | "model.keras",      # a file name inside the folder
      "weights_sha256": "<64 hex>",            # checked on load when present
      "top1": null | 76.1,
      "harmonized": true,
      "base_model": "tv_resnet50" | null       # the catalog id it was trained from
    }

* ``torch``: the architecture is built with random weights by the catalog builder named by
  ``architecture.source`` (``timm``, ``torchvision``, or any catalog ``builder`` such as ``bagnet``),
  and the ``.safetensors`` weights are loaded with ``strict=True``.
* ``keras``: ``model.keras`` is read with ``keras.saving.load_model(safe_mode=True)`` (no lambdas,
  no arbitrary code); ``.weights.h5``/``.h5`` weights need an ``architecture`` that keras.applications
  or a catalog builder can build.
"""
from __future__ import annotations

import contextlib
import json
import os
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from model_zoo.catalog import FAMILIES, FRAMEWORKS, PAPER_LEVELS, ModelSpec
from model_zoo.errors import InvalidInputError, UnknownModelError
from model_zoo.fileio import atomic_output, atomic_write_json, sha256_file

MODEL_FOLDER_FORMAT = "alignbench-model/1"
MODEL_FOLDER_FILE = "alignbench_model.json"


# --------------------------------------------------------------------------- listing
def _matches(value: Any, wanted: Any) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return value in wanted
    return value == wanted


def list_models(
    *,
    family: str | Iterable[str] | None = None,
    source: str | Iterable[str] | None = None,
    framework: str | Iterable[str] | None = None,
    harmonized: bool | None = None,
    paper: bool | None = None,
    in_paper: str | Iterable[str] | None = None,
) -> list[ModelSpec]:
    """Catalog and registered models matching every given filter (``None`` = any), catalog order.

    ``paper=True`` keeps the paper's compared models: rows with ``in_paper`` in yes/likely/guess,
    harmonized rows excepted, i.e. the 85 that make the paper's own family counts
    (50 + 6 + 10 + 6 + 13; its abstract says 84, see ``shared/reference/models_notes.md``). The four
    harmonized models the paper trained are ``list_models(harmonized=True, in_paper="yes")``.
    ``source`` matches the row's source library (``timm``, ``torchvision``, ``keras``, ``url``,
    ``registered``) or its builder (``bagnet``, ``clip_zeroshot``, ...).
    """
    from model_zoo.registry import all_models

    for name, value, allowed in (("family", family, FAMILIES), ("framework", framework, FRAMEWORKS)):
        values = [value] if isinstance(value, str) else list(value or [])
        bad = [v for v in values if v not in allowed]
        if bad:
            raise InvalidInputError(f"list_models: {name}={bad[0]!r} is not one of {allowed}")
    out = []
    for entry in all_models().values():
        s = entry.spec
        if not (_matches(s.family, family) and _matches(s.framework, framework) and _matches(s.in_paper, in_paper)):
            continue
        if source is not None and not (_matches(s.source, source) or _matches(s.builder, source)):
            continue
        if harmonized is not None and s.harmonized != harmonized:
            continue
        if paper is not None and s.paper_model != paper:
            continue
        out.append(s)
    return out


def get_spec(model_id: str) -> ModelSpec:
    """The spec of ``model_id``; :class:`UnknownModelError` (with close matches) when unknown."""
    from model_zoo.registry import lookup

    return lookup(model_id).spec


# --------------------------------------------------------------------------- loading
def build_model(model_id: str | ModelSpec, *, weights: str | os.PathLike = "pretrained"):
    """The bare framework model (``nn.Module`` or ``keras.Model``) and its weights record
    (:class:`model_zoo.weights.Built`), without an adapter."""
    from model_zoo.registry import catalog_builder, lookup
    from model_zoo.weights import Built, WeightsRequest

    request = WeightsRequest.parse(weights)
    spec_id = model_id.id if isinstance(model_id, ModelSpec) else model_id
    entry = lookup(spec_id)
    with _seeded_if_random(request, entry.spec):
        if entry.kind == "catalog":
            return entry.spec, catalog_builder(entry.spec)(entry.spec, request)
        model = entry.builder(request.mode == "pretrained", request.path)
    return entry.spec, Built(model, sha256_file(request.path) if request.path else None, request.path)


RANDOM_WEIGHTS_SEED = 0


@contextlib.contextmanager
def _seeded_if_random(request, spec: ModelSpec):
    """Random weights are the same on every call, process and machine (seed = RANDOM_WEIGHTS_SEED and
    the model id), so an untrained control scored twice, or by two Ray workers, gives one result.
    The global RNG state of torch / numpy / Keras is restored afterwards."""
    if not request.random:
        yield
        return
    seed = (RANDOM_WEIGHTS_SEED + zlib.crc32(spec.id.encode("utf-8"))) % (2**31)
    if spec.framework == "torch":
        from model_zoo.frameworks import import_torch

        torch = import_torch()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
        return
    from model_zoo.frameworks import import_tensorflow

    import_tensorflow()
    import keras
    import numpy as np

    import random

    np_state, py_state = np.random.get_state(), random.getstate()
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def load(
    model_id_or_path: str | os.PathLike | ModelSpec,
    *,
    weights: str | os.PathLike = "pretrained",
    device: str = "cpu",
    precision: str = "float32",
    batch_size: int | None = None,
):
    """An adapter (``predict``: (N,1000) logits; ``saliency``: (N,224,224) maps) for a catalog or
    registered model id, a :class:`ModelSpec`, or an exported model folder (see module docstring).

    ``weights``: ``"pretrained"`` (the published weights, through the source library's cache),
    ``"random"`` (the same architecture, untrained: nothing is downloaded), or a local file path.
    ``device`` applies to PyTorch models ("cpu", "cuda", "cuda:1", "auto"); Keras models run where
    TensorFlow places them. Raises :class:`WeightsUnavailableError` when weights cannot be had.
    """
    target = model_id_or_path
    if not isinstance(target, ModelSpec):
        path = Path(target)
        if path.is_dir() or str(target).endswith(MODEL_FOLDER_FILE):
            if weights != "pretrained":
                raise InvalidInputError("load(folder): the folder carries its own weights; do not pass weights=")
            return load_model_folder(path.parent if path.is_file() else path, device=device, precision=precision,
                                     batch_size=batch_size)
    try:
        spec, built = build_model(target, weights=weights)
    except UnknownModelError:
        if not isinstance(target, ModelSpec) and any(sep in str(target) for sep in ("/", os.sep)):
            raise UnknownModelError(f"{str(target)!r} is neither a model id nor a folder with {MODEL_FOLDER_FILE}") from None
        raise
    return _adapter(spec, built, device=device, precision=precision, batch_size=batch_size)


def _adapter(spec: ModelSpec, built, *, device: str, precision: str, batch_size: int | None):
    preprocess = spec.preprocess()
    if spec.framework == "torch":
        from model_zoo.adapters.torch_adapter import TorchAdapter

        return TorchAdapter(built.model, preprocess, spec=spec, device=device, precision=precision,
                            weights_sha256=built.weights_sha256, batch_size=batch_size)
    from model_zoo.adapters.keras_adapter import KerasAdapter

    return KerasAdapter(built.model, preprocess, spec=spec, precision=precision,
                        weights_sha256=built.weights_sha256, batch_size=batch_size)


# --------------------------------------------------------------------------- model folders
def read_model_folder(folder: str | os.PathLike) -> tuple[ModelSpec, dict[str, Any]]:
    """Parse and validate ``alignbench_model.json``; returns the spec and the raw document."""
    folder = Path(folder)
    meta_path = folder / MODEL_FOLDER_FILE
    if not meta_path.is_file():
        raise InvalidInputError(f"{folder}: not an exported model folder (no {MODEL_FOLDER_FILE})")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != MODEL_FOLDER_FORMAT:
        raise InvalidInputError(f"{meta_path}: field 'format' must be {MODEL_FOLDER_FORMAT!r}, got {doc.get('format') if isinstance(doc, dict) else doc!r}")
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
    from model_zoo.preprocessing import Preprocess

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
        weights_sha256=str(doc.get("weights_sha256") or ""), meta={"base_model": doc.get("base_model"), "folder": str(folder)},
    )
    return spec, doc


def load_model_folder(folder: str | os.PathLike, *, device: str = "cpu", precision: str = "float32",
                      batch_size: int | None = None):
    """Adapter for an exported model folder (module docstring); verifies ``weights_sha256``."""
    from model_zoo.weights import Built

    folder = Path(folder)
    spec, doc = read_model_folder(folder)
    wpath = folder / doc["weights"]
    if not wpath.is_file():
        raise InvalidInputError(f"{folder / MODEL_FOLDER_FILE}: weights file {doc['weights']!r} is missing")
    sha = sha256_file(wpath)
    if spec.weights_sha256 and sha != spec.weights_sha256.lower():
        raise InvalidInputError(f"{wpath}: sha256 {sha} does not match weights_sha256 {spec.weights_sha256} in {MODEL_FOLDER_FILE}")
    if spec.framework == "keras" and wpath.suffix == ".keras":
        from model_zoo.frameworks import import_tensorflow

        import_tensorflow()
        import keras

        try:
            model = keras.saving.load_model(str(wpath), compile=False, safe_mode=True)
        except Exception as exc:
            raise InvalidInputError(f"{wpath}: cannot be loaded in Keras safe mode ({type(exc).__name__}: {str(exc)[:300]})") from None
        built = Built(model, sha, wpath)
    else:
        built = _folder_architecture_with_weights(spec, wpath, folder)
    return _adapter(replace(spec, weights_sha256=sha), built, device=device, precision=precision, batch_size=batch_size)


def _folder_architecture_with_weights(spec: ModelSpec, wpath: Path, folder: Path):
    from model_zoo.registry import CATALOG_BUILDERS, catalog_builder
    from model_zoo.weights import WeightsRequest

    builder = {"keras": "keras_apps"}.get(spec.source, spec.source)
    if builder not in CATALOG_BUILDERS or not spec.source_id:
        raise InvalidInputError(
            f"{folder / MODEL_FOLDER_FILE}: field 'architecture' must name a source in {sorted(CATALOG_BUILDERS)} "
            f"(or 'keras') and a source_id, got {spec.source!r} / {spec.source_id!r}")
    if spec.framework == "torch" and wpath.suffix != ".safetensors":
        raise InvalidInputError(f"{wpath}: PyTorch folder weights must be .safetensors")
    arch_spec = replace(spec, builder=builder)
    return catalog_builder(arch_spec)(arch_spec, WeightsRequest("file", wpath))


def save_model_folder(folder: str | os.PathLike, model: Any, *, id: str, framework: str,
                      architecture: dict[str, str] | None = None, preprocess: Any = None,
                      display_name: str | None = None, family: str = "harmonized", top1: float | None = None,
                      base_model: str | None = None) -> Path:
    """Write ``model`` as an exported model folder (safetensors for torch, ``.keras`` for Keras);
    returns the path of ``alignbench_model.json``. Files are written atomically, the JSON last."""
    import dataclasses

    from model_zoo.fileio import atomic_write_bytes
    from model_zoo.preprocessing import Preprocess

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pre = Preprocess.coerce(preprocess) or Preprocess(scale=1.0)
    if framework == "torch":
        from safetensors.torch import save

        wname = "model.safetensors"
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write_bytes(folder / wname, save(state))
    elif framework == "keras":
        wname = "model.keras"
        with atomic_output(folder / wname, suffix=".keras") as tmp:  # Keras picks the format by extension
            model.save(str(tmp))
    else:
        raise InvalidInputError(f"save_model_folder: framework must be one of {FRAMEWORKS}, got {framework!r}")
    doc = {
        "format": MODEL_FOLDER_FORMAT, "id": id, "display_name": display_name or id, "family": family,
        "framework": framework, "architecture": architecture or {}, "preprocess": dataclasses.asdict(pre),
        "weights": wname, "weights_sha256": sha256_file(folder / wname), "top1": top1,
        "harmonized": family == "harmonized", "base_model": base_model,
    }
    return atomic_write_json(folder / MODEL_FOLDER_FILE, doc)


def weights_cached(spec: ModelSpec) -> bool | None:
    """Whether the pretrained weights are in the local cache (``None``: cannot tell for this source)."""
    from model_zoo.weights import url_cache_path

    if spec.weights_url:
        return url_cache_path(spec.weights_url).is_file()
    if spec.builder == "torchvision":
        name, _, tag = spec.source_id.partition(":")
        try:
            from model_zoo.frameworks import import_torch

            torch = import_torch()
            import torchvision

            enum = torchvision.models.get_model_weights(name)[tag or "DEFAULT"]
            return (Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name).is_file()
        except Exception:
            return None
    if spec.builder == "timm":
        try:
            from huggingface_hub import try_to_load_from_cache

            repo = f"timm/{spec.source_id}"
            return any(isinstance(try_to_load_from_cache(repo, f), str)
                       for f in ("model.safetensors", "pytorch_model.bin"))
        except Exception:
            return None
    return None


__all__ = ["list_models", "get_spec", "load", "build_model", "read_model_folder", "load_model_folder",
           "save_model_folder", "weights_cached", "PAPER_LEVELS"]
