"""A submitted model -> an adapter, loading untrusted files in safe formats only.

Four kinds of :class:`ModelSource`:

* ``timm``: a timm architecture name with its published weights (timm's hub cache) or ``random``;
* ``weights``: a local weights file for a timm architecture: ``.safetensors``, or a PyTorch
  checkpoint read with ``torch.load(weights_only=True)`` (:func:`model_zoo.weights.load_state_dict`;
  a pickle holding anything but tensors and plain containers is refused);
* ``keras``: a ``.keras`` model file, read with ``keras.saving.load_model(safe_mode=True)`` (a
  ``Lambda`` layer's pickled bytecode is refused; legacy ``.h5`` whole-model files are refused);
* ``plugin``: a Python file built in the sandbox (:mod:`leaderboard.sandbox`); its export
  (safetensors + ``architecture.json``, checked by :mod:`leaderboard.architecture`, or a ``.keras``
  file) is loaded as above; no constructor argument of the plugin's choosing reaches a library call.

The preprocessing a model is scored with is resolved here (:class:`Resolved`, with where it came
from): given (``--preprocess``; presets from the catalog's exact constants), a timm model's own data
config, or a plugin's ``PREPROCESS``; where it would only be a guess, :func:`load_submitted` can
refuse (``submit`` does). Torch and TensorFlow are imported inside the functions only.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from leaderboard.architecture import ARCH_NAME, check_architecture
from leaderboard.bundle import SOURCE_KINDS, read_json
from leaderboard.sandbox import Limits, build_plugin
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.preprocessing import BOUNDARY_SIZE, INTERPOLATIONS, Preprocess

#: Presets taken from the catalog rows that use them (one place for the constants: the catalog's
#: exact values, e.g. Keras's caffe means), at the boundary size with bilinear resizing.
PRESET_ROWS = {"imagenet": "tv_resnet18", "inception": "keras_inceptionresnetv2", "caffe": "keras_vgg16"}
#: Presets that are not a catalog row: "raw" feeds float32 [0, 255] RGB as it is, "unit" [0, 1];
#: "timm" is the architecture's own timm data config (``--weights``/``--timm`` only).
OTHER_PRESETS = ("raw", "unit", "timm")
PRESET_NAMES = (*PRESET_ROWS, *OTHER_PRESETS)


def preset(name: str) -> Preprocess | None:
    """The :class:`Preprocess` of a ``--preprocess`` preset (``timm`` is resolved per architecture)."""
    if name == "raw":
        return None
    if name == "unit":
        return Preprocess()
    if name not in PRESET_ROWS:
        raise InvalidInputError(f"--preprocess {name!r}: expected one of {', '.join(PRESET_NAMES)} or a JSON object")
    from model_zoo.catalog import load_catalog

    row = next(s for s in load_catalog() if s.id == PRESET_ROWS[name])
    p = row.preprocess()
    return Preprocess(input_size=BOUNDARY_SIZE, interpolation="bilinear", mean=p.mean, std=p.std, scale=p.scale,
                      channel_order=p.channel_order)


@dataclass(frozen=True)
class Resolved:
    """The preprocessing a submitted model is scored with and where it came from (``origin``);
    ``guess``: whether it was inferred rather than given or known (``submit`` then asks for it)."""

    preprocess: Preprocess | None
    origin: str
    guess: bool = False

    def describe(self) -> str:
        p = self.preprocess
        if p is None:
            return f"raw float32 [0, 255] RGB at 224 px ({self.origin})"
        norm = "x/255" if p.mean is None else f"mean {tuple(round(v, 6) for v in p.mean)}, std " \
            f"{tuple(round(v, 6) for v in p.std)} (x * {p.scale:.6g})"
        return f"input {p.input_size} px {p.interpolation}, {norm}, {p.channel_order} ({self.origin})"


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
    #: the claimed top-1 describes exactly the submitted weights, whatever their label
    top1_describes_weights: bool = True

    @property
    def harmonized(self) -> bool:
        return self.family == "harmonized"


@dataclass(frozen=True)
class ModelSource:
    """Where a submitted model comes from. ``name``: timm architecture (``timm``, ``weights``);
    ``path``: the weights, Keras or plugin file; ``weights``: ``pretrained`` or ``random`` (``timm``);
    ``preprocess`` (with ``preprocess_given``): overrides the architecture's own preprocessing
    (required for ``keras``), ``preprocess_from`` says how it was given (e.g. ``--preprocess caffe``);
    ``timm_config``: use the architecture's timm data config, explicitly (``--preprocess timm``)."""

    kind: str
    name: str | None = None
    path: Path | None = None
    weights: str = "pretrained"
    preprocess: Preprocess | None = None
    preprocess_given: bool = False
    preprocess_from: str = "--preprocess"
    timm_config: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise InvalidInputError(f"model source: kind {self.kind!r} is not one of {SOURCE_KINDS}")
        if self.kind in ("timm", "weights") and not (self.name and ARCH_NAME.match(self.name)):
            raise InvalidInputError(f"--architecture/--timm: {self.name!r} is not a timm model name")
        if self.kind != "timm" and (self.path is None or not Path(self.path).is_file()):
            raise InvalidInputError(f"model file {self.path}: not found")
        if self.kind == "timm" and self.weights not in ("pretrained", "random"):
            raise InvalidInputError(f"--weights {self.weights!r}: with --timm use 'pretrained' or 'random' "
                                    "(or give a weights file with --weights FILE --architecture NAME)")
        if self.timm_config and self.kind not in ("timm", "weights"):
            raise InvalidInputError("--preprocess timm: only with --timm or --weights/--architecture (a timm architecture)")
        if self.kind == "keras" and not self.preprocess_given:
            raise InvalidInputError("--preprocess is required for a Keras model file (a .keras file does not say "
                                    f"how it wants its pixels): one of {', '.join(n for n in PRESET_NAMES if n != 'timm')}"
                                    " or a JSON object")

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
        return out


