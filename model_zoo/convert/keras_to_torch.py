"""Keras ``.h5`` weights -> a PyTorch state dict, by the rules of :mod:`model_zoo.convert.weight_maps`.

Layout changes (:data:`TRANSFORMS`): convolution kernels HWIO -> OIHW, depthwise HW(C)1 -> (C)1HW,
dense kernels (in, out) -> (out, in), a dense layer after Keras's NHWC flatten reordered to follow
PyTorch's NCHW flatten, 1x1-conv projections as linear weights, and two relative-position tables:

* MaxViT: kecam stores ``(heads, (2w-1)^2)`` indexed by query minus key offset; timm's
  ``RelPosBiasTf`` (the TensorFlow MaxViT layout) stores ``(heads, 2w-1, 2w-1)`` indexed by key minus
  query, i.e. the same table flipped along both offsets;
* LeViT: kecam stores ``(offsets, heads)``, timm ``(heads, offsets)``, with the same offset index
  ``|dy| * resolution + |dx|``.

Every Keras variable must be claimed by a rule and every parameter (and batch-norm statistic) of
the PyTorch model filled, with the right shape; otherwise one :func:`~model_zoo.h5weights.mismatch_error`
names the missing and unexpected layers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from model_zoo.convert.weight_maps import WEIGHT_MAPS, Rule
from model_zoo.errors import InvalidInputError
from model_zoo.h5weights import H5Layer, mismatch_error, read_h5_layers


def _maxvit_rel_pos(table: np.ndarray) -> np.ndarray:
    heads, n = table.shape
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise InvalidInputError(f"a MaxViT position table of {n} entries is not square")
    return table.reshape(heads, side, side)[:, ::-1, ::-1]


def _nhwc_flatten_dense(kernel: np.ndarray, channels: int = 512) -> np.ndarray:
    rows, out = kernel.shape
    side = int(round(np.sqrt(rows // channels)))
    if side * side * channels != rows:
        raise InvalidInputError(f"a dense layer of {rows} inputs does not follow a square map of {channels} channels")
    return kernel.reshape(side, side, channels, out).transpose(3, 2, 0, 1).reshape(out, rows)


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "copy": lambda a: a,
    "hwio_to_oihw": lambda a: a.transpose(3, 2, 0, 1),
    "depthwise_to_oihw": lambda a: a.transpose(2, 3, 0, 1),
    "transpose": lambda a: a.T,
    "conv1x1_to_linear": lambda a: a[0, 0].T,
    "nhwc_flatten_dense": _nhwc_flatten_dense,
    "maxvit_rel_pos": _maxvit_rel_pos,
}

_BN = {"gamma": ("weight", "copy"), "beta": ("bias", "copy"), "moving_mean": ("running_mean", "copy"),
       "moving_variance": ("running_var", "copy")}
# kind -> {Keras variable name: (PyTorch tensor name under the target, transform)}; "*" takes any
# single variable and "" means the target names the tensor itself
KINDS: dict[str, Mapping[str, tuple[str, str]]] = {
    "conv": {"kernel": ("weight", "hwio_to_oihw"), "bias": ("bias", "copy")},
    "dwconv": {"depthwise_kernel": ("weight", "depthwise_to_oihw"), "bias": ("bias", "copy")},
    "dense": {"kernel": ("weight", "transpose"), "bias": ("bias", "copy")},
    "dense_after_nhwc_flatten": {"kernel": ("weight", "nhwc_flatten_dense"), "bias": ("bias", "copy")},
    "conv1x1_as_dense": {"kernel": ("weight", "conv1x1_to_linear"), "bias": ("bias", "copy")},
    "bn": _BN,
    "ln": {"gamma": ("weight", "copy"), "beta": ("bias", "copy")},
    "tensor": {"*": ("", "copy")},
    "maxvit_rel_pos": {"positional_embedding": ("relative_position_bias_table", "maxvit_rel_pos")},
    "levit_bias": {"positional_embedding": ("attention_biases", "transpose")},
}

_FIELD = re.compile(r"\{(\w+)(?::(letter)|([+-]\d+))?\}")


def _render(template: str, match: re.Match) -> str:
    def field(m: re.Match) -> str:
        name, letter, offset = m.groups()
        value = match.group(int(name) if name.isdigit() else name)
        if letter:
            return str(ord(value) - ord("a"))
        return str(int(value) + int(offset)) if offset else value

    return _FIELD.sub(field, template)


def _compiled(rules: Sequence[Rule]) -> list[tuple[re.Pattern, Rule]]:
    return [(re.compile(rule.keras), rule) for rule in rules]


def convert_layers(layers: Sequence[H5Layer], rules: Sequence[Rule]
                   ) -> tuple[dict[str, np.ndarray], dict[str, str], list[str], list[str]]:
    """Apply ``rules`` to the file's layers: (PyTorch key -> array, PyTorch key -> Keras variable it
    came from, Keras layers no rule claims, variables whose array the rule's transform refused)."""
    compiled = _compiled(rules)
    state: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    parts: dict[str, tuple[Rule, dict[int, np.ndarray]]] = {}
    unexpected: list[str] = []
    refused: list[str] = []
    for layer in layers:
        for wpath, value in layer.weights:
            layer_path, _, leaf = wpath.rpartition("/")
            found = next(((m, r) for p, r in compiled if (m := p.fullmatch(layer_path))), None)
            entry = None
            if found is not None:
                leaves = KINDS[found[1].kind]
                entry = leaves.get(leaf) or (leaves.get("*") if len(layer.weights) == 1 else None)
            if entry is None:
                unexpected.append(layer.name)
                continue
            match, rule = found
            name, transform = entry
            try:
                array = np.ascontiguousarray(TRANSFORMS[transform](value), dtype=np.float32)
            except (InvalidInputError, ValueError) as exc:  # e.g. a position table that is not square
                refused.append(f"{wpath} {value.shape}: {exc}")
                continue
            for template in (rule.torch,) if isinstance(rule.torch, str) else rule.torch:
                key = _render(template, match) + (f".{name}" if name else "")
                origin[key] = wpath
                if rule.concat:
                    parts.setdefault(key, (rule, {}))[1][rule.concat.index(match.group("part"))] = array
                else:
                    state[key] = array
    for key, (rule, chunks) in parts.items():
        if len(chunks) == len(rule.concat):  # an incomplete set leaves the key missing
            state[key] = np.concatenate([chunks[i] for i in sorted(chunks)], axis=0)
    return state, origin, unexpected, refused


