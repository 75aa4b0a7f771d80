"""Public entry points: :func:`list_models`, :func:`get_spec`, :func:`load`, and exported model folders
(their format: :mod:`model_zoo.model_folder`)."""
from __future__ import annotations

import contextlib
import os
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from model_zoo import model_folder
from model_zoo.catalog import FAMILIES, FRAMEWORKS, PAPER_LEVELS, ModelSpec
from model_zoo.errors import InvalidInputError, UnknownModelError
from model_zoo.fileio import sha256_file

MODEL_FOLDER_FORMAT = model_folder.FORMAT
MODEL_FOLDER_FILE = model_folder.MANIFEST


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
    """Parse and validate an exported model folder's manifest: (spec, raw document)."""
    return model_folder.read(folder)


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
    folder = model_folder.write(folder, model, id=id, framework=framework, preprocess=preprocess,
                                architecture=architecture, display_name=display_name, family=family, top1=top1,
                                base_model=base_model)
    return folder / MODEL_FOLDER_FILE


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
