"""Score models on a human-map dataset: the suite's main job (``alignbench run``).

For each model: load its adapter, stream the dataset in batches, compute saliency maps, score each
image against the human map (Spearman, Dice, IoU, top-1), and write the record. Work is saved per
batch (``.partial/<model>/chunk-*.npz``, atomic), so a killed run resumes at its last completed
batch; a finished record makes the model skip on the next run unless ``force``. A model that fails
(missing weights, out of memory, NaN maps) is recorded as failed with its reason and the run goes on.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmark import baselines, records
from benchmark.provenance import provenance
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

EXPLAINER = "saliency: max over channels of |d logit[label] / d image| (224x224 image frame)"
CHUNK_COLUMNS = ("image_id", "label", "pred", "spearman", "dice", "iou")


@dataclass
class RunConfig:
    """Everything that decides what a run computes. Paths and knobs that do not change a score
    (batch size, progress bars) do not invalidate a partial run."""

    dataset: str = "clickme-val"
    models: Sequence[str] = ()
    results_dir: Path = Path("results")
    batch_size: int = 32
    device: str = "auto"
    precision: str = "float32"
    weights: str = "pretrained"
    limit: int | None = None
    force: bool = False
    executor: str = "local"
    ray_address: str | None = None
    shard: tuple[int, int] | None = None
    download: bool = True
    progress: bool = True
    decision_rule: str | None = None  # psychophysics: animal/non-animal read-out (None = the task's default)


@dataclass
class ModelOutcome:
    model: str
    status: str  # "ok", "failed", "skipped" (already done)
    record: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunSummary:
    dataset: str
    outcomes: list[ModelOutcome] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    ceiling: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ModelOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


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


def record_id(model_id: str, weights: str) -> str:
    """Name of a model's record: the model id, tagged when the weights are not the default ones.
    An exported model folder (``alignbench train`` output) is named by the id in its manifest."""
    from model_zoo.api import MODEL_FOLDER_FILE

    if (Path(model_id) / MODEL_FOLDER_FILE).is_file():
        from model_zoo.api import read_model_folder

        model_id = read_model_folder(model_id)[0].id
    if weights == "pretrained":
        return model_id
    if weights == "random":
        return f"{model_id}+random"
    from model_zoo.fileio import sha256_file

    return f"{model_id}+custom-{sha256_file(weights)[:12]}"


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


# ----------------------------------------------------------------------------------- scoring
def score_batch(maps: np.ndarray, heatmaps: np.ndarray, ranked_human=None) -> dict[str, np.ndarray]:
    """Per-image Spearman, Dice and IoU of saliency maps (N,224,224) against human maps (N,224,224)."""
    from benchmark import metrics

    if ranked_human is not None:
        rho = metrics.spearman_ranked(ranked_human, maps)
    else:
        rho = metrics.spearman(maps, heatmaps)
    return {"spearman": rho, "dice": metrics.dice(maps, heatmaps), "iou": metrics.iou(maps, heatmaps)}


def _check_maps(maps: np.ndarray, n: int, model: str) -> None:
    if maps.shape != (n, 224, 224):
        raise InvalidInputError(f"model {model}: saliency maps have shape {maps.shape}, expected ({n}, 224, 224)")
    if not np.isfinite(maps).all():
        bad = int((~np.isfinite(maps.reshape(n, -1))).any(axis=1).sum())
        raise InvalidInputError(f"model {model}: NaN or infinite saliency maps for {bad} of {n} images")


class _HumanRanks:
    """Ranks of the human maps, computed once per dataset batch and reused by every model of the run
    (the human maps never change); bounded by ``budget_bytes``, beyond which batches are re-ranked."""

    def __init__(self, budget_bytes: int = 2 << 30):
        self.budget = budget_bytes
        self.used = 0
        self.cache: dict[tuple[str, ...], Any] = {}

    def get(self, ids: Sequence[str], heatmaps: np.ndarray):
        from benchmark import metrics

        key = tuple(ids)
        ranked = self.cache.get(key)
        if ranked is None:
            ranked = metrics.rank_maps(heatmaps)
            size = heatmaps.size * 8
            if self.used + size <= self.budget:
                self.cache[key] = ranked
                self.used += size
        return ranked


# ----------------------------------------------------------------------------------- partial runs
class PartialRun:
    """Chunks of per-image scores for one (dataset, model) run in progress, saved atomically."""

    def __init__(self, folder: Path, meta: dict[str, Any]):
        self.folder = folder
        self.meta = meta
        meta_path = folder / "meta.json"
        if folder.exists():
            try:
                import json

                old = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                old = None
            if old != meta:
                log.warning("discarding partial results in %s: they were computed with other settings", folder)
                shutil.rmtree(folder)
        if not folder.exists():
            atomic_write_json(meta_path, meta)

    def chunks(self) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for path in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(path, allow_pickle=False) as data:
                    out[path.stem] = {k: data[k] for k in CHUNK_COLUMNS}
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable chunk %s (it will be recomputed)", path)
        return out

    def save(self, name: str, columns: dict[str, np.ndarray]) -> None:
        import io

        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(columns[k]) for k in CHUNK_COLUMNS})
        atomic_write_bytes(self.folder / f"chunk-{name}.npz", buf.getvalue())

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _contiguous_prefix(chunks: dict[str, dict[str, np.ndarray]]) -> tuple[int, list[str]]:
    """Local chunks are named by their first image index; return how many images from 0 are covered."""
    starts = {}
    for name, cols in chunks.items():
        try:
            start = int(name.split("-", 1)[1])
        except (IndexError, ValueError):
            continue
        starts[start] = (name, len(cols["image_id"]))
    covered, used = 0, []
    while covered in starts:
        name, n = starts[covered]
        if n == 0:
            break
        used.append(name)
        covered += n
    return covered, used


def _concat(chunks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not chunks:
        return {k: np.zeros(0) for k in CHUNK_COLUMNS}
    return {k: np.concatenate([c[k] for c in chunks]) for k in CHUNK_COLUMNS}


# ----------------------------------------------------------------------------------- one model
def _spec_fields(adapter: Any, model_id: str, weights: str = "pretrained") -> dict[str, Any]:
    """Catalog fields of the record. The published top-1 belongs to the published weights only: an
    untrained control or a user's own weights file gets ``top1_published = None``."""
    spec = getattr(adapter, "spec", None)
    fields = {"model": model_id, "display_name": model_id, "family": None, "harmonized": None,
              "framework": getattr(adapter, "framework", None), "top1_published": None}
    if spec is not None:
        fields.update(
            display_name=getattr(spec, "display_name", model_id),
            family=getattr(spec, "family", None),
            harmonized=getattr(spec, "harmonized", None),
            top1_published=getattr(spec, "top1", None) if weights == "pretrained" else None,
            top1_source=getattr(spec, "top1_source", None) if weights == "pretrained" else None,
            base_model=getattr(spec, "base_model", None),
        )
    return fields