def _module_of(key: str) -> str:
    return key.rsplit(".", 1)[0]


def load_keras_h5_into_torch(module: Any, path: str | Path, model_id: str, *, architecture: str = "") -> None:
    """Fill the PyTorch port ``module`` of ``model_id`` from the Keras ``.h5`` at ``path``.

    Raises :func:`~model_zoo.h5weights.mismatch_error` (nothing is loaded) when the file's layers
    and the architecture's do not correspond one to one, or an array has another shape.
    """
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    rules = WEIGHT_MAPS.get(model_id)
    if rules is None:
        raise InvalidInputError(f"model {model_id!r}: no Keras -> PyTorch weight map; known: {sorted(WEIGHT_MAPS)}")
    state, origin, unexpected, mismatched = convert_layers(read_h5_layers(path), rules)
    own = module.state_dict()
    # parameters and batch-norm statistics must come from the file; counters (num_batches_tracked) need not
    required = [k for k in own if not k.endswith("num_batches_tracked")]
    missing = [_module_of(k) for k in required if k not in state]
    unexpected += [origin[k].rpartition("/")[0] for k in state if k not in own]
    mismatched += [f"{origin[k]} {state[k].shape} -> {k} {tuple(own[k].shape)}" for k in state
                   if k in own and tuple(own[k].shape) != state[k].shape]
    if missing or unexpected or mismatched:
        raise mismatch_error(path, architecture or model_id, missing=missing, unexpected=unexpected,
                             mismatched=mismatched)
    own.update({k: torch.from_numpy(v) for k, v in state.items()})
    module.load_state_dict(own, strict=True)
