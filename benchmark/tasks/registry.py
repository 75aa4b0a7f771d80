"""The task registry: task kinds by name, and the task that scores a given dataset.

A dataset object says which kind of task scores it (its ``task`` attribute: ``maps`` for ClickMe
and Clicktionary, ``psychophysics``, ``neural``); :func:`get_task` builds that task over it. The
built-in kinds are imported on first use. Third parties add kinds through the ``alignbench.tasks``
entry-point group (as models come in through ``alignbench.models``): each entry point names a
:class:`~benchmark.tasks.base.Task` subclass, registered under its ``kind``, e.g.::

    [project.entry-points."alignbench.tasks"]
    mylab_eyetracking = "mylab.tasks:EyeTrackingTask"

and a dataset of that kind (``task = "mylab-eyetracking"``) comes in through
:func:`benchmark.datasets.register_dataset`. An entry point that fails to load is a warning, not
an error. Nothing is discovered by reading source text.
"""
from __future__ import annotations

import importlib
import inspect
import logging
import os
from typing import Any

from benchmark.tasks.base import Task
from model_zoo.errors import InvalidInputError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "alignbench.tasks"
_BUILTIN = {
    "maps": "benchmark.tasks.maps:MapsTask",
    "psychophysics": "benchmark.tasks.psychophysics:PsychophysicsTask",
    "neural": "benchmark.tasks.neural:NeuralTask",
}
_REGISTERED: dict[str, type[Task]] = {}
_plugins_loaded = False


def register_task(cls: type[Task]) -> type[Task]:
    """Register a :class:`Task` subclass under its ``kind`` (usable as a class decorator)."""
    if not (inspect.isclass(cls) and issubclass(cls, Task)) or not isinstance(getattr(cls, "kind", None), str):
        raise InvalidInputError(f"register_task: expected a Task subclass with a 'kind', got {cls!r}")
    if cls.kind in _BUILTIN and _BUILTIN[cls.kind] != f"{cls.__module__}:{cls.__qualname__}":
        raise InvalidInputError(f"register_task: {cls.kind!r} is a built-in task kind")
    _REGISTERED[cls.kind] = cls
    return cls


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_task(ep.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the suite
            log.warning("task plugin %s (%s) was not loaded: %s: %s", ep.name, ep.value, type(exc).__name__, exc)


def list_tasks() -> list[str]:
    """Every task kind: built-in, registered and from installed plugins."""
    _load_plugins()
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def task_class(kind: str) -> type[Task]:
    """The Task subclass of ``kind``."""
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    if kind in _BUILTIN:
        module, attr = _BUILTIN[kind].split(":")
        return getattr(importlib.import_module(module), attr)
    _load_plugins()
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    raise InvalidInputError(f"no task of kind {kind!r}: known kinds are {', '.join(list_tasks())}")


def plot_dataset(results_dir: str | os.PathLike, dataset: str, output: str | os.PathLike | None = None,
                 **options: Any):
    """The figure of ``dataset``'s records, drawn by the task kind they were scored by (the records
    say which; no data is read): (files written, notes)."""
    from pathlib import Path

    from benchmark import records

    kinds = {r.get("task", "maps") for r in records.load_results(results_dir, dataset).records}
    if len(kinds) > 1:
        raise InvalidInputError(f"{Path(results_dir) / dataset} holds records of several tasks ({sorted(kinds)})")
    kind = kinds.pop() if kinds else "maps"
    return task_class(kind).plot(Path(results_dir), dataset, Path(output) if output else None, **options)


def get_task(dataset: Any, *, download: bool = True, mirror: str | None = None, **options: Any) -> Task:
    """The task that scores ``dataset``: a dataset name or path (resolved by
    :func:`benchmark.datasets.get_dataset`) or a dataset object. ``options`` configure the task
    (e.g. ``decision_rule`` for psychophysics); one it does not take is an error naming it."""
    if isinstance(dataset, (str, os.PathLike)):
        from benchmark.datasets import get_dataset

        dataset = get_dataset(str(dataset), download=download, mirror=mirror)
    cls = task_class(getattr(dataset, "task", "maps"))
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "data"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise InvalidInputError(f"option(s) {', '.join(unknown)} do not apply to the {cls.kind} task of dataset "
                                f"{dataset.name!r} (it takes: {', '.join(sorted(accepted)) or 'no options'})")
    return cls(dataset, **options)