def build_record(dataset, rid: str, cols: dict[str, np.ndarray], *, adapter: Any, config: RunConfig,
                 ceiling: dict[str, Any] | None, seconds: float, device: str, scores_sha256: str) -> dict[str, Any]:
    from benchmark import metrics

    rho = cols["spearman"].astype(np.float64)
    summary = metrics.summarize(rho)
    ceiling_value = ceiling.get("value") if ceiling else None
    record = {
        "kind": "model",
        "task": "maps",
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "dataset_synthetic": bool(getattr(dataset, "synthetic", False)),
        **_spec_fields(adapter, rid, config.weights),
        "model_id": getattr(getattr(adapter, "spec", None), "id", rid.split("+")[0]),
        "weights": config.weights,
        "weights_sha256": getattr(adapter, "weights_sha256", None),
        "explainer": EXPLAINER,
        "precision": config.precision,
        "status": "ok",
        "error": None,
        "limit": config.limit,
        "n_images": int(len(rho)),
        "n_undefined": int(summary.n_undefined),
        "spearman_mean": summary.mean,
        "spearman_sd": summary.sd,
        "ceiling": ceiling_value,
        "ceiling_source": ceiling.get("source") if ceiling else None,
        "alignment": summary.mean / ceiling_value if ceiling_value else None,
        "alignment_sd": summary.sd / ceiling_value if ceiling_value and summary.sd is not None else None,
        "dice_mean": float(np.mean(cols["dice"])) if len(rho) else None,
        "iou_mean": float(np.mean(cols["iou"])) if len(rho) else None,
        "top1_measured": float(np.mean(cols["pred"] == cols["label"])) if len(rho) else None,
        "scores_file": records.scores_path(config.results_dir, dataset.name, rid).name,
        "scores_sha256": scores_sha256,
        "seconds": round(seconds, 3),
        "provenance": provenance(device=device, dataset_skips=_skips_dict(dataset)),
    }
    return record


def _skips_dict(dataset) -> dict[str, Any]:
    skips = getattr(dataset, "skips", None)
    if skips is None:
        return {}
    to_dict = getattr(skips, "to_dict", None)
    return to_dict() if callable(to_dict) else {"report": str(skips)}


