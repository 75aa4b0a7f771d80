"""The "where" task: a model's saliency maps against human feature-importance maps (ClickMe,
Clicktionary, any ClickMe-format folder of shards).

Per image: the model's logits and saliency map (``adapter.predict_and_saliency``: max over colour
channels of |d logit[label] / d image| in the 224x224 frame the humans saw), then Spearman's rho,
Dice and IoU at the top 10 % against the human map, and whether the top-1 is right. The score is the
mean rho over images whose rho is defined, normalised by the dataset's human ceiling (the paper's
"human feature alignment"); the references are the ceiling and the center-bias baseline
(:mod:`benchmark.baselines`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from benchmark import baselines, metrics, records
from benchmark.tasks.base import Chunk, ModelFailure, References, ScoringContext, Task, model_call

MAP_SHAPE = (224, 224)


def score_batch(maps: np.ndarray, heatmaps: np.ndarray, ranked_human: Any = None) -> dict[str, np.ndarray]:
    """Per-image Spearman, Dice and IoU (float64 (N,)) of saliency maps (N,224,224) against human maps
    (N,224,224); ``ranked_human``: :func:`benchmark.metrics.rank_maps` of ``heatmaps``, when cached."""
    if ranked_human is not None:
        rho = metrics.spearman_ranked(ranked_human, maps)
    else:
        rho = metrics.spearman(maps, heatmaps)
    return {"spearman": rho, "dice": metrics.dice(maps, heatmaps), "iou": metrics.iou(maps, heatmaps)}


def check_maps(maps: np.ndarray, n: int, model: str) -> np.ndarray:
    """The model's maps as float32 (n, 224, 224); a wrong shape or NaN/inf values are the model's failure."""
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape != (n,) + MAP_SHAPE:
        raise ModelFailure(f"model {model}: saliency maps have shape {maps.shape}, expected ({n}, 224, 224)")
    if not np.isfinite(maps).all():
        bad = int((~np.isfinite(maps.reshape(n, -1))).any(axis=1).sum())
        raise ModelFailure(f"model {model}: NaN or infinite saliency maps for {bad} of {n} images")
    return maps


class HumanRanks:
    """Ranks of the human maps, computed once per batch of images and reused by every model of a run
    (the human maps never change); bounded by ``budget_bytes``, beyond which batches are re-ranked."""

    def __init__(self, budget_bytes: int = 2 << 30):
        self.budget = budget_bytes
        self.used = 0
        self.cache: dict[tuple[str, ...], Any] = {}

    def get(self, ids: Sequence[str], heatmaps: np.ndarray) -> Any:
        key = tuple(ids)
        ranked = self.cache.get(key)
        if ranked is None:
            ranked = metrics.rank_maps(heatmaps)
            size = heatmaps.size * 8
            if self.used + size <= self.budget:
                self.cache[key] = ranked
                self.used += size
        return ranked


class MapsTask(Task):
    """Saliency maps vs human maps on a ClickMe-format or Clicktionary dataset (``data``)."""

    kind = "maps"
    score_name = baselines.SPEARMAN
    columns = ("image_id", "label", "pred", "spearman", "dice", "iou")
    revision = "maps/1"
    splittable = True
    has_maps = True

    def parts(self) -> Sequence[str]:
        """The dataset's files (shards), for executors that score one file per worker."""
        return [Path(f).name for f in self.data.files()]

    def ensure_references(self, results_dir: Path, *, force: bool = False, limit: int | None = None,
                          batch_size: int = 64) -> References:
        ceiling = baselines.ensure_ceiling(self.data, results_dir, force=force)
        baseline = baselines.ensure_center_bias(self.data, results_dir, limit=limit, force=force,
                                                batch_size=batch_size)
        return References(ceiling=ceiling, baseline=baseline)

    def score(self, adapter: Any, ctx: ScoringContext, *, part: str | None = None) -> Iterator[Chunk]:
        files = None
        if part is not None:
            files = [f for f in self.data.files() if Path(f).name == part]
            if not files:
                raise ValueError(f"{self.name}: no file named {part!r}")
        total = self.num_images() if files is None else None
        limit = ctx.limit
        if total is not None:
            stop = total if limit is None else min(limit, total)
            limit = max(0, stop - ctx.start)
        ranks = ctx.shared.setdefault("human_ranks", HumanRanks())
        for batch in self.data.batches(ctx.batch_size, files=files, start=ctx.start if files is None else 0,
                                       limit=limit):
            with model_call(ctx.model_id):
                logits, maps = adapter.predict_and_saliency(batch.images, batch.labels)
            maps = check_maps(maps, len(batch.labels), ctx.model_id)
            ranked = getattr(batch, "human_ranks", None)  # ranked once, in the prepared copy
            cols = score_batch(maps, batch.heatmaps, ranked if ranked is not None else ranks.get(batch.ids, batch.heatmaps))
            cols.update(image_id=np.asarray(batch.ids), label=np.asarray(batch.labels, dtype=np.int64),
                        pred=np.asarray(logits).argmax(axis=1).astype(np.int64))
            yield Chunk({k: cols[k] for k in self.columns}, arrays={"maps": maps})
            ctx.progress(len(batch.labels))

    def summarize(self, columns: Mapping[str, np.ndarray], extras: Mapping[str, Any],
                  references: References) -> dict[str, Any]:
        rho = np.asarray(columns["spearman"], dtype=np.float64)
        n = len(rho)
        return {
            **baselines.record_summary(rho, score_name=self.score_name, ceiling=references.ceiling_value),
            "ceiling_source": (references.ceiling or {}).get("source"),
            "dice_mean": float(np.mean(columns["dice"])) if n else None,
            "iou_mean": float(np.mean(columns["iou"])) if n else None,
            "top1_measured": float(np.mean(columns["pred"] == columns["label"])) if n else None,
        }

    def scores_table(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The scores file's columns (:data:`benchmark.records.SCORE_COLUMNS`: ``correct`` added)."""
        correct = (np.asarray(columns["pred"]) == np.asarray(columns["label"])).astype(np.int64)
        return {k: correct if k == "correct" else columns[k] for k in records.SCORE_COLUMNS}

    def model_fields(self, adapter: Any) -> dict[str, Any]:
        return {"explainer": EXPLAINER}


EXPLAINER = "saliency: max over channels of |d logit[label] / d image| (224x224 image frame)"
