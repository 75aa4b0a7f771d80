"""Write a trained model as an "alignbench exported model" folder, which ``model_zoo.load(path)``
and ``alignbench run`` accept.

Folder layout: ``alignbench_model.json`` (format ``alignbench-model/1``) beside the weights file
(``model.safetensors`` for torch, ``model.keras`` for Keras). Weights are written first, the JSON
last, both atomically, so a folder with a JSON always has complete weights whose sha256 it records.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from model_zoo.fileio import atomic_output, atomic_write_bytes, atomic_write_json, sha256_file

FORMAT = "alignbench-model/1"
MANIFEST = "alignbench_model.json"
IMAGENET_PREPROCESS = {"input_size": 224, "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406],
                       "std": [0.229, 0.224, 0.225], "scale": 1 / 255, "channel_order": "RGB"}


def manifest(*, model_id: str, display_name: str, family: str, framework: str, source: str,
             source_id: str, preprocess: Mapping[str, Any], weights: str, weights_sha256: str,
             harmonized: bool, base_model: str | None, training: Mapping[str, Any]) -> dict[str, Any]:
    """The ``alignbench_model.json`` document (see issue 6 for each field)."""
    missing = {"input_size", "interpolation", "mean", "std", "scale", "channel_order"} - set(preprocess)
    if missing:
        raise ValueError(f"preprocess lacks {sorted(missing)}")
    return {
        "format": FORMAT, "id": model_id, "display_name": display_name,
        "family": "harmonized" if harmonized else family, "framework": framework,
        "architecture": {"source": source, "source_id": source_id},
        "preprocess": dict(preprocess), "weights": weights, "weights_sha256": weights_sha256,
        "top1": None, "harmonized": harmonized, "base_model": base_model, "training": dict(training),
    }


def export_torch(model: Any, out_dir: str | Path, **fields: Any) -> Path:
    """Save ``model``'s state dict as safetensors plus the manifest; returns the folder.

    ``fields`` are :func:`manifest`'s keywords except framework/weights/weights_sha256. Tied
    tensors are saved as separate copies (safetensors refuses shared storage)."""
    from safetensors.torch import save

    out = Path(out_dir)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", save(state, metadata={"format": "pt"}))
    doc = manifest(framework="torch", weights="model.safetensors",
                   weights_sha256=sha256_file(out / "model.safetensors"), **fields)
    atomic_write_json(out / MANIFEST, doc)
    return out


def export_keras(model: Any, out_dir: str | Path, **fields: Any) -> Path:
    """Save a Keras model as ``model.keras`` (written to a temporary name, then renamed) plus the
    manifest; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / "model.keras", suffix=".keras") as tmp:  # Keras picks the format by extension
        model.save(str(tmp))
    doc = manifest(framework="keras", weights="model.keras", weights_sha256=sha256_file(out / "model.keras"),
                   **fields)
    atomic_write_json(out / MANIFEST, doc)
    return out


def export_model(model: Any, out_dir: str | Path, arch: Any, *, harmonized: bool = True,
                 training: Mapping[str, Any] | None = None) -> Path:
    """Export a trained torch ``nn.Module`` or Keras model as a folder ``model_zoo.load`` accepts.

    ``arch`` is a :class:`~model_zoo.harmonization.models.Architecture` (what builds the graph and
    how images are preprocessed). For torch, ``model_zoo.load`` rebuilds the graph with the builder
    named by ``arch.source`` (``timm``, ``torchvision``, a catalog builder) and ``arch.source_id``,
    so a hand-written module needs such an equivalent; Keras models carry their graph. A baseline
    (``harmonized=False``) gets ``-baseline`` in place of ``-harmonized`` in its id and name.
    Returns the folder."""
    model_id, name = arch.model_id, arch.display_name
    if not harmonized:
        model_id = model_id.replace("-harmonized", "-baseline")
        name = name.replace("(harmonized)", "(baseline)")
    fields = dict(model_id=model_id, display_name=name, family=arch.family, source=arch.source,
                  source_id=arch.source_id, preprocess=arch.preprocess_dict(), harmonized=harmonized,
                  base_model=arch.base_model, training=dict(training or {}))
    if arch.framework == "keras" or hasattr(model, "get_config"):
        return export_keras(model, out_dir, **fields)
    return export_torch(model, out_dir, **fields)
