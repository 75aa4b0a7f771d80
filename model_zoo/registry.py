"""Model registry: catalog rows, models registered with :func:`register_model`, and plugins.

Third-party packages add models without editing the catalog, in either of two ways:

* decorate a builder ``fn(pretrained: bool, weights_path: pathlib.Path | None) -> nn.Module | keras.Model``
  with :func:`register_model` (the model is available as soon as the module is imported);
* declare an entry point in the group ``alignbench.models`` (``pyproject.toml``:
  ``[project.entry-points."alignbench.models"] mymodels = "mypkg.models"``). The entry point names a
  module (importing it registers its models) or a callable (called once with no arguments). Entry
  points are loaded lazily, the first time the model list is needed, and a plugin that fails to load
  is reported by a warning (and :func:`plugin_errors`) instead of hiding the rest of the catalog.

Importing this module imports neither torch nor TensorFlow.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from model_zoo.catalog import FAMILIES, FRAMEWORKS, ModelSpec, load_catalog, unknown_model_error
from model_zoo.errors import InvalidInputError

ENTRY_POINT_GROUP = "alignbench.models"

# catalog `builder` column -> module of model_zoo.builders exposing build(spec, request) -> Built
CATALOG_BUILDERS = {
    "timm": "timm_models",
    "torchvision": "torchvision_models",
    "keras_apps": "keras_apps",
    "bagnet": "checkpoints",
    "simclr": "checkpoints",
    "resnet50_checkpoint": "checkpoints",
    "clip_zeroshot": "clip_zeroshot",
    "harmonized": "harmonized",
    "harmonized_torch": "harmonized_torch",  # PyTorch forms of the harmonized rows (exported folders)
    "vit_keras": "vit_keras",
    "demo_cnn": "demo_cnn",  # the small CNN `alignbench demo` trains (exported folders only)
}

UserBuilder = Callable[[bool, "Path | None"], Any]


@dataclass(frozen=True)
class RegisteredModel:
    """A spec and how to build it: ``builder`` is a user function ``fn(pretrained, weights_path)``
    (``kind == "user"``) or, for catalog rows (``kind == "catalog"``), ``None``: the catalog builder
    module named by ``spec.builder`` is used."""

    spec: ModelSpec
    kind: str
    builder: UserBuilder | None = None


_lock = threading.RLock()
_user: dict[str, RegisteredModel] = {}
_catalog: dict[str, RegisteredModel] | None = None
_plugins_loaded = False
_plugin_errors: list[str] = []

_SPEC_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)}


def _preprocess_fields(preprocess: Any) -> dict[str, Any]:
    if preprocess is None:
        return {"mean": None, "std": None}
    if not isinstance(preprocess, dict):
        preprocess = dataclasses.asdict(preprocess)
    allowed = {"input_size", "interpolation", "mean", "std", "scale", "channel_order"}
    unknown = set(preprocess) - allowed
    if unknown:
        raise InvalidInputError(f"register_model: unknown preprocess fields {sorted(unknown)}; allowed {sorted(allowed)}")
    out = dict(preprocess)
    for key in ("mean", "std"):
        if out.get(key) is not None:
            out[key] = tuple(float(v) for v in out[key])
    return out


def register_model(
    name: str,
    *,
    family: str,
    framework: str,
    display_name: str | None = None,
    top1: float | None = None,
    preprocess: Any = None,
    **meta: Any,
) -> Callable[[UserBuilder], UserBuilder]:
    """Decorator registering ``fn(pretrained: bool, weights_path) -> model`` under ``name``.

    ``preprocess`` is a :class:`model_zoo.preprocessing.Preprocess` (or a dict of its fields); ``None``
    means the model takes raw 0-255 RGB pixels. Keyword arguments that are :class:`ModelSpec` fields
    (``source``, ``licence``, ``in_paper``, ``notes``, ...) fill the spec; any others go to ``spec.meta``.
    Registering a different function under an existing name raises :class:`InvalidInputError`.
    """
    if family not in FAMILIES:
        raise InvalidInputError(f"register_model({name!r}): family {family!r} is not one of {FAMILIES}")
    if framework not in FRAMEWORKS:
        raise InvalidInputError(f"register_model({name!r}): framework {framework!r} is not one of {FRAMEWORKS}")
    pre = _preprocess_fields(preprocess)
    if preprocess is None:
        pre["scale"] = 1.0  # the model takes raw 0-255 pixels
    spec_kwargs = {k: v for k, v in meta.items() if k in _SPEC_FIELDS and k not in ("id", "meta")}
    extra = {k: v for k, v in meta.items() if k not in _SPEC_FIELDS}

    def decorate(fn: UserBuilder) -> UserBuilder:
        if len(inspect.signature(fn).parameters) < 2:
            raise InvalidInputError(f"register_model({name!r}): the builder must accept (pretrained, weights_path)")
        kwargs = {"source": "registered", "source_id": f"{fn.__module__}:{fn.__qualname__}", "builder": "registered"}
        kwargs.update(spec_kwargs)
        kwargs.update(pre)
        spec = ModelSpec(id=name, display_name=display_name or name, family=family, framework=framework,
                         top1=top1, meta=extra, **kwargs)
        with _lock:
            old = _user.get(name)
            if old is not None and old.builder is not fn and _same_origin(old.builder, fn) is False:
                raise InvalidInputError(f"register_model: {name!r} is already registered by {old.spec.source_id}")
            if name in (_catalog or {}):
                raise InvalidInputError(f"register_model: {name!r} is a catalog id; choose another name")
            _user[name] = RegisteredModel(spec=spec, kind="user", builder=fn)
        return fn

    return decorate


def _same_origin(a: Any, b: Any) -> bool:
    # re-importing a module (importlib.reload, a notebook re-run) re-registers the "same" function
    return getattr(a, "__module__", None) == getattr(b, "__module__", None) and getattr(
        a, "__qualname__", None
    ) == getattr(b, "__qualname__", None)


def unregister_model(name: str) -> None:
    """Remove a model added with :func:`register_model` (catalog rows cannot be removed)."""
    with _lock:
        _user.pop(name, None)


def _load_plugins() -> None:
    global _plugins_loaded
    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: e.name):
        try:
            obj = ep.load()
            if callable(obj) and not inspect.ismodule(obj):
                obj()
        except Exception as exc:  # one broken plugin must not hide the catalog
            msg = f"alignbench model plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
            _plugin_errors.append(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
    _plugins_loaded = True


def refresh_plugins() -> None:
    """Scan the ``alignbench.models`` entry points again (after installing a plugin in a session)."""
    global _plugins_loaded
    with _lock:
        _plugin_errors.clear()
        _plugins_loaded = False
        _load_plugins()


def plugin_errors() -> list[str]:
    """Messages of entry points that failed to load in the last scan."""
    return list(_plugin_errors)


def all_models() -> dict[str, RegisteredModel]:
    """Every model: catalog rows first (file order), then registered ones (registration order)."""
    global _catalog
    with _lock:
        if _catalog is None:
            _catalog = {s.id: RegisteredModel(spec=s, kind="catalog") for s in load_catalog()}
        if not _plugins_loaded:
            _load_plugins()
        clash = set(_catalog) & set(_user)
        if clash:
            raise InvalidInputError(f"registered models reuse catalog ids: {sorted(clash)}")
        return {**_catalog, **_user}


def lookup(model_id: str) -> RegisteredModel:
    """The entry for ``model_id``; :class:`UnknownModelError` with close matches otherwise."""
    models = all_models()
    try:
        return models[model_id]
    except KeyError:
        raise unknown_model_error(model_id, models) from None


def catalog_builder(spec: ModelSpec) -> Callable:
    """The ``build(spec, request) -> Built`` function of a catalog row's builder module."""
    module = CATALOG_BUILDERS.get(spec.builder)
    if module is None:
        raise InvalidInputError(f"catalog row {spec.id!r}: unknown builder {spec.builder!r}; known {sorted(CATALOG_BUILDERS)}")
    return importlib.import_module(f"model_zoo.builders.{module}").build
