"""PyTorch adapter: logits and input-gradient saliency of a ``torch.nn.Module``.

The module is moved to ``device`` once. Each call runs it in eval mode with its parameters frozen
(``requires_grad=False``, so backward computes the input gradient only) and then restores the
module's own training flag and ``requires_grad`` flags, so a wrapped model can still be trained.

Explainers (:meth:`Adapter.explain`): the gradient primitive differentiates the target w.r.t. the
image or the normalised image (``_gradient_chunk``); Grad-CAM hooks the last module whose output is
a 4-D (N, C, h, w) activation with h, w > 1 (or the module the explainer names) and refuses a model
where token layers (3-D outputs) follow it: a vision transformer has no last convolutional stage.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator

import numpy as np

from model_zoo.adapters.base import FAST_PATHS, Adapter
from model_zoo.adapters.batchnorm_folding import fold_batch_norm
from model_zoo.errors import InvalidInputError
from model_zoo.explainers import Explainer
from model_zoo.frameworks import import_torch
from model_zoo.preprocessing import BOUNDARY_SIZE, Preprocess
from model_zoo.preprocessing_torch import TorchPreprocess

torch = import_torch()
F = torch.nn.functional
log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: "str | torch.device") -> "torch.device":
    """``"auto"`` -> the first CUDA device if any, else CPU; other strings as ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(f"device: {device!r} is not a device (use 'cpu', 'cuda', 'cuda:1' or 'auto')") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError(f"device: {device!r} requested but CUDA is not available to PyTorch")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"device: {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    return resolved


