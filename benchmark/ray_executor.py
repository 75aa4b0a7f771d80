"""Fan a run out over a Ray cluster: one task per (model, dataset shard file).

Each task loads the model on its worker (asking for a GPU when the cluster has one), scores the
images of one TFRecord file and returns the per-image columns; the driver saves each returned
chunk atomically (so a killed driver resumes at file granularity) and writes the same records as
the local executor. Workers resolve shard files through their own dataset cache (shared file
system or their own download), so only names travel.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from benchmark import records, runner
from model_zoo.errors import AlignbenchError


def _score_file(dataset_name: str, download: bool, file_name: str, model_id: str, weights: str,
                device: str, precision: str, batch_size: int, limit: int | None) -> dict[str, np.ndarray]:
    """Ray task body: score one shard file with one model (runs on a worker)."""
    import model_zoo
    from benchmark.datasets import get_dataset

    dataset = get_dataset(dataset_name, download=download)
    files = [f for f in dataset.files() if f.name == file_name]
    if not files:
        raise AlignbenchError(f"dataset {dataset_name}: shard {file_name} is not available on this worker")
    device = runner.resolve_device(device)
    adapter = model_zoo.load(model_id, weights=weights, device=device, precision=precision)
    parts = []
    for batch in dataset.batches(batch_size, files=files, limit=limit):
        logits, maps = adapter.predict_and_saliency(batch.images, batch.labels)
        maps = np.asarray(maps, dtype=np.float32)
        runner._check_maps(maps, len(batch.labels), model_id)
        cols = runner.score_batch(maps, batch.heatmaps, getattr(batch, "human_ranks", None))
        cols.update(image_id=np.asarray(batch.ids), label=np.asarray(batch.labels, dtype=np.int64),
                    pred=np.asarray(logits).argmax(axis=1).astype(np.int64))
        parts.append(cols)
    out = runner._concat(parts)
    out["weights_sha256"] = np.asarray(getattr(adapter, "weights_sha256", None) or "")
    return out


def run_models(dataset, models: Sequence[str], config: "runner.RunConfig", *,
               ceiling: dict[str, Any] | None) -> list["runner.ModelOutcome"]:
    try:
        import ray
    except ImportError as exc:
        raise AlignbenchError("--executor ray needs Ray: pip install 'alignbench[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=config.ray_address, ignore_reinit_error=True, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and config.device in ("auto", "cuda") else 0
    task = ray.remote(num_gpus=gpus, max_retries=1)(_score_file)
    files = [f.name for f in dataset.files()]
    outcomes = []
    for model_id in models:
        outcomes.append(_run_one(ray, task, dataset, files, model_id, config, ceiling))
    return outcomes


def _run_one(ray, task, dataset, files, model_id, config, ceiling) -> "runner.ModelOutcome":
    rid = runner.record_id(model_id, config.weights)
    rpath = records.record_path(config.results_dir, dataset.name, rid)
    done = runner._existing_ok(rpath, dataset, config)
    if done is not None:
        return runner.ModelOutcome(rid, "skipped", record=done)
    started = time.perf_counter()
    partial = runner.PartialRun(rpath.parent / ".partial" / rid,
                                {"model": rid, "dataset_fingerprint": dataset.fingerprint(),
                                 "weights": config.weights, "limit": config.limit,
                                 "precision": config.precision, "executor": "ray"})
    chunks = partial.chunks()
    pending = {}
    for i, name in enumerate(files):
        if f"chunk-file-{i:05d}" in chunks:
            continue
        ref = task.remote(config.dataset, config.download, name, model_id, config.weights, config.device,
                          config.precision, config.batch_size, config.limit)
        pending[ref] = i
    sha = None
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            cols = ray.get(ready[0])
            sha = str(cols.pop("weights_sha256")) or sha
            partial.save(f"file-{i:05d}", cols)
            chunks[f"chunk-file-{i:05d}"] = cols
    except Exception as exc:  # noqa: BLE001 - a failed model is recorded, the run goes on
        for ref in pending:
            ray.cancel(ref)
        reason = f"{type(exc).__name__}: {exc}"
        rec = runner.failed_record(dataset, rid, model_id, config, reason, "ray")
        records.write_record(rpath, rec)
        return runner.ModelOutcome(rid, "failed", record=rec, error=reason)
    ordered = [chunks[f"chunk-file-{i:05d}"] for i in range(len(files))]
    cols = runner._concat(ordered)
    if config.limit is not None:
        cols = {k: v[: config.limit] for k, v in cols.items()}
    adapter = _SpecOnly(model_id, sha)
    return runner._finish(dataset, rid, cols, adapter, config, ceiling, started, "ray", partial)


class _SpecOnly:
    """What the record needs from an adapter, without loading the model on the driver."""

    def __init__(self, model_id: str, weights_sha256: str | None):
        import model_zoo

        try:
            self.spec = model_zoo.get_spec(model_id)
        except AlignbenchError:
            self.spec = None
        self.framework = getattr(self.spec, "framework", None)
        self.weights_sha256 = weights_sha256


def run_task_models(dataset, models: Sequence[str], config: "runner.RunConfig") -> list["runner.ModelOutcome"]:
    """Non-map tasks (psychophysics, neural): one Ray task per model running ``dataset.run_model``."""
    try:
        import ray
    except ImportError as exc:
        raise AlignbenchError("--executor ray needs Ray: pip install 'alignbench[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=config.ray_address, ignore_reinit_error=True, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 and config.device in ("auto", "cuda") else 0
    task = ray.remote(num_gpus=gpus, max_retries=1)(_run_task_model)
    return ray.get([task.remote(config.dataset, config.download, m, config) for m in models])


def _run_task_model(dataset_name: str, download: bool, model_id: str, config) -> "runner.ModelOutcome":
    from benchmark.datasets import get_dataset

    return get_dataset(dataset_name, download=download).run_model(model_id, config)
