"""Tasks: every benchmark behind one protocol (:class:`Task`), in one registry.

Built-in kinds: ``maps`` (ClickMe, Clicktionary: saliency vs human maps), ``psychophysics``
(accuracy curves vs humans'), ``neural`` (IT-cortex predictivity). ``get_task("clickme-val")``
gives the task that scores a dataset; :func:`register_task` and the ``alignbench.tasks``
entry-point group add kinds. Importing this package imports no framework and no task module.
"""
from benchmark.tasks.base import Chunk, ModelFailure, References, ScoringContext, Task, model_call
from benchmark.tasks.registry import get_task, list_tasks, plot_dataset, register_task, task_class

__all__ = ["Chunk", "ModelFailure", "References", "ScoringContext", "Task", "get_task", "list_tasks",
           "model_call", "plot_dataset", "register_task", "task_class"]
