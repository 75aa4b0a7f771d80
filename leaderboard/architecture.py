"""A plugin export's ``architecture.json``: the data the leaderboard accepts from a plugin, checked.

A plugin runs in the sandbox (:mod:`leaderboard.sandbox`); what it hands back is data, and this is
its schema: which library and architecture to rebuild, the only constructor argument allowed
(``num_classes``, a bounded integer: constructor arguments are never passed through, since a
plugin-chosen ``checkpoint_path`` would make timm ``torch.load`` a file of the plugin's choosing in
the leaderboard process), and the preprocessing, checked by building a :class:`Preprocess`.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from model_zoo.errors import InvalidInputError
from model_zoo.preprocessing import Preprocess

ARCH_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
#: The only constructor arguments an architecture description may carry, with their ranges.
ARCH_KWARGS = {"num_classes": (1, 100_000)}
_ARCH_KEYS = {"framework", "library", "name", "kwargs", "preprocess", "preprocess_origin", "weights"}


def preprocess_json(p: Preprocess | None) -> dict[str, Any] | None:
    """A :class:`Preprocess` as JSON (None: the model takes float32 [0, 255] RGB as it is)."""
    if p is None:
        return None
    return {"input_size": p.input_size, "interpolation": p.interpolation,
            "mean": None if p.mean is None else list(p.mean), "std": None if p.std is None else list(p.std),
            "scale": p.scale, "channel_order": p.channel_order}


def check_architecture(arch: Any, where: str) -> dict[str, Any]:
    """A plugin's ``architecture.json`` as validated data, or :class:`InvalidInputError` naming
    ``where`` and the field. Only known keys; ``kwargs`` only those of :data:`ARCH_KWARGS`, in range;
    ``preprocess`` only :class:`Preprocess` fields (checked by building one)."""
    if not isinstance(arch, Mapping):
        raise InvalidInputError(f"{where}: expected a JSON object, found {type(arch).__name__}")
    unknown = sorted(set(map(str, arch)) - _ARCH_KEYS)
    if unknown:
        raise InvalidInputError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(_ARCH_KEYS)}")
    if arch.get("framework") not in ("torch", "keras"):
        raise InvalidInputError(f"{where}: framework: expected 'torch' or 'keras', found {arch.get('framework')!r}")
    out: dict[str, Any] = {"framework": arch["framework"]}
    if arch["framework"] == "torch":
        if arch.get("library") not in ("timm", "torchvision"):
            raise InvalidInputError(f"{where}: library: expected 'timm' or 'torchvision', found {arch.get('library')!r}")
        if not isinstance(arch.get("name"), str) or not ARCH_NAME.match(arch["name"]):
            raise InvalidInputError(f"{where}: name: expected an architecture name, found {arch.get('name')!r}")
        kwargs = arch.get("kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise InvalidInputError(f"{where}: kwargs: expected an object")
        for key, value in kwargs.items():
            if key not in ARCH_KWARGS:
                raise InvalidInputError(f"{where}: kwargs.{key}: not allowed (only {sorted(ARCH_KWARGS)}: "
                                        "constructor arguments are never passed through)")
            lo, hi = ARCH_KWARGS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidInputError(f"{where}: kwargs.{key}: expected an integer in [{lo}, {hi}], found {value!r}")
        out.update(library=arch["library"], name=arch["name"], kwargs=dict(kwargs))
    pre = arch.get("preprocess")
    if pre is not None:
        if not isinstance(pre, Mapping):
            raise InvalidInputError(f"{where}: preprocess: expected an object or null")
        try:
            pre = preprocess_json(Preprocess.coerce(dict(pre)))
        except (InvalidInputError, TypeError) as exc:
            raise InvalidInputError(f"{where}: preprocess: {exc}") from None
    origin = arch.get("preprocess_origin")
    if origin is not None and not (isinstance(origin, str) and len(origin) <= 200):
        raise InvalidInputError(f"{where}: preprocess_origin: expected a short text or null")
    out.update(preprocess=pre, preprocess_origin=origin)
    return out