def failed_record(dataset, rid: str, model_id: str, config: RunConfig, error: str, device: str) -> dict[str, Any]:
    return {
        "kind": "model", "task": getattr(dataset, "task", "maps"), "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(), "model": rid, "model_id": model_id, "weights": config.weights, "status": "failed", "error": error,
        "limit": config.limit, "n_images": 0, "n_undefined": 0, "spearman_mean": None, "alignment": None,
        "alignment_sd": None, "dice_mean": None, "iou_mean": None,
        "provenance": provenance(device=device),
    }


def _existing_ok(path: Path, dataset, config: RunConfig) -> dict[str, Any] | None:
    if config.force or not path.exists():
        return None
    try:
        record = records.read_record(path)
    except InvalidInputError as exc:
        log.warning("%s; recomputing", exc)
        return None
    same = (record.get("status") == "ok" and record.get("limit") == config.limit
            and record.get("dataset_fingerprint") == dataset.fingerprint()
            and record.get("weights") == config.weights and record.get("precision", "float32") == config.precision)
    return record if same else None


def run_model(dataset, model_id: str, config: RunConfig, *, ceiling: dict[str, Any] | None,
              human_ranks: _HumanRanks | None = None,
              loader: Callable[..., Any] | None = None) -> ModelOutcome:
    """Score one model on ``dataset`` (local executor), resuming a partial run if one exists."""
    import model_zoo

    loader = loader or model_zoo.load
    device = resolve_device(config.device)
    rid = record_id(model_id, config.weights)
    rpath = records.record_path(config.results_dir, dataset.name, rid)
    done = _existing_ok(rpath, dataset, config)
    if done is not None:
        return ModelOutcome(rid, "skipped", record=done)

    started = time.perf_counter()
    total = dataset.num_images() if config.limit is None else min(config.limit, dataset.num_images())
    partial = PartialRun(rpath.parent / ".partial" / rid,
                         {"model": rid, "dataset_fingerprint": dataset.fingerprint(), "weights": config.weights,
                          "limit": config.limit, "precision": config.precision, "executor": "local"})
    chunks = partial.chunks()
    covered, used = _contiguous_prefix(chunks)
    kept = [chunks[name] for name in used]
    adapter = None
    try:
        adapter = loader(model_id, weights=config.weights, device=device, precision=config.precision)
        if covered < total:
            bar = _progress(total, covered, rid, config.progress)
            for batch in dataset.batches(config.batch_size, start=covered, limit=total - covered):
                logits, maps = adapter.predict_and_saliency(batch.images, batch.labels)
                maps = np.asarray(maps, dtype=np.float32)
                _check_maps(maps, len(batch.labels), model_id)
                ranked = getattr(batch, "human_ranks", None)  # ranked once, in the prepared copy
                if ranked is None and human_ranks:
                    ranked = human_ranks.get(batch.ids, batch.heatmaps)
                cols = score_batch(maps, batch.heatmaps, ranked)
                cols.update(image_id=np.asarray(batch.ids), label=np.asarray(batch.labels, dtype=np.int64),
                            pred=np.asarray(logits).argmax(axis=1).astype(np.int64))
                partial.save(f"{covered:09d}", cols)
                kept.append(cols)
                covered += len(batch.labels)
                bar.update(len(batch.labels))
            bar.close()
    except Exception as exc:  # noqa: BLE001 - any model failure is recorded and the run goes on
        reason = f"{type(exc).__name__}: {exc}"
        log.error("model %s failed: %s", rid, reason)
        rec = failed_record(dataset, rid, model_id, config, reason, device)
        records.write_record(rpath, rec)
        return ModelOutcome(rid, "failed", record=rec, error=reason, seconds=time.perf_counter() - started)

    cols = _concat(kept)
    return _finish(dataset, rid, cols, adapter, config, ceiling, started, device, partial)


def _finish(dataset, rid, cols, adapter, config, ceiling, started, device, partial) -> ModelOutcome:
    spath = records.scores_path(config.results_dir, dataset.name, rid)
    sha = records.write_scores(spath, {**cols, "correct": (cols["pred"] == cols["label"]).astype(np.int64)})
    rec = build_record(dataset, rid, cols, adapter=adapter, config=config, ceiling=ceiling,
                       seconds=time.perf_counter() - started, device=device, scores_sha256=sha)
    records.write_record(records.record_path(config.results_dir, dataset.name, rid), rec)
    partial.discard()
    return ModelOutcome(rid, "ok", record=rec, seconds=rec["seconds"])


