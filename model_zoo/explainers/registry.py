"""The explainer registry: built-in recipes by name, user ones, and the ``alignbench.explainers`` plugins.

Third parties add explainers as they add models: call :func:`register_explainer` with an
:class:`~model_zoo.explainers.spec.Explainer`, or declare an entry point naming either an
``Explainer`` or a function that registers some::

    [project.entry-points."alignbench.explainers"]
    mylab = "mylab.explainers:register"

An entry point that fails to load is a warning, not an error (one broken plugin must not hide the
built-ins). The paper's variants (``/work/shared/reference/paper-notes.md`` section 3.2):

* ``saliency`` (default): max over channels of |d logit / d image|, the release code's abs-max
  reduction on the logit, in the frame the humans saw.
* ``paper-release``: the release evaluation (xplique ``Saliency`` on the model's last layer, which
  for the paper's Keras models is the softmax probability; abs, max over channels; w.r.t. the
  normalised input its data pipeline fed the explainer).
* ``paper-sweep``: the pre-release 84-model sweep, |mean over channels| of the logit gradient.
* ``training``: the harmonizer loss's saliency, the signed channel mean of the logit gradient
  w.r.t. the normalised images.
"""
from __future__ import annotations

import inspect
import logging
import threading
from importlib import metadata
from typing import Any

from model_zoo.errors import InvalidInputError
from model_zoo.explainers.spec import Explainer

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "alignbench.explainers"
DEFAULT = "saliency"

_BUILTIN: dict[str, Explainer] = {e.name: e for e in (
    Explainer("saliency", description="saliency: max over channels of |d logit[label] / d image| "
                                      "(224x224 image frame)"),
    Explainer("paper-release", target="probability", wrt="model-input"),
    Explainer("paper-sweep", reduction="abs-mean"),
    Explainer("training", reduction="signed-mean", wrt="model-input"),
    Explainer("smoothgrad", method="smoothgrad"),
    Explainer("integrated-gradients", method="integrated-gradients"),
    Explainer("gradient-x-input", method="gradient-x-input"),
    Explainer("grad-cam", method="grad-cam", reduction="none"),
)}
_user: dict[str, Explainer] = {}
_lock = threading.RLock()
_plugins_loaded = False


def register_explainer(explainer: Explainer, *, replace: bool = False) -> Explainer:
    """Add ``explainer`` under its name (built-in names are refused; ``replace`` allows re-registering)."""
    if not isinstance(explainer, Explainer):
        raise InvalidInputError(f"register_explainer: expected an Explainer, got {type(explainer).__name__}")
    with _lock:
        if explainer.name in _BUILTIN:
            raise InvalidInputError(f"register_explainer: {explainer.name!r} is a built-in explainer")
        old = _user.get(explainer.name)
        if old is not None and old != explainer and not replace:
            raise InvalidInputError(f"register_explainer: {explainer.name!r} is already registered with another "
                                    "spec (pass replace=True)")
        _user[explainer.name] = explainer
    return explainer


def unregister_explainer(name: str) -> None:
    """Remove an explainer added with :func:`register_explainer`."""
    with _lock:
        _user.pop(name, None)


def _load_plugins() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
            if isinstance(obj, Explainer):
                register_explainer(obj)
            elif callable(obj) and not inspect.isclass(obj):
                obj()
            else:
                raise InvalidInputError(f"expected an Explainer or a function, got {type(obj).__name__}")
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the built-ins
            log.warning("explainer plugin %s (%s) was not loaded: %s: %s", ep.name, ep.value, type(exc).__name__, exc)


def list_explainers() -> list[str]:
    """Every explainer name: built-in, registered and from installed plugins."""
    _load_plugins()
    with _lock:
        return sorted(set(_BUILTIN) | set(_user))


def get_explainer(explainer: "str | Explainer | None" = None) -> Explainer:
    """The explainer named ``explainer`` (an :class:`Explainer` is returned as is; None: the default)."""
    if isinstance(explainer, Explainer):
        return explainer
    name = DEFAULT if explainer is None else explainer
    if not isinstance(name, str):
        raise InvalidInputError(f"explainer must be a name or an Explainer, got {type(name).__name__}")
    if name in _BUILTIN:
        return _BUILTIN[name]
    _load_plugins()
    with _lock:
        if name in _user:
            return _user[name]
    raise InvalidInputError(f"unknown explainer {name!r}: known explainers are {', '.join(list_explainers())}")


def is_default(explainer: Any) -> bool:
    """Whether ``explainer`` computes exactly the default maps (the adapters' fast saliency path)."""
    return get_explainer(explainer) == _BUILTIN[DEFAULT]
