"""Framework adapters behind one contract (:class:`~model_zoo.adapters.base.Adapter`).

``TorchAdapter`` and ``KerasAdapter`` are imported on first use, so that importing this package
imports neither PyTorch nor TensorFlow.
"""
from __future__ import annotations

from typing import Any

from model_zoo.adapters.base import Adapter

__all__ = ["Adapter", "KerasAdapter", "TorchAdapter"]

_LAZY = {
    "TorchAdapter": "model_zoo.adapters.torch_adapter",
    "KerasAdapter": "model_zoo.adapters.keras_adapter",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