def parse_preprocess(text: str) -> Preprocess | None:
    """A ``--preprocess`` value: a preset name (not ``timm``, which the caller resolves) or a JSON
    object of :class:`Preprocess` fields."""
    import json

    if text in PRESET_NAMES and text != "timm":
        return preset(text)
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidInputError(f"--preprocess {text!r}: expected one of {', '.join(PRESET_NAMES)} "
                                "or a JSON object such as '{\"mean\": [0.5,0.5,0.5], \"std\": [0.5,0.5,0.5]}'") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(f"--preprocess {text!r}: expected a JSON object")
    return Preprocess.coerce(value)


# ----------------------------------------------------------------------------------- architectures
def _timm_model(name: str, num_classes: int = 1000) -> Any:
    from model_zoo.frameworks import import_torch

    import_torch()
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise InvalidInputError(f"architecture {name!r} is not a timm model"
                                + (f"; did you mean {', '.join(close)}?" if close else ""))
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"architecture {name!r} with num_classes={num_classes}: {exc}") from None


def _torchvision_model(name: str, num_classes: int = 1000) -> Any:
    from model_zoo.frameworks import import_torch

    import_torch()
    import torchvision

    if name not in torchvision.models.list_models():
        raise InvalidInputError(f"architecture {name!r} is not a torchvision model")
    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"architecture {name!r} with num_classes={num_classes}: {exc}") from None


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


