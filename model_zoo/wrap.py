"""``wrap()``: an adapter for a model the user already holds (PyTorch or Keras)."""
from __future__ import annotations

import sys
from typing import Any, Mapping

from model_zoo.adapters.base import Adapter
from model_zoo.errors import InvalidInputError
from model_zoo.preprocessing import Preprocess


def wrap(model: Any, preprocess: Preprocess | Mapping[str, Any] | None = None, **kw: Any) -> Adapter:
    """Wrap a ``torch.nn.Module`` or ``keras.Model`` that maps images to (N, C) logits.

    ``preprocess`` (a :class:`Preprocess` or a dict of its fields) is applied inside the
    differentiated function; None feeds the model the boundary images unchanged (float32 [0, 255]
    RGB at 224x224; NCHW for PyTorch, NHWC for Keras). Keyword arguments go to
    :class:`~model_zoo.adapters.torch_adapter.TorchAdapter` (``device``, ``precision``,
    ``batch_size``, ``weights_sha256``, ``spec``) or
    :class:`~model_zoo.adapters.keras_adapter.KerasAdapter` (the same minus ``device``, plus
    ``logits_layer``). A PyTorch module is moved to ``device``; its training mode and
    ``requires_grad`` flags are left as they were after each call.
    """
    preprocess = Preprocess.coerce(preprocess)
    # A model of a framework that is not imported yet cannot exist, so check without importing.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from model_zoo.adapters.torch_adapter import TorchAdapter

        return TorchAdapter(model, preprocess, **_only(kw, "TorchAdapter", {"device", "precision", "batch_size", "weights_sha256", "spec"}))
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        from model_zoo.adapters.keras_adapter import KerasAdapter

        return KerasAdapter(model, preprocess, **_only(kw, "KerasAdapter", {"logits_layer", "precision", "batch_size", "weights_sha256", "spec"}))
    raise InvalidInputError(
        f"model: wrap() takes a torch.nn.Module or a keras.Model, got {type(model).__module__}.{type(model).__name__}"
    )


def _only(kw: Mapping[str, Any], target: str, allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise InvalidInputError(f"wrap(): option(s) {unknown} do not apply to {target}; allowed: {sorted(allowed)}")
    return dict(kw)
