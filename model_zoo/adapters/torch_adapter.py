"""PyTorch adapter: logits and input-gradient saliency of a ``torch.nn.Module``.

The module is moved to ``device`` once. Each call runs it in eval mode with its parameters frozen
(``requires_grad=False``, so backward computes the input gradient only) and then restores the
module's own training flag and ``requires_grad`` flags, so a wrapped model can still be trained.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from model_zoo.adapters.base import FAST_PATHS, Adapter
from model_zoo.errors import InvalidInputError
from model_zoo.frameworks import import_torch
from model_zoo.preprocessing import Preprocess
from model_zoo.preprocessing_torch import TorchPreprocess

torch = import_torch()
F = torch.nn.functional

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
        self.fast_path = "eager"
        self._forward: Any = self.module

    def set_fast_path(self, path: str) -> None:
        """Run the module as ``path`` (one of :data:`FAST_PATHS`): ``"eager"`` (as given),
        ``"channels_last"`` (NHWC memory layout for weights and input: the boundary NHWC images
        need no transpose copy), ``"compile"`` (``torch.compile`` of the module; forward and the
        input-gradient backward are compiled on the first call of each batch shape)."""
        if path not in FAST_PATHS:
            raise InvalidInputError(f"fast_path: {path!r} is not one of {', '.join(FAST_PATHS)}")
        layout = torch.channels_last if path == "channels_last" else torch.contiguous_format
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

    def _logits(self, x_nhwc: "torch.Tensor") -> "torch.Tensor":
        with self._autocast():
            x = self._model_input(x_nhwc)
            if self.fast_path == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            out = self._forward(x)
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

    def _is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, torch.OutOfMemoryError)

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _describe_model(self) -> str:
        return f"torch {type(self.module).__name__}"