def _progress(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True,
                leave=True)


# ----------------------------------------------------------------------------------- the whole run
def run(config: RunConfig, *, dataset=None) -> RunSummary:
    """Run ``config``: baselines of the dataset, then every selected model. Returns what happened."""
    from benchmark.datasets import get_dataset

    dataset = dataset or get_dataset(config.dataset, download=config.download)
    models = select_shard(list(config.models), config.shard)
    summary = RunSummary(dataset=dataset.name)
    if getattr(dataset, "task", "maps") != "maps":
        # Other tasks (psychophysics, neural predictivity) score models their own way; their dataset
        # object implements `ensure_baselines(config) -> dict` and `run_model(model_id, config) -> ModelOutcome`.
        summary.baseline = dataset.ensure_baselines(config)
        if config.executor == "ray":
            from benchmark import ray_executor

            summary.outcomes = ray_executor.run_task_models(dataset, models, config)
        else:
            summary.outcomes = [dataset.run_model(m, config) for m in models]
        return summary
    summary.ceiling = baselines.ensure_ceiling(dataset, config.results_dir, force=config.force)
    summary.baseline = baselines.ensure_center_bias(dataset, config.results_dir, limit=config.limit,
                                                    force=config.force, batch_size=config.batch_size)
    if config.executor == "ray":
        from benchmark import ray_executor

        summary.outcomes = ray_executor.run_models(dataset, models, config, ceiling=summary.ceiling)
        return summary
    if config.executor != "local":
        raise InvalidInputError(f"--executor {config.executor!r}: expected 'local' or 'ray'")
    human_ranks = _HumanRanks()
    for model_id in models:
        summary.outcomes.append(run_model(dataset, model_id, config, ceiling=summary.ceiling,
                                          human_ranks=human_ranks))
    return summary


def format_summary(summary: RunSummary) -> str:
    """The table printed at the end of a run."""
    header = ("model", "top-1(pub)", "acc(data)", "spearman", "alignment", "sd", "dice", "iou", "images", "undef", "seconds", "status")
    rows = []
    for o in summary.outcomes:
        r = o.record or {}

        def fmt(key: str, pct: bool = False) -> str:
            v = r.get(key)
            if v is None:
                return "-"
            return f"{100 * v:.1f}" if pct else f"{v:.3f}"

        top1 = r.get("top1_published")
        rows.append((o.model, f"{top1:.1f}" if isinstance(top1, (int, float)) else "-", fmt("top1_measured", True),
                     fmt("spearman_mean"),
                     # psychophysics alignment is -log MSE and neural predictivity a raw Pearson r,
                     # not fractions of a ceiling: not shown as %
                     fmt("alignment", r.get("task") not in ("psychophysics", "neural")),
                     fmt("alignment_sd", r.get("task") not in ("psychophysics", "neural")), fmt("dice_mean"), fmt("iou_mean"),
                     str(r.get("n_images", "-")), str(r.get("n_undefined", "-")),
                     f"{r.get('seconds', o.seconds) or 0:.1f}",
                     o.status if o.status != "failed" else f"FAILED: {o.error}"))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(header, widths))]
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    if summary.ceiling:
        value = summary.ceiling.get("value")
        shown = f"{value:.4f}" if isinstance(value, (int, float)) and value == value else "undefined"
        lines.append(f"ceiling: {shown} ({summary.ceiling.get('source', 'unknown source')})")
    if summary.baseline and summary.baseline.get("spearman_mean") is None:  # a task's own reference (humans)
        b = summary.baseline
        sd = f" +- {b['alignment_sd']:.3f}" if b.get("alignment_sd") is not None else ""
        lines.append(f"{b.get('display_name') or b.get('model')}: alignment {b['alignment']:.3f}{sd}"
                     + (f" ({b['score_name']})" if b.get("score_name") else ""))
    elif summary.baseline:
        b = summary.baseline
        lines.append(f"center-bias baseline: spearman {b['spearman_mean']:.3f}"
                     + (f", alignment {100 * b['alignment']:.1f}%" if b.get("alignment") is not None else ""))
    lines.append("top-1(pub): published ImageNet top-1 of these weights (- for random or own weights); "
                 "acc(data): % of this dataset's images classified correctly; alignment, sd: % of the ceiling")
    if summary.failed:
        lines.append(f"{len(summary.failed)} model(s) failed: " + ", ".join(o.model for o in summary.failed))
    return "\n".join(lines)
