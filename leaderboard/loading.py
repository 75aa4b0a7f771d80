"""A submitted model -> an adapter, loading untrusted files in safe formats only.

Four kinds of :class:`ModelSource`:

* ``timm``: a timm architecture name with its published weights (timm's hub cache) or ``random``;
* ``weights``: a local weights file for a timm architecture: ``.safetensors``, or a PyTorch
  checkpoint read with ``torch.load(weights_only=True)`` (:func:`model_zoo.weights.load_state_dict`;
  a pickle holding anything but tensors and plain containers is refused);
* ``keras``: a ``.keras`` model file, read with ``keras.saving.load_model(safe_mode=True)`` (a
  ``Lambda`` layer's pickled bytecode is refused; legacy ``.h5`` whole-model files are refused);
* ``plugin``: a Python file built in the sandbox (:mod:`leaderboard.sandbox`); its export
  (safetensors + ``architecture.json``, or a ``.keras`` file) is loaded as above.

Torch and TensorFlow are imported inside the functions only.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from leaderboard.bundle import SOURCE_KINDS, read_json
from leaderboard.sandbox import Limits, build_plugin
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.preprocessing import INTERPOLATIONS, Preprocess

_ARCH_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
PREPROCESS_PRESETS: dict[str, Preprocess | None] = {
    "imagenet": Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "raw": None,  # the model takes the boundary images as they are: float32 [0, 255] RGB
    "unit": Preprocess(),  # [0, 1]
    "inception": Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),  # [-1, 1] (Keras "tf" mode)
    "caffe": Preprocess(mean=(0.485, 0.458, 0.408), std=(1 / 255,) * 3, channel_order="BGR"),
}


@dataclass(frozen=True)
class SubmittedSpec:
    """The spec an adapter carries for a submitted model (read by the runner into the record)."""

    id: str
    display_name: str
    family: str | None
    framework: str
    top1: float | None = None
    top1_source: str | None = None
    base_model: str | None = None

    @property
    def harmonized(self) -> bool:
        return self.family == "harmonized"


@dataclass(frozen=True)
class ModelSource:
    """Where a submitted model comes from. ``name``: timm architecture (``timm``, ``weights``);
    ``path``: the weights, Keras or plugin file; ``weights``: ``pretrained`` or ``random`` (``timm``);
    ``preprocess``: overrides the architecture's own preprocessing (required for ``keras``)."""

    kind: str
    name: str | None = None
    path: Path | None = None
    weights: str = "pretrained"
    preprocess: Preprocess | None = None
    preprocess_given: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InvalidInputError(f"model source: kind {self.kind!r} is not one of {SOURCE_KINDS}")
        if self.kind in ("timm", "weights") and not (self.name and _ARCH_NAME.match(self.name)):
            raise InvalidInputError(f"--architecture/--timm: {self.name!r} is not a timm model name")
        if self.kind != "timm" and (self.path is None or not Path(self.path).is_file()):
            raise InvalidInputError(f"model file {self.path}: not found")
        if self.kind == "timm" and self.weights not in ("pretrained", "random"):
            raise InvalidInputError(f"--weights {self.weights!r}: with --timm use 'pretrained' or 'random' "
                                    "(or give a weights file with --weights FILE --architecture NAME)")
        if self.kind == "keras" and not self.preprocess_given:
            raise InvalidInputError("--preprocess is required for a Keras model file (a .keras file does not say "
                                    f"how it wants its pixels): one of {', '.join(PREPROCESS_PRESETS)} or a JSON object")

    def describe(self) -> dict[str, Any]:
        """JSON for ``submission.json``: enough to load the model again (file names, never paths)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.name:
            out["architecture"] = self.name
        if self.kind == "timm":
            out["weights"] = self.weights
        if self.path is not None:
            out["file"] = Path(self.path).name
            out["file_sha256"] = sha256_file(self.path)
        if self.preprocess_given:
            out["preprocess"] = None if self.preprocess is None else _preprocess_json(self.preprocess)
        return out


def _preprocess_json(p: Preprocess) -> dict[str, Any]:
    return {"input_size": p.input_size, "interpolation": p.interpolation, "mean": p.mean, "std": p.std,
            "scale": p.scale, "channel_order": p.channel_order}


def parse_preprocess(text: str) -> Preprocess | None:
    """A ``--preprocess`` value: a preset name or a JSON object of :class:`Preprocess` fields."""
    import json

    if text in PREPROCESS_PRESETS:
        return PREPROCESS_PRESETS[text]
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInputError(f"--preprocess {text!r}: expected one of {', '.join(PREPROCESS_PRESETS)} "
                                "or a JSON object such as '{\"mean\": [0.5,0.5,0.5], \"std\": [0.5,0.5,0.5]}'") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(f"--preprocess {text!r}: expected a JSON object")
    return Preprocess.coerce(value)


# ----------------------------------------------------------------------------------- architectures
def _timm_model(name: str, **kwargs: Any) -> Any:
    from model_zoo.frameworks import import_torch

    import_torch()
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise InvalidInputError(f"architecture {name!r} is not a timm model"
                                + (f"; did you mean {', '.join(close)}?" if close else ""))
    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"architecture {name!r}: bad arguments {kwargs}: {exc}") from None


def _torchvision_model(name: str, **kwargs: Any) -> Any:
    from model_zoo.frameworks import import_torch

    import_torch()
    import torchvision

    if name not in torchvision.models.list_models():
        raise InvalidInputError(f"architecture {name!r} is not a torchvision model")
    try:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"architecture {name!r}: bad arguments {kwargs}: {exc}") from None


def timm_preprocess(model: Any) -> Preprocess:
    """The preprocessing of a timm model's data config (input size, interpolation, mean, std)."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    interp = cfg.get("interpolation", "bilinear")
    return Preprocess(input_size=int(cfg["input_size"][-1]), interpolation=interp if interp in INTERPOLATIONS else "bilinear",
                      mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def load_keras_file(path: str | Path) -> Any:
    """A ``.keras`` model in Keras safe mode (no deserialised Python code); other formats refused."""
    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidInputError(f"{path}: only .keras model files are accepted (legacy .h5/SavedModel files can "
                                "carry code that safe mode does not cover); re-save it with model.save('x.keras')")
    from model_zoo.frameworks import import_tensorflow

    import_tensorflow()
    import keras

    try:
        return keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # keras raises ValueError/TypeError for unsafe or unknown objects
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text or "unsafe" in text.lower():
            raise InvalidInputError(f"{path}: refused to load: the model contains code (e.g. a Lambda layer) that "
                                    "would be executed on load; Keras safe mode forbids it. Replace it with "
                                    "registered layers.") from None
        raise InvalidInputError(f"{path}: not a loadable Keras model in safe mode ({type(exc).__name__}: "
                                f"{text[:300]})") from None


def _check_architecture(arch: Any, where: str) -> dict[str, Any]:
    if not isinstance(arch, Mapping) or arch.get("framework") not in ("torch", "keras"):
        raise InvalidInputError(f"{where}: framework: expected 'torch' or 'keras'")
    if arch["framework"] == "torch":
        if arch.get("library") not in ("timm", "torchvision"):
            raise InvalidInputError(f"{where}: library: expected 'timm' or 'torchvision', found {arch.get('library')!r}")
        if not isinstance(arch.get("name"), str) or not _ARCH_NAME.match(arch["name"]):
            raise InvalidInputError(f"{where}: name: expected an architecture name, found {arch.get('name')!r}")
        kwargs = arch.get("kwargs") or {}
        if not isinstance(kwargs, Mapping) or not all(
                isinstance(k, str) and (v is None or isinstance(v, (bool, int, float, str))) for k, v in kwargs.items()):
            raise InvalidInputError(f"{where}: kwargs: only text keys with number/text/bool/null values")
    pre = arch.get("preprocess")
    if pre is not None and not isinstance(pre, Mapping):
        raise InvalidInputError(f"{where}: preprocess: expected an object or null")
    return dict(arch)


def model_from_export(folder: str | Path) -> tuple[Any, Preprocess | None, str, str]:
    """Rebuild an exported plugin model: (model, preprocess, framework, weights sha256).
    Only ``architecture.json`` data and safe weight formats are read; no plugin code runs here."""
    folder = Path(folder)
    arch = _check_architecture(read_json(folder / "architecture.json"), f"{folder / 'architecture.json'}")
    if arch["framework"] == "keras":
        path = folder / "model.keras"
        model = load_keras_file(path)
        pre = Preprocess.coerce(arch["preprocess"]) if arch.get("preprocess") is not None else None
        return model, pre, "keras", sha256_file(path)
    path = folder / "weights.safetensors"
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing (the plugin export's weights)")
    build = _timm_model if arch["library"] == "timm" else _torchvision_model
    model = build(arch["name"], **dict(arch.get("kwargs") or {}))
    from safetensors.torch import load_model

    try:
        load_model(model, str(path), strict=True)
    except RuntimeError as exc:
        raise InvalidInputError(f"{path}: weights do not fit architecture {arch['name']!r}: {str(exc)[:400]}") from None
    if arch.get("preprocess") is not None:
        pre = Preprocess.coerce(arch["preprocess"])
    else:
        pre = timm_preprocess(model) if arch["library"] == "timm" else PREPROCESS_PRESETS["imagenet"]
    return model, pre, "torch", sha256_file(path)


@contextlib.contextmanager
def seeded_torch(name: str) -> Iterator[None]:
    """Torch's global RNG seeded from ``name`` inside the block (CPU state restored afterwards)."""
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(name.encode("utf-8")) % (2**31))
        yield


def state_dict_sha256(model: Any) -> str:
    """sha256 over a torch model's state dict (sorted names, dtypes, shapes and raw bytes): the
    identity of weights that exist only in memory (seeded random ones)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode("utf-8"))
        digest.update(t.reshape(-1).view(torch_uint8()).numpy().tobytes())
    return digest.hexdigest()


def torch_uint8() -> Any:
    from model_zoo.frameworks import import_torch

    return import_torch().uint8


# ----------------------------------------------------------------------------------- adapters
def load_adapter(source: ModelSource, spec: SubmittedSpec, *, device: str = "cpu", precision: str = "float32",
                 export_dir: str | Path | None = None, limits: Limits = Limits()) -> Any:
    """The adapter of a submitted model. Plugins are built in the sandbox into ``export_dir``."""
    from model_zoo.wrap import wrap

    if source.kind == "plugin":
        if export_dir is None:
            raise InvalidInputError("a plugin needs a folder to export its model into")
        build_plugin(source.path, export_dir, limits=limits)
        model, pre, framework, sha = model_from_export(export_dir)
    elif source.kind == "keras":
        model, pre, framework, sha = load_keras_file(source.path), None, "keras", sha256_file(source.path)
    else:
        from model_zoo.builders import timm_models
        from model_zoo.catalog import ModelSpec
        from model_zoo.weights import WeightsRequest

        _timm_model(source.name)  # a clear error for a misspelt name, before any download
        request = WeightsRequest("file", Path(source.path)) if source.kind == "weights" else WeightsRequest(source.weights)
        cat_spec = ModelSpec(id=spec.id, display_name=spec.display_name, family=spec.family or "", framework="torch",
                             source="timm", source_id=source.name, builder="timm")
        if request.random:
            # seeded by the architecture name: the submitter's run and the maintainers' verify build the
            # same untrained weights, and their digest identifies them like a file's sha256 would
            with seeded_torch(source.name):
                built = timm_models.build(cat_spec, request)
            built.weights_sha256 = state_dict_sha256(built.model)
        else:
            built = timm_models.build(cat_spec, request)
        model, framework, sha = built.model, "torch", built.weights_sha256
        pre = timm_preprocess(model)
    if source.preprocess_given:
        pre = source.preprocess
    spec = SubmittedSpec(**{**spec.__dict__, "framework": framework})
    kwargs: dict[str, Any] = {"spec": spec, "weights_sha256": sha, "precision": precision}
    if framework == "torch":
        kwargs["device"] = device
    return wrap(model, pre, **kwargs)
