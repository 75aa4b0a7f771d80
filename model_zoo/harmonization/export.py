"""Write a trained model as an exported model folder (:mod:`model_zoo.model_folder`), which
``model_zoo.load(path)`` and ``alignbench run`` accept.

Every training run exports under an id of its own: the architecture's id plus a digest of the
recipe (``resnet50-harmonized-1a2b3c4d``), so two runs with other settings never share a results
record (a record of the same id with other weights is refused, not silently reused).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from model_zoo import model_folder

# how a run went, not what it trained: left out of the run's digest
RUN_STATE_FIELDS = ("steps", "world_size", "replicas", "strategy", "checkpoint_every", "log_every", "tensorboard")


def run_id(training: Mapping[str, Any]) -> str:
    """8 hex digits naming a training recipe (``training``: the config's fields; how the run went,
    :data:`RUN_STATE_FIELDS`, does not count)."""
    recipe = {k: v for k, v in training.items() if k not in RUN_STATE_FIELDS}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:8]


def export_id(arch: Any, *, harmonized: bool, training: Mapping[str, Any]) -> str:
    """The id a run's export gets: ``arch.model_id`` (``-harmonized`` replaced by ``-baseline`` for a
    baseline) and the recipe's :func:`run_id`."""
    base = arch.model_id if harmonized else arch.model_id.replace("-harmonized", "-baseline")
    return f"{base}-{run_id(training)}"


def export_model(model: Any, out_dir: str | Path, arch: Any, *, harmonized: bool = True,
                 training: Mapping[str, Any] | None = None) -> Path:
    """Export a trained torch ``nn.Module`` or Keras model as a folder ``model_zoo.load`` accepts.

    ``arch`` is a :class:`~model_zoo.harmonization.models.Architecture` (what builds the graph and
    how images are preprocessed). For torch, ``model_zoo.load`` rebuilds the graph with the builder
    named by ``arch.source`` (``timm``, ``torchvision``, a catalog builder) and ``arch.source_id``,
    so a hand-written module needs such an equivalent; Keras models carry their graph. A baseline
    (``harmonized=False``) gets ``-baseline`` in place of ``-harmonized`` in its id and name.
    Returns the folder."""
    training = dict(training or {})
    name = arch.display_name if harmonized else arch.display_name.replace("(harmonized)", "(baseline)")
    framework = "keras" if arch.framework == "keras" or hasattr(model, "get_config") else "torch"
    return model_folder.write(out_dir, model, id=export_id(arch, harmonized=harmonized, training=training),
                              framework=framework, preprocess=arch.preprocess_dict(),
                              architecture={"source": arch.source, "source_id": arch.source_id},
                              display_name=name, family=arch.family, harmonized=harmonized,
                              base_model=arch.base_model, training=training)
