"""alignbench's model zoo: the catalog of models, their adapters and saliency, and the harmonizer."""

from model_zoo import frameworks as _frameworks

# Any later `import tensorflow` / `import timm`, in either order, must not segfault (frameworks.py).
_frameworks.install_import_guard()

# Public API (importing these loads neither torch nor TensorFlow; adapters import them on first use).
from model_zoo.api import get_spec, list_models, load, load_model_folder, save_model_folder  # noqa: E402
from model_zoo.catalog import ModelSpec  # noqa: E402
from model_zoo.registry import register_model  # noqa: E402
from model_zoo.wrap import wrap  # noqa: E402

__all__ = ["ModelSpec", "get_spec", "list_models", "load", "load_model_folder", "register_model",
           "save_model_folder", "wrap"]
