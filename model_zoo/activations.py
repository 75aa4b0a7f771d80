"""Spatial layer activations of any adapter (PyTorch forward hooks, Keras sub-models).

Images cross in the boundary format (float32 NHWC [0, 255] at 224x224); each adapter's own
preprocessing (resize, mean/std, channel order) is applied first, exactly as for ``predict``.
Every layer comes back channel-last with its spatial layout kept, float32 ``(N, H, W, C)``:

* convolutional maps: PyTorch NCHW is moved to NHWC; a 4-D PyTorch output whose axes 1 and 2 are
  equal but 2 and 3 are not (timm's Swin stages, already NHWC) is taken as NHWC;
* transformer tokens ``(N, T, C)``: the leading ``T - floor(sqrt(T))**2`` tokens (class,
  distillation or register tokens; at most :data:`MAX_EXTRA_TOKENS`) are dropped and the rest is
  reshaped to its ``sqrt x sqrt`` grid, row-major (ViT, DeiT, LeViT ordering);
* any other output (pooled vectors, logits, token counts that are not a square plus a few) is not
  spatial: :func:`spatial_layers` leaves it out and :func:`activations` refuses it by name.

Layer names are PyTorch ``named_modules`` names (``layer3.1``, ``blocks.7``) or Keras layer names.
Keras layers inside a nested sub-model are not reachable (the nested model is one layer).

Importing this module imports neither framework; the adapter passed in already did.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from model_zoo.errors import InvalidInputError

MAX_EXTRA_TOKENS = 8
DEFAULT_MAX_LAYERS = 12

Transform = Callable[[str, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------- layout
def to_spatial(array: np.ndarray, framework: str, what: str = "output") -> np.ndarray:
    """One layer output -> channel-last ``(N, H, W, C)`` (see the module docstring); raises
    :class:`InvalidInputError` when the output has no spatial layout."""
    a = np.asarray(array)
    if a.ndim == 4:
        if framework == "torch" and not (a.shape[1] == a.shape[2] and a.shape[2] != a.shape[3]):
            a = a.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim == 3:
        n, t, c = a.shape
        side = math.isqrt(t)
        extra = t - side * side
        if side >= 2 and extra <= MAX_EXTRA_TOKENS:
            return np.ascontiguousarray(a[:, extra:].reshape(n, side, side, c), dtype=np.float32)
    raise InvalidInputError(f"{what}: shape {tuple(a.shape)} has no spatial layout (need (N, C, H, W) maps "
                            f"or (N, tokens, C) with a square number of tokens plus at most {MAX_EXTRA_TOKENS})")


def _spatial_shape(shape: Sequence[int | None], framework: str) -> tuple[int, int, int] | None:
    """(H, W, C) of an output of ``shape`` after :func:`to_spatial`, or None if not spatial (H, W >= 2)."""
    try:
        out = to_spatial(np.zeros([1, *[s or 1 for s in shape[1:]]], np.float32), framework)
    except InvalidInputError:
        return None
    return out.shape[1:] if out.shape[1] >= 2 and out.shape[2] >= 2 else None


def _evenly(names: list[str], k: int | None) -> list[str]:
    """``k`` names spread evenly over ``names`` in order, the first and last included."""
    if k is None or len(names) <= k:
        return names
    if k == 1:
        return names[-1:]
    idx = np.unique(np.round(np.linspace(0, len(names) - 1, k)).astype(int))
    return [names[i] for i in idx]


def _ancestor(name: str, within: set[str]) -> str | None:
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:k]) in within:
            return ".".join(parts[:k])
    return None


def _outer_blocks(names: list[str], enough: int = 6) -> list[str]:
    """The outermost blocks (e.g. ``stages.1``, not ``stages.1.blocks.0.attn.proj``); when fewer than
    ``enough``, also the blocks one level inside them (``stages.1.blocks.0``). Order kept."""
    pool = set(names)
    outer = [n for n in names if _ancestor(n, pool) is None]
    if len(outer) >= enough:
        return outer
    keep = set(outer) | {n for n in names if _ancestor(n, pool) in outer}
    return [n for n in names if n in keep]


def _first_tensor(out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return _first_tensor(out[0]) if out else None
    return out


# ---------------------------------------------------------------------- public API
def spatial_layers(adapter: Any, *, max_layers: int | None = DEFAULT_MAX_LAYERS, blocks_only: bool = True) -> list[str]:
    """Names of the layers with spatial outputs, in forward order, ``max_layers`` spread evenly.

    ``blocks_only`` (PyTorch): only blocks, i.e. items of an ``nn.Sequential``/``nn.ModuleList`` that
    are composite modules of their own (``layer3.1``, ``blocks.7``, ``stages.2``); when fewer than two
    qualify, any container item (VGG's ``features.16``); then every module. Keras: every layer but the inputs
    (the paper's code takes all layers except the last ten, which are never spatial anyway).
    """
    if getattr(adapter, "framework", None) == "torch":
        shapes, blocks, composite = _torch_probe(adapter)
        names = [n for n, s in shapes.items() if s is not None]
        if blocks_only:
            # composite blocks (ResNet/ViT/ConvNeXt blocks) first; else any container item (VGG's
            # features.N); else every module
            for tier in (_outer_blocks([n for n in names if n in blocks and n in composite]),
                         [n for n in names if n in blocks]):
                if len(tier) >= 2:
                    names = tier
                    break
        return _evenly(names, max_layers)
    if getattr(adapter, "framework", None) == "keras":
        names = [layer.name for layer in adapter.model.layers
                 if type(layer).__name__ != "InputLayer" and _keras_shape(layer) is not None]
        return _evenly(names, max_layers)
    raise InvalidInputError(f"activations: adapter {adapter!r} is neither a PyTorch nor a Keras adapter")


def activations(adapter: Any, images: np.ndarray, layers: Sequence[str], *,
                transform: Transform | None = None) -> dict[str, np.ndarray]:
    """``{layer: (N, H, W, C) float32}`` for boundary ``images`` (N, 224, 224, 3) in [0, 255].

    Images are processed in chunks of ``adapter.batch_size``; ``transform(layer, maps)``, when given,
    is applied to every chunk (e.g. pooling to a recording grid) so the full-size maps of all layers
    never need to be held at once. Unknown or non-spatial layers raise :class:`InvalidInputError`.
    """
    from model_zoo.adapters.base import check_images

    images = check_images(images)
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise InvalidInputError("activations: no layers requested")
    framework = getattr(adapter, "framework", None)
    if framework == "torch":
        run = _torch_runner(adapter, layers)
    elif framework == "keras":
        run = _keras_runner(adapter, layers)
    else:
        raise InvalidInputError(f"activations: adapter {adapter!r} is neither a PyTorch nor a Keras adapter")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    step = max(1, int(getattr(adapter, "batch_size", 32)))
    for start in range(0, len(images), step):
        outs = run(images[start:start + step])
        for name in layers:
            maps = to_spatial(outs[name], framework, f"layer {name!r} of {adapter.name}")
            parts[name].append(transform(name, maps) if transform else maps)
    return {name: np.concatenate(p) if p else np.zeros((0, 0, 0, 0), np.float32) for name, p in parts.items()}


# ---------------------------------------------------------------------- PyTorch
def _torch_probe(adapter: Any) -> tuple[dict[str, tuple[int, int, int] | None], set[str], set[str]]:
    """Output shape of every named module on one grey image, in call order; the names of container
    items; the names of composite blocks."""
    torch = __import__("torch")
    module = adapter.module
    shapes: dict[str, tuple[int, int, int] | None] = {}
    blocks = set()
    for name, m in module.named_modules():
        if isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList)):
            blocks.update(f"{name}.{child}" if name else child for child, _ in m.named_children())
    # a block of its own (a class with children, defined outside torch.nn), not a bare layer
    composite = {name for name, m in module.named_modules()
                 if name and any(True for _ in m.children()) and not type(m).__module__.startswith("torch.nn")}
    handles = []

    def hook(name: str):
        def fn(_mod, _inp, out):
            t = _first_tensor(out)
            if name not in shapes and isinstance(t, torch.Tensor):
                shapes[name] = _spatial_shape(tuple(t.shape), "torch")
        return fn

    for name, m in module.named_modules():
        if name:
            handles.append(m.register_forward_hook(hook(name)))
    try:
        x = torch.full((1, 224, 224, 3), 128.0, device=adapter.device)
        with adapter._frozen_eval(), torch.inference_mode():
            adapter.module(adapter._model_input(x))
    finally:
        for h in handles:
            h.remove()
    return shapes, blocks, composite


def _torch_runner(adapter: Any, layers: list[str]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    torch = __import__("torch")
    modules = dict(adapter.module.named_modules())
    missing = [n for n in layers if n not in modules or not n]
    if missing:
        near = [n for n in modules if n][-6:]
        raise InvalidInputError(f"layers {missing}: no such module in {adapter.name} (module names look like {near})")

    def run(chunk: np.ndarray) -> dict[str, np.ndarray]:
        got: dict[str, np.ndarray] = {}

        def hook(name: str):
            def fn(_mod, _inp, out):
                t = _first_tensor(out)
                if name not in got and isinstance(t, torch.Tensor):
                    # copy now: a later in-place op (ReLU(inplace=True)) would change the tensor
                    got[name] = t.detach().to("cpu", dtype=torch.float32, copy=True).numpy()
            return fn

        handles = [modules[n].register_forward_hook(hook(n)) for n in layers]
        try:
            x = torch.from_numpy(chunk).to(adapter.device)
            with adapter._frozen_eval(), torch.inference_mode(), adapter._autocast():
                adapter.module(adapter._model_input(x))
        finally:
            for h in handles:
                h.remove()
        silent = [n for n in layers if n not in got]
        if silent:
            raise InvalidInputError(f"layers {silent} of {adapter.name} produced no tensor in the forward pass")
        return got

    return run


# ---------------------------------------------------------------------- Keras
def _keras_shape(layer: Any) -> tuple[int, int, int] | None:
    try:
        shape = tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):  # shared or never-called layers
        return None
    return _spatial_shape(shape, "keras")


def _keras_runner(adapter: Any, layers: list[str]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    import keras

    from model_zoo.frameworks import import_tensorflow

    tf = import_tensorflow()
    model = adapter.model
    if not getattr(model, "inputs", None):
        raise InvalidInputError(f"activations: {adapter.name} is a subclassed Keras model; layer outputs need a "
                                "functional or Sequential model")
    outputs = []
    for name in layers:
        try:
            outputs.append(model.get_layer(name).output)
        except ValueError as exc:
            shown = ", ".join(layer.name for layer in model.layers[-6:])
            raise InvalidInputError(f"layer {name!r}: not in {adapter.name} (last layers: {shown}) ({exc})") from exc
    sub = keras.Model(model.inputs[0] if len(model.inputs) == 1 else model.inputs, outputs)

    def run(chunk: np.ndarray) -> dict[str, np.ndarray]:
        outs = sub(adapter._model_input(tf.convert_to_tensor(chunk)), training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        return {name: np.asarray(tf.cast(o, tf.float32)) for name, o in zip(layers, outs)}

    return run
