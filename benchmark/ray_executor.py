"""Fan a run out over a Ray cluster: the same :class:`benchmark.job.Job` as the local executor, with
the scoring done on workers.

The driver decides per model what to do (skip a matching record, resume an interrupted one) and
writes every record, exactly as a local run. Workers score pieces: one Ray task per (model, part)
for tasks that split (``Task.splittable``: the maps task, one shard file per part), one per model
otherwise; each loads the model on its worker (asking for a GPU when the cluster has one), scores,
and returns the rows. The driver saves each returned piece atomically, so a killed driver resumes
at piece granularity. A model failure on a worker (loading, or the model's own computation) comes
back as data and is recorded; any other error is raised on the driver.

With ``--save-maps`` each piece also brings back its maps (float32, 224x224 per image: about 200
KB each through the object store), which the driver saves beside the rows' chunks and assembles
into the model's maps file before its record, as a local run does.

Workers rebuild the task from the dataset's name (and the task's options) through their own
dataset cache (a shared file system or their own download), so only names travel.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmark.job import Job, JobConfig, ModelOutcome, concat, resolve_device
from benchmark.tasks import Chunk, ModelFailure, References, ScoringContext, Task, get_task
from model_zoo.errors import AlignbenchError


def score_piece(dataset: str, download: bool, task_options: dict[str, Any], target: str, weights: str,
                device: str, precision: str, batch_size: int, limit: int | None, part: str | None,
                save_maps: bool = False) -> dict[str, Any]:
    """Ray task body (runs on a worker): score one part (or everything, ``part=None``) of one model.
    Returns ``{"columns", "extras", "weights_sha256", "framework"}`` (and ``"maps"``, float32 (n, H, W)
    in row order, with ``save_maps``) or ``{"failure": reason}``."""
    import model_zoo

    task = get_task(dataset, download=download, **task_options)
    try:
        adapter = model_zoo.load(target, weights=weights, device=resolve_device(device), precision=precision)
    except Exception as exc:  # noqa: BLE001 - loading a model: whatever it raised is the model's failure
        return {"failure": f"{type(exc).__name__}: {exc}"}
    ctx = ScoringContext(model_id=target, batch_size=batch_size, limit=limit)
    try:
        chunks = list(task.score(adapter, ctx, part=part))
    except ModelFailure as exc:
        return {"failure": str(exc)}
    columns, extras = concat(chunks, task.columns)
    piece = {"columns": columns, "extras": extras, "weights_sha256": getattr(adapter, "weights_sha256", None),
             "framework": getattr(adapter, "framework", None)}
    if save_maps:  # the maps travel back with the rows: the driver writes them, as the records
        piece["maps"] = [np.asarray(c.arrays["maps"], dtype=np.float32) for c in chunks]
    return piece


def run_models(task: Task, models: Sequence[str], config: Any, jc: JobConfig, *, references: References,
               on_outcome: Callable[[int, int, ModelOutcome], Any] | None = None) -> list[ModelOutcome]:
    """Run every model's job with the scoring on the Ray cluster (``config``: the RunConfig, ``jc``:
    its job settings)."""
    try:
        import ray
    except ImportError as exc:
        raise AlignbenchError("--executor ray needs Ray: pip install 'alignbench[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=config.ray_address, ignore_reinit_error=True, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and config.device in ("auto", "cuda") else 0
    remote = ray.remote(num_gpus=gpus, max_retries=1)(score_piece)
    outcomes = []
    for i, target in enumerate(models):
        outcome = _run_one(ray, remote, Job(task, target, jc, references=references), config)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(i, len(models), outcome)
    return outcomes


def _run_one(ray: Any, remote: Any, job: Job, config: Any) -> ModelOutcome:
    done = job.existing()
    if done is not None:
        return done
    started = time.perf_counter()
    task = job.task
    parts: list[str | None] = list(task.parts()) if task.splittable else [None]
    partial = job.partial()
    chunks = partial.chunks()
    maps = job.maps_partial()
    if maps is not None:  # resume only the parts whose maps were saved too (as Job.run)
        saved = maps.lengths()
        chunks = {name: c for name, c in chunks.items() if saved.get(name) == len(c)}
    pending = {}
    for i, part in enumerate(parts):
        if f"part-{i:05d}" in chunks:
            continue
        ref = remote.remote(config.dataset, config.download, config.task_options(), job.model.target,
                            job.model.load_weights, config.device, config.precision, config.batch_size,
                            config.limit, part, maps is not None)
        pending[ref] = i
    info: dict[str, Any] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(ready[0])
        piece = ray.get(ready[0])
        if "failure" in piece:
            for ref in pending:
                ray.cancel(ref)
            return job.failed(piece["failure"], started)
        info = {k: piece[k] for k in ("weights_sha256", "framework")}
        chunk = Chunk(piece["columns"], piece["extras"])
        if maps is not None:  # before the rows: saved rows always have their maps saved
            part_maps = np.concatenate(piece["maps"]) if piece["maps"] else np.zeros((0, 0, 0), np.float32)  # no rows
            maps.save(f"part-{i:05d}", Chunk({"image_id": chunk.columns["image_id"], "maps": part_maps}))
        partial.save(f"part-{i:05d}", chunk)
        chunks[f"part-{i:05d}"] = chunk
    columns, extras = concat([chunks[f"part-{i:05d}"] for i in range(len(parts))], task.columns)
    if config.limit is not None and task.splittable:
        columns = {k: v[: config.limit] for k, v in columns.items()}
    if maps is not None:
        job.write_maps(maps, columns["image_id"], names=[f"part-{i:05d}" for i in range(len(parts))])
    return job.finish(columns, extras, adapter=_SpecOnly(job.model.target, **info), started=started,
                      partial=partial, device="ray")


class _SpecOnly:
    """What the record needs from an adapter, without loading the model on the driver."""

    def __init__(self, target: str, weights_sha256: str | None = None, framework: str | None = None):
        from model_zoo.api import MODEL_FOLDER_FILE, get_spec, read_model_folder

        try:
            folder = (Path(target) / MODEL_FOLDER_FILE).is_file()
            self.spec = read_model_folder(target)[0] if folder else get_spec(target)
        except AlignbenchError:
            self.spec = None
        self.framework = framework or getattr(self.spec, "framework", None)
        self.weights_sha256 = weights_sha256
