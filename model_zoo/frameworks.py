"""Import PyTorch and TensorFlow in an order that cannot crash the process.

In one process, loading TensorFlow and *then* triton (torch's GPU compiler, imported by timm and by
``torch._dynamo``) segfaults on an LLVM symbol clash; triton first, then TensorFlow, works. Every
alignbench module therefore obtains the frameworks through these functions:

* :func:`import_tensorflow` imports torch and triton first when they are installed;
* :func:`import_torch`, when TensorFlow is already loaded without triton (the user imported it
  first), makes triton unimportable for this process. torch then treats triton as absent, which only
  disables ``torch.compile``'s GPU kernels, instead of crashing.

:func:`install_import_guard` (called when ``model_zoo`` is imported) extends this to the user's own
imports: from then on a plain ``import tensorflow`` first loads triton, and if TensorFlow came
first, triton is blocked, so ``import timm`` in either order cannot crash.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import warnings
from types import ModuleType

_triton_blocked = False


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _block_triton_if_unsafe(stacklevel: int) -> None:
    """If TensorFlow is loaded and triton is not, make triton unimportable (see module doc)."""
    global _triton_blocked
    if "tensorflow" in sys.modules and "triton" not in sys.modules and _installed("triton"):
        sys.modules["triton"] = None  # type: ignore[assignment]  # makes `import triton` raise ImportError
        _triton_blocked = True
        warnings.warn(
            "TensorFlow was imported before PyTorch's triton; triton is disabled in this process to "
            "avoid a known segfault (torch.compile GPU kernels are unavailable). Import alignbench, "
            "torch or timm before tensorflow to keep it.",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )


def _import_triton() -> None:
    if _installed("triton") and sys.modules.get("triton", 0) is not None:
        import triton  # noqa: F401  (must precede TensorFlow)


class _TritonBeforeTensorFlow(importlib.abc.MetaPathFinder):
    """Import hook: the first ``import tensorflow`` loads triton beforehand, then steps aside."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == "tensorflow" and "tensorflow" not in sys.modules:
            _remove_hook()
            try:
                _import_triton()
            except Exception:  # noqa: BLE001 - a broken triton must not break `import tensorflow`
                sys.modules["triton"] = None  # type: ignore[assignment]
        return None  # let the regular finders import tensorflow


_hook = _TritonBeforeTensorFlow()


def _remove_hook() -> None:
    if _hook in sys.meta_path:
        sys.meta_path.remove(_hook)


def install_import_guard() -> None:
    """Make later imports of TensorFlow and triton (torch, timm) safe in any order.

    Imports nothing heavy: if TensorFlow is already loaded, triton is blocked (with a warning);
    otherwise a one-shot import hook loads triton (about 0.2 s) just before TensorFlow.
    """
    if "tensorflow" in sys.modules:
        _block_triton_if_unsafe(stacklevel=2)
    elif _hook not in sys.meta_path and _installed("triton"):
        sys.meta_path.insert(0, _hook)


def import_torch() -> ModuleType:
    """Return the ``torch`` module, imported safely whatever was imported before."""
    _block_triton_if_unsafe(stacklevel=2)
    import torch

    return torch


def import_tensorflow(*, gpu_memory_growth: bool = True) -> ModuleType:
    """Return the ``tensorflow`` module, importing torch and triton first when installed.

    With ``gpu_memory_growth`` (default) TensorFlow allocates GPU memory on demand instead of
    grabbing it all, so PyTorch can share the device.
    """
    if "tensorflow" not in sys.modules:
        if _installed("torch"):
            import_torch()
        _import_triton()
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the install
        from model_zoo.errors import AlignbenchError

        raise AlignbenchError(
            "TensorFlow is required for this step (ClickMe TFRecords, Keras models): "
            "pip install 'alignbench[tf-cpu]' (or '[tf]' on GPU/TPU machines)"
        ) from exc
    if gpu_memory_growth:
        try:
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # devices already initialised: the setting can no longer change
    return tf


def triton_blocked() -> bool:
    """Whether :func:`import_torch` had to disable triton in this process."""
    return _triton_blocked