def model_from_export(folder: str | Path) -> tuple[Any, Resolved, str, str]:
    """Rebuild an exported plugin model: (model, resolved preprocessing, framework, weights sha256).
    Only validated ``architecture.json`` data and safe weight formats are read; no plugin code runs here."""
    from model_zoo.weights import load_into, load_state_dict

    folder = Path(folder)
    where = str(folder / "architecture.json")
    arch = check_architecture(read_json(folder / "architecture.json", "architecture.json"), where)
    declared = arch["preprocess"] is not None
    origin = arch.get("preprocess_origin") or ("declared by the plugin (PREPROCESS)" if declared else "")
    if arch["framework"] == "keras":
        path = folder / "model.keras"
        model = load_keras_file(path)
        pre = Preprocess.coerce(arch["preprocess"]) if declared else None
        resolved = Resolved(pre, origin if declared else "no PREPROCESS: raw float32 [0, 255] RGB", guess=not declared)
        return model, resolved, "keras", sha256_file(path)
    path = folder / "weights.safetensors"
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing (the plugin export's weights)")
    build = _timm_model if arch["library"] == "timm" else _torchvision_model
    model = build(arch["name"], num_classes=int(arch["kwargs"].get("num_classes", 1000)))
    load_into(model, load_state_dict(path), where=str(path))
    if declared:
        resolved = Resolved(Preprocess.coerce(arch["preprocess"]), origin, guess=origin.startswith("guessed"))
    elif arch["library"] == "timm":
        resolved = Resolved(timm_preprocess(model), f"guessed: the timm data config of {arch['name']}", guess=True)
    else:
        resolved = Resolved(preset("imagenet"), "guessed: ImageNet statistics (torchvision)", guess=True)
    return model, resolved, "torch", sha256_file(path)


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
@dataclass
class Loaded:
    """A submitted model ready to score: its adapter, the preprocessing it is scored with, and the
    ``weights`` label its records carry (``pretrained``, ``random`` or ``file:<sha256>``)."""

    adapter: Any
    preprocess: Resolved
    weights_label: str
    sandboxed: bool | None = None  # plugins: whether the build ran in the sandbox


def load_submitted(source: ModelSource, spec: SubmittedSpec, *, device: str = "cpu", precision: str = "float32",
                   export_dir: str | Path | None = None, limits: Limits = Limits(),
                   trust_plugin: bool = False, require_preprocess: bool = False) -> Loaded:
    """Load a submitted model. Plugins are built in the sandbox into ``export_dir`` (``trust_plugin``:
    without one where none can be set up). ``require_preprocess``: refuse when the preprocessing would
    only be a guess (a weights file or plugin whose normalisation nobody stated), naming the guess."""
    from model_zoo.wrap import wrap

    sandboxed = None
    if source.kind == "plugin":
        if export_dir is None:
            raise InvalidInputError("a plugin needs a folder to export its model into")
        built = build_plugin(source.path, export_dir, limits=limits, trust_plugin=trust_plugin)
        model, resolved, framework, sha = model_from_export(export_dir)
        sandboxed = built.sandboxed
        label = f"file:{sha}"
    elif source.kind == "keras":
        model, framework, sha = load_keras_file(source.path), "keras", sha256_file(source.path)
        resolved, label = Resolved(None, "none"), f"file:{sha}"
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
        config = timm_preprocess(model)
        if source.kind == "weights":
            label = f"file:{sha}"
            resolved = Resolved(config, f"--preprocess timm: the timm data config of {source.name}") if source.timm_config \
                else Resolved(config, f"guessed: the timm data config of {source.name}'s default weights", guess=True)
        else:
            label = source.weights
            resolved = Resolved(config, f"the timm data config of {source.name}"
                                + (" (random weights: a control)" if request.random else " (its published weights)"))
    if source.preprocess_given:
        resolved = Resolved(source.preprocess, f"given: {source.preprocess_from}")
    if require_preprocess and resolved.guess:
        presets = ", ".join(n for n in PRESET_NAMES if n != "timm")
        how = (f"--preprocess timm (that guess, made explicit), another preset ({presets}) or a JSON object"
               if source.kind == "weights" else
               f"declare PREPROCESS = {{...}} in the plugin, or pass --preprocess with a preset ({presets}) or a "
               "JSON object")
        raise InvalidInputError(f"the preprocessing would only be a guess: {resolved.describe()}. Say how the "
                                f"model wants its pixels: {how}")
    spec = SubmittedSpec(**{**spec.__dict__, "framework": framework})
    kwargs: dict[str, Any] = {"spec": spec, "weights_sha256": sha, "precision": precision}
    if framework == "torch":
        kwargs["device"] = device
    return Loaded(wrap(model, resolved.preprocess, **kwargs), resolved, label, sandboxed)


def load_adapter(source: ModelSource, spec: SubmittedSpec, *, device: str = "cpu", precision: str = "float32",
                 export_dir: str | Path | None = None, limits: Limits = Limits(), trust_plugin: bool = False) -> Any:
    """The adapter of a submitted model (:func:`load_submitted` without the bookkeeping)."""
    return load_submitted(source, spec, device=device, precision=precision, export_dir=export_dir, limits=limits,
                          trust_plugin=trust_plugin).adapter
