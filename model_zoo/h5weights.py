"""Reading legacy Keras ``.h5`` weight files without Keras, and the one error for a file that does
not fit an architecture.

A legacy HDF5 file is either a full model (``model.save("x.h5")``: the weights under
``model_weights/``, next to the model's JSON config) or weights only (``save_weights("x.h5")``: the
weights at the root). Either way the root's ``layer_names`` attribute lists the layers in the
model's order, and each layer's group lists its variables in ``weight_names`` (trainable first,
then non-trainable; names such as ``conv1/kernel:0``, which may contain ``/`` when a layer name
does). Only arrays are read here: no config is parsed and no code runs.

This module needs h5py and numpy only (no TensorFlow, no PyTorch).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from model_zoo.errors import InvalidInputError

_SUFFIX = re.compile(r":\d+$")
# Keras 2 variable names that Keras 3 spells differently
_KERAS3_VARIABLE = {"depthwise_kernel": "kernel"}
_NUMBERED = re.compile(r"_\d+$")


@dataclass(frozen=True)
class H5Layer:
    """One layer of a ``.h5`` file: its name and its variables in saved order, as
    ``(weight path, array)``; the path is ``<layer name>/<variable>`` without Keras's ``:0``."""

    name: str
    weights: tuple[tuple[str, np.ndarray], ...]


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_h5_layers(path: str | Path) -> list[H5Layer]:
    """The layers with weights of a legacy Keras ``.h5`` file (full model or weights only), in
    file order. Raises :class:`InvalidInputError` naming the file when it is not such a file."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InvalidInputError(f"{path}: not an HDF5 weights file ({exc})") from None
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            raise InvalidInputError(f"{path}: an HDF5 file, but not a legacy Keras weights file (no 'layer_names' "
                                    "attribute; a Keras 3 '.weights.h5' or another library's file?)")
        layers = []
        try:
            for raw in root.attrs["layer_names"]:
                name = _text(raw)
                group = root[name]
                names = [_text(w) for w in group.attrs.get("weight_names", [])]
                if not names:
                    continue
                weights = []
                for wname in names:
                    key = _SUFFIX.sub("", wname)
                    # Keras 2 names variables "<layer>/<var>"; Keras 3's legacy writer may store "<var>" only
                    key = key if key.startswith(name + "/") else f"{name}/{key}"
                    weights.append((key, np.asarray(group[wname][()])))
                layers.append(H5Layer(name, tuple(weights)))
        except (KeyError, OSError) as exc:  # a listed layer or array that is absent or unreadable
            raise InvalidInputError(f"{path}: a damaged Keras weights file ({type(exc).__name__}: {exc})") from None
    if not layers:
        raise InvalidInputError(f"{path}: a Keras weights file with no weights in it")
    return layers


def base_name(name: str) -> str:
    """A Keras auto-generated layer name without its per-session number ("normalization_3" -> "normalization")."""
    return _NUMBERED.sub("", name)


def _first(names: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(names[:n])
    return shown + (", ..." if len(names) > n else "")


def mismatch_error(path: str | Path, architecture: str, *, missing: Iterable[str] = (), unexpected: Iterable[str] = (),
                   mismatched: Iterable[str] = ()) -> InvalidInputError:
    """The one error for a weights file that does not fit ``architecture``: how many layers of the
    architecture the file lacks, how many file layers the architecture has no place for, and how
    many arrays do not match (shape or variable name), each with the first few names."""
    missing, unexpected, mismatched = list(dict.fromkeys(missing)), list(dict.fromkeys(unexpected)), list(mismatched)
    parts = []
    if missing:
        parts.append(f"{len(missing)} layer(s) of the architecture are missing from the file ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} layer(s) of the file are unexpected ({_first(unexpected)})")
    if mismatched:
        parts.append(f"{len(mismatched)} array(s) do not match ({_first(mismatched, 3)})")
    hint = ""
    if missing and unexpected:
        hint = "; is this the weights file of another model?"
    return InvalidInputError(f"{path}: weights do not fit {architecture}: " + "; ".join(parts) + hint)


def load_into_keras(model, path: str | Path, *, rename: Callable[[str], str] = lambda n: n,
                    aliases: Mapping[str, Sequence[str]] | None = None, skip: Iterable[str] = ()) -> None:
    """Load a legacy ``.h5`` (full model or weights only) into the Keras model ``model``, layer by layer.

    Each file layer goes to the model layer named ``rename(file name)`` (or, for a model layer named
    in ``aliases``, to one of the file names listed for it: released heads are called ``probs`` or
    ``head`` where keras.applications says ``predictions``). Inside a layer, arrays pair with the
    variables in Keras's saved order (trainable, then non-trainable), and each pair must agree in
    variable name (``kernel``, ``gamma``...; Keras 2's ``depthwise_kernel`` is Keras 3's ``kernel``),
    parent layer name and shape. Every model layer with
    weights (except ``skip``, compared without Keras's ``_N`` numbering) must be filled and every
    file layer used; otherwise :func:`mismatch_error` is raised and nothing is assigned.
    """
    skipped = {base_name(n) for n in skip}
    targets = {layer.name: layer for layer in model.layers if layer.weights and base_name(layer.name) not in skipped}
    by_alias = {alias: canonical for canonical, names in (aliases or {}).items() for alias in names}
    filled: set[str] = set()
    unexpected, mismatched, assignments = [], [], []
    for file_layer in read_h5_layers(path):
        if base_name(file_layer.name) in skipped:
            continue
        kname = rename(file_layer.name)
        if kname not in targets and by_alias.get(file_layer.name) in targets:
            kname = by_alias[file_layer.name]
        layer = targets.get(kname)
        if layer is None:
            unexpected.append(file_layer.name)
            continue
        variables = list(layer.trainable_weights) + list(layer.non_trainable_weights)
        if len(variables) != len(file_layer.weights):
            mismatched.append(f"{kname}: {len(file_layer.weights)} arrays in the file, {len(variables)} in the model")
            continue
        for var, (wpath, value) in zip(variables, file_layer.weights):
            fparts, kparts = wpath.split("/"), var.path.replace(".", "/").split("/")
            parents = (kparts[-2], file_layer.name.split("/")[-1], kname)
            if _KERAS3_VARIABLE.get(fparts[-1], fparts[-1]) != kparts[-1] or fparts[-2] not in parents:
                mismatched.append(f"{wpath} for model variable {var.path}")
            elif tuple(value.shape) != tuple(var.shape):
                mismatched.append(f"{wpath} {tuple(value.shape)}, model {tuple(var.shape)}")
            else:
                assignments.append((var, value))
        filled.add(kname)
    missing = [name for name in targets if name not in filled]
    if missing or unexpected or mismatched:
        raise mismatch_error(path, f"the Keras model {model.name!r}", missing=missing, unexpected=unexpected,
                             mismatched=mismatched)
    for var, value in assignments:
        var.assign(value)