class TorchAdapter(Adapter):
    """Adapter for a ``torch.nn.Module`` mapping NCHW images to (N, C) logits.

    ``precision`` "bfloat16"/"float16" runs the forward under ``torch.autocast`` on the device
    (float16 is refused on CPU); logits and maps are returned as float32 either way.
    """

    framework = "torch"

    def __init__(
        self,
        module: "torch.nn.Module",
        preprocess: Preprocess | dict | None,
        *,
        spec: Any = None,
        device: "str | torch.device" = "cpu",
        precision: str = "float32",
        weights_sha256: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise InvalidInputError(f"model must be a torch.nn.Module, got {type(module).__name__}")
        super().__init__(preprocess, spec=spec, precision=precision, weights_sha256=weights_sha256, batch_size=batch_size)
        self.device = resolve_device(device)
        self._autocast_dtype = _DTYPES.get(precision)
        if precision == "float16" and self.device.type == "cpu":
            raise InvalidInputError("precision: float16 is not supported on CPU; use 'bfloat16' or 'float32'")
        if precision == "bfloat16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise InvalidInputError(f"precision: bfloat16 is not supported on {self.device}; use 'float16'")
        self.module = module.to(self.device)
        self._preprocess = TorchPreprocess(self.preprocess, self.device)
        self._gradcam_names: dict[str | None, str] = {}  # resolved Grad-CAM module per requested layer
        self.fast_path = "eager"
        self._forward: Any = self.module

    def set_fast_path(self, path: str) -> None:
        """Run the module as ``path`` (one of :data:`FAST_PATHS`): ``"eager"`` (as given),
        ``"channels_last"`` (NHWC memory layout for weights and input: the boundary NHWC images
        need no transpose copy), ``"compile"`` (``torch.compile`` of the module; forward and the
        input-gradient backward are compiled on the first call of each batch shape), ``"fused"``
        (channels_last, and eval BatchNorm folded into the convolution before it, in a traced copy
        made now: :mod:`model_zoo.adapters.batchnorm_folding`). Grad-CAM hooks the module's own
        layers, so under every fast path it runs the module as given."""
        if path not in FAST_PATHS:
            raise InvalidInputError(f"fast_path: {path!r} is not one of {', '.join(FAST_PATHS)}")
        layout = torch.channels_last if path in ("channels_last", "fused") else torch.contiguous_format
        if path == "fused":
            folded = fold_batch_norm(self.module, name=self.name)
            log.info("fast path fused: %s: %d of %d BatchNorm layers folded", self.name, folded.folded,
                     folded.batch_norms)
            self.module = self.module.to(memory_format=torch.contiguous_format)
            self._forward = folded.module.to(memory_format=layout)
        else:
            self.module = self.module.to(memory_format=layout)
            self._forward = torch.compile(self.module, dynamic=False) if path == "compile" else self.module
        self.fast_path = path

    # ------------------------------------------------------------------ preprocessing
    def _model_input(self, x_nhwc: "torch.Tensor") -> "torch.Tensor":
        """Boundary NHWC [0, 255] -> the module's NCHW input, differentiably."""
        return self._preprocess(x_nhwc.permute(0, 3, 1, 2))

    # ------------------------------------------------------------------ running
    @contextlib.contextmanager
    def _frozen_eval(self) -> Iterator[None]:
        """Eval mode and frozen parameters for the duration of one call, then restore."""
        module = self.module
        modes = [(m, m.training) for m in module.modules()]
        grads = [(p, p.requires_grad) for p in module.parameters()]
        module.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in grads:
                p.requires_grad_(flag)
            for m, flag in modes:
                m.training = flag

    def _autocast(self) -> "contextlib.AbstractContextManager[Any]":
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)

    def _logits(self, x_nhwc: "torch.Tensor", *, hooked: bool = False) -> "torch.Tensor":
        """Logits of the fast-path network, or (`hooked`) of the module as given, whose layers
        carry the caller's forward hooks."""
        with self._autocast():
            x = self._model_input(x_nhwc)
            if self.fast_path in ("channels_last", "fused"):
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.module(x) if hooked else self._forward(x)
        if not isinstance(out, torch.Tensor):
            out = getattr(out, "logits", out)  # Hugging Face style outputs
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidInputError(f"model: {self.name} must return (N, classes) logits, returned {shape}")
        return out

    def _predict_chunk(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(images).to(self.device)
        with self._frozen_eval(), torch.inference_mode():
            logits = self._logits(x)
        self._set_num_classes(logits.shape[1])
        return logits.float().cpu().numpy()

    def _saliency_chunk(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.from_numpy(images).to(self.device).requires_grad_(True)
        with self._frozen_eval(), torch.enable_grad():
            logits = self._logits(x)
            self._set_num_classes(logits.shape[1], labels)  # before gather: bad indices crash CUDA
            index = torch.from_numpy(labels).to(self.device).view(-1, 1)
            target = logits.gather(1, index).sum()
            (grad,) = torch.autograd.grad(target, x)
        maps = grad.abs().amax(dim=-1)
        return logits.detach().float().cpu().numpy(), maps.float().cpu().numpy()

    def _target(self, logits: "torch.Tensor", labels: np.ndarray, target: str) -> "torch.Tensor":
        self._set_num_classes(logits.shape[1], labels)  # before gather: bad indices crash CUDA
        index = torch.from_numpy(labels).to(self.device).view(-1, 1)
        scores = logits.float().softmax(dim=1) if target == "probability" else logits
        return scores.gather(1, index).sum()

    def _gradient_chunk(self, z: np.ndarray, labels: np.ndarray, target: str,
                        affine: "tuple[np.ndarray, np.ndarray] | None") -> tuple[np.ndarray, np.ndarray]:
        zt = torch.from_numpy(np.ascontiguousarray(z)).to(self.device).requires_grad_(True)
        with self._frozen_eval(), torch.enable_grad():
            x = zt
            if affine is not None:  # z = x * gain + offset (RGB, last axis): back to the image, differentiably
                gain, offset = (torch.from_numpy(a).to(self.device) for a in affine)
                x = (zt - offset) / gain
            logits = self._logits(x)
            (grad,) = torch.autograd.grad(self._target(logits, labels, target), zt)
        return logits.detach().float().cpu().numpy(), grad.float().cpu().numpy()

    def gradcam_layer(self, images: np.ndarray, layer: str | None = None) -> str:
        """The name of the module Grad-CAM uses on this model (``layer`` if given and found)."""
        names = dict(self.module.named_modules())
        if layer is not None:
            if layer not in names:
                shown = ", ".join(list(names)[-8:])
                raise InvalidInputError(f"explainer grad-cam: {self.name} has no module {layer!r} (last modules: {shown})")
            return layer
        order: list[tuple[str, int, tuple[int, ...]]] = []

        def hook(name: str) -> Any:
            def record(_module: Any, _inputs: Any, output: Any) -> None:
                if isinstance(output, torch.Tensor):
                    order.append((name, output.ndim, tuple(output.shape)))
            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in names.items() if n]
        try:
            x = torch.from_numpy(images[:1]).to(self.device)
            with self._frozen_eval(), torch.inference_mode():
                self._logits(x, hooked=True)
        finally:
            for h in handles:
                h.remove()
        spatial = [i for i, (_, ndim, shape) in enumerate(order) if ndim == 4 and shape[2] > 1 and shape[3] > 1]
        if not spatial:
            raise InvalidInputError(f"explainer grad-cam: {self.name} has no 4-D convolutional activation; "
                                    "Grad-CAM needs a model with a last convolutional stage")
        last = spatial[-1]
        tokens = [n for n, ndim, _ in order[last + 1:] if ndim == 3]
        if tokens:
            raise InvalidInputError(
                f"explainer grad-cam: {self.name} has no last convolutional stage (its last 4-D activation, "
                f"{order[last][0]!r}, is followed by token layers such as {tokens[0]!r}); Grad-CAM needs a "
                "convolutional network (or name a layer: params layer=...)")
        return order[last][0]

    def _gradcam_chunk(self, images: np.ndarray, labels: np.ndarray, spec: Explainer) -> tuple[np.ndarray, np.ndarray]:
        name = self._gradcam_names.get(spec.param("layer"))
        if name is None:
            name = self._gradcam_names[spec.param("layer")] = self.gradcam_layer(images, spec.param("layer"))
        module = dict(self.module.named_modules())[name]
        captured: list[Any] = []
        handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
        x = torch.from_numpy(images).to(self.device).requires_grad_(True)  # parameters are frozen: build a graph
        try:
            with self._frozen_eval(), torch.enable_grad():
                logits = self._logits(x, hooked=True)
                if not captured or not isinstance(captured[-1], torch.Tensor) or captured[-1].ndim != 4:
                    raise InvalidInputError(f"explainer grad-cam: module {name!r} of {self.name} gives no 4-D activation")
                acts = captured[-1]
                (grad,) = torch.autograd.grad(self._target(logits, labels, spec.target), acts)
        finally:
            handle.remove()
        weights = grad.float().mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * acts.detach().float()).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=(BOUNDARY_SIZE, BOUNDARY_SIZE), mode="bilinear", align_corners=False)
        return logits.detach().float().cpu().numpy(), cam[:, 0].cpu().numpy()

    def _is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, torch.OutOfMemoryError)

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _describe_model(self) -> str:
        return f"torch {type(self.module).__name__}"
