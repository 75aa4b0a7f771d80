"""Score models on a task: the suite's main job (``alignbench run``).

``run(config)`` resolves the task for ``config.dataset`` (:func:`benchmark.tasks.get_task`), makes
its reference records (ceiling, baseline) once, then runs one :class:`benchmark.job.Job` per model:
in this process one after another (``--shard k/n``: every n-th model from the k-th), or fanned out
over a Ray cluster (:mod:`benchmark.ray_executor`). The job skips models whose record matches,
resumes interrupted ones, records model failures and lets every other error through.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmark.job import Job, JobConfig, ModelOutcome, resolve_device
from benchmark.tasks import Task, get_task
from model_zoo.errors import InvalidInputError

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass
class RunConfig:
    """Everything that decides what a run computes, and how it is run. Knobs that do not change a
    score (batch size, progress bars, the executor) do not invalidate records or partial runs."""

    dataset: str = "clickme-val"
    models: Sequence[str] = ()
    results_dir: Path = Path("results")
    batch_size: int = 32
    device: str = "auto"
    precision: str = "float32"  # or "auto": reduced precision only where the device runs it natively
    weights: str = "pretrained"
    limit: int | None = None
    force: bool = False
    executor: str = "local"
    ray_address: str | None = None
    shard: tuple[int, int] | None = None
    download: bool = True
    progress: bool = True
    fast_path: str = "eager"  # torch models: one of model_zoo.adapters.base.FAST_PATHS (bench/bench_saliency.py --fast-paths)
    save_maps: bool = False  # keep every image's map beside the record (benchmark.maps_store)
    decision_rule: str | None = None  # psychophysics: animal/non-animal read-out (None = the task's default)
    explainer: str | None = None  # maps: the explainer's name (None = the task's default, saliency)

    def task_options(self) -> dict[str, Any]:
        """Options that configure the task (and so belong to its settings)."""
        options: dict[str, Any] = {"decision_rule": self.decision_rule} if self.decision_rule else {}
        if self.explainer:
            options["explainer"] = self.explainer
        return options


@dataclass
class RunSummary:
    dataset: str
    outcomes: list[ModelOutcome] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    ceiling: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    skips: Any = None  # the dataset's SkipReport (records left out), when it has one

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if o.status in ("failed", "conflict")]


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/n"`` (0 <= k < n) -> (k, n)."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise InvalidInputError(f"--shard {text!r}: expected k/n with integers, e.g. 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise InvalidInputError(f"--shard {text!r}: need 0 <= k < n")
    return k, n


def select_shard(items: Sequence[str], shard: tuple[int, int] | None) -> list[str]:
    """Items k, k+n, k+2n, ... of ``items``: each of the n jobs gets a disjoint, stable share."""
    if shard is None:
        return list(items)
    k, n = shard
    return [m for i, m in enumerate(items) if i % n == k]


def tqdm_progress(enabled: bool) -> Callable[[str, int, int], Callable[[int], Any]]:
    """A job progress factory: one tqdm bar per model (label, total images, already done)."""

    def make(label: str, total: int, done: int) -> Callable[[int], Any]:
        if not enabled:
            return lambda n: None
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=done, desc=label, unit="img", dynamic_ncols=True, leave=False)

        def update(n: int) -> None:
            bar.update(n)
            if bar.n >= bar.total:
                bar.close()

        return update

    return make


def job_config(config: RunConfig) -> JobConfig:
    """The jobs' settings; ``device`` and ``precision`` resolved here (``auto`` -> what this machine
    runs, :func:`model_zoo.precision.resolve_precision`), so records say what ran."""
    from model_zoo.precision import resolve_precision

    device = resolve_device(config.device)
    return JobConfig(results_dir=Path(config.results_dir), weights=config.weights,
                     device=device, precision=resolve_precision(config.precision, device),
                     batch_size=config.batch_size, limit=config.limit, force=config.force,
                     save_maps=config.save_maps, progress=tqdm_progress(config.progress), fast_path=config.fast_path)


def run(config: RunConfig, *, task: Task | None = None, dataset: Any = None, loader: Callable[..., Any] | None = None,
        on_outcome: Callable[[int, int, ModelOutcome], Any] | None = None) -> RunSummary:
    """Run ``config``: the task's references, then every selected model; returns what happened.

    ``task``: a task object to use instead of resolving ``config.dataset`` (``dataset``: a dataset
    object to wrap in its default task); ``loader``: builds adapters (default :func:`model_zoo.load`);
    ``on_outcome(i, n, outcome)``: called as each of the n models finishes (the CLI prints a line)."""
    if config.executor not in EXECUTORS:
        raise InvalidInputError(f"--executor {config.executor!r}: expected one of {', '.join(EXECUTORS)}")
    from model_zoo.adapters.base import FAST_PATHS

    if config.fast_path not in FAST_PATHS:
        raise InvalidInputError(f"--fast-path {config.fast_path!r}: expected one of {', '.join(FAST_PATHS)}")
    if task is not None and config.task_options():
        raise InvalidInputError(f"RunConfig options {sorted(config.task_options())} would be ignored: a task object was "
                                "given, so configure the task itself")
    if task is None:
        task = get_task(dataset if dataset is not None else config.dataset, download=config.download,
                        **config.task_options())
    if config.save_maps and not task.has_maps:
        raise InvalidInputError(f"--save-maps: the {task.kind} task of {task.name} computes no per-image maps")
    models = select_shard(list(config.models), config.shard)
    summary = RunSummary(dataset=task.name, skips=getattr(task.data, "skips", None))
    refs = task.ensure_references(Path(config.results_dir), force=config.force, limit=config.limit,
                                  batch_size=config.batch_size)
    summary.ceiling, summary.baseline = refs.ceiling, refs.baseline
    if config.executor == "ray":
        from benchmark import ray_executor

        if config.precision == "auto":
            raise InvalidInputError("--precision auto is resolved on the machine that runs the models; with "
                                    "--executor ray pass float32, bfloat16 or float16")

        jc = job_config(config)
        jc.device = config.device  # resolved on each worker, where the GPUs are
        summary.outcomes = ray_executor.run_models(task, models, config, jc, references=refs, on_outcome=on_outcome)
    else:
        jc = job_config(config)
        shared: dict[str, Any] = {}
        for i, target in enumerate(models):
            outcome = Job(task, target, jc, references=refs, loader=loader, shared=shared).run()
            summary.outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(i, len(models), outcome)
    if config.save_maps:
        ensure_gallery_reference(task, Path(config.results_dir), summary.outcomes)
    return summary


def ensure_gallery_reference(task: Task, results_dir: Path, outcomes: Sequence[ModelOutcome]) -> Path | None:
    """``results/<dataset>/_gallery.npz`` (the leaderboard gallery's images and human maps), written
    once from the image ids of the first complete, unlimited scores file of this run."""
    from benchmark import gallery, records

    path = results_dir / task.name / gallery.REFERENCE_FILE
    if path.exists():
        return path
    for outcome in outcomes:
        record = outcome.record or {}
        if record.get("status") == "ok" and record.get("limit") is None and record.get("scores_file"):
            ids = [str(i) for i in records.read_scores(results_dir / task.name / record["scores_file"])["image_id"]]
            return gallery.write_reference_for(task.data, results_dir, ids, {i: row for row, i in enumerate(ids)})
    return None
