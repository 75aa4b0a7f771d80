"""A dataset's own reference points, computed from its data and stored as records of their own.

* the human ceiling: split-half agreement of participants' maps when the dataset has them; for
  ClickMe, whose release has only the pooled map, the paper's published constant (cited);
* the center-bias baseline: each human map scored against the mean map of the *other* images
  (K folds by image index), i.e. what a model that always predicts "the middle" would get.

Both stream over the dataset, so memory does not grow with its size.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import records, scores
from benchmark.metrics import CLICKME_PUBLISHED_CEILING
from benchmark.provenance import provenance
from model_zoo.errors import InvalidInputError

log = logging.getLogger(__name__)

CEILING_FILE = "_ceiling.json"
CENTER_BIAS_FILE = "_baseline-center-bias.json"
CENTER_BIAS_FOLDS = 10
SPEARMAN = "spearman"  # score_name of the maps task: mean per-image Spearman rho
CEILING_SCORE_NAME = "split-half spearman"
PUBLISHED_CEILINGS = {
    # dataset name prefix -> (value, citation)
    "clickme": (CLICKME_PUBLISHED_CEILING,
                "published ClickMe inter-rater ceiling of the harmonization paper's code "
                "(serre-lab/Harmonization evaluation/clickme.py; see shared/reference/paper-notes.md §2.1)"),
}


def _folder(results_dir: str | Path, dataset) -> Path:
    return Path(results_dir) / records.safe_name(dataset.name, "dataset")


def ensure_ceiling(dataset, results_dir: str | Path, *, force: bool = False, n_splits: int = 10,
                   seed: int = 0, chunk: int = 256) -> dict[str, Any] | None:
    """The dataset's ceiling record (computed, or the cited constant), written once and reused."""
    path = _folder(results_dir, dataset) / CEILING_FILE
    existing = records.reusable(path, fingerprint=dataset.fingerprint(), force=force)
    if existing is not None:
        return existing
    record: dict[str, Any]
    if getattr(dataset, "has_participant_maps", False):
        from benchmark import metrics

        total, weighted, n_excluded = 0, 0.0, 0
        buffer: list[np.ndarray] = []

        chunks_done = 0

        def flush() -> None:
            nonlocal total, weighted, n_excluded, chunks_done
            if not buffer:
                return
            # a distinct seed per chunk: no two images of the dataset share a random stream of splits
            score = metrics.split_half_ceiling(buffer, n_splits=n_splits, seed=seed + 7919 * chunks_done)
            chunks_done += 1
            n = int(score.n) - int(score.n_undefined)  # images with a defined split-half rho
            if n:
                total += n
                weighted += score.value * n
            n_excluded += int(getattr(score, "n_undefined", 0) or 0)
            buffer.clear()

        for _, maps in dataset.participant_maps():
            buffer.append(maps)
            if len(buffer) == chunk:
                flush()
        flush()
        if total == 0 and n_excluded:  # e.g. constant participant maps: undefined, never a ceiling of 1
            log.warning("dataset %s: the split-half Spearman of participants' maps is undefined for all %d images "
                        "(constant maps): no ceiling, alignment is left undefined", dataset.name, n_excluded)
            return None
        if total == 0:
            raise InvalidInputError(f"dataset {dataset.name}: no image has maps from 2 or more participants, "
                                    "so no split-half ceiling can be computed")
        value = weighted / total
        record = {"kind": "ceiling", "task": "maps", "dataset": dataset.name,
                  "dataset_fingerprint": dataset.fingerprint(), "value": value,
                  "source": "computed: split-half Spearman of participants' maps",
                  "method": {"name": "split_half_ceiling", "n_splits": n_splits, "seed": seed},
                  "n_images": total + n_excluded, "n_excluded": n_excluded,  # n_excluded: no defined split
                  **scores.score_fields(value, score_name=CEILING_SCORE_NAME, n=total + n_excluded,
                                        n_undefined=n_excluded)}
    else:
        published = next((v for k, v in PUBLISHED_CEILINGS.items() if dataset.name.startswith(k)), None)
        if published is None:
            log.warning("dataset %s has no per-participant maps and no published ceiling: alignment "
                        "(rho / ceiling) is left undefined; raw Spearman is still reported", dataset.name)
            return None
        record = {"kind": "ceiling", "task": "maps", "dataset": dataset.name,
                  "dataset_fingerprint": dataset.fingerprint(), "value": published[0],
                  "source": f"published constant: {published[1]}", "method": {"name": "published"},
                  **scores.score_fields(published[0], score_name=CEILING_SCORE_NAME, n=None)}
    record["provenance"] = provenance()
    records.write_record(path, record)
    return record


def ensure_center_bias(dataset, results_dir: str | Path, *, limit: int | None = None, force: bool = False,
                       batch_size: int = 64, folds: int = CENTER_BIAS_FOLDS) -> dict[str, Any]:
    """Center-bias baseline record (:class:`benchmark.metrics.CenterBias`: each human map against the
    mean human map of the other folds, image i in fold i % folds). Two streaming passes over the maps."""
    from benchmark import metrics

    path = _folder(results_dir, dataset) / CENTER_BIAS_FILE
    existing = records.reusable(path, fingerprint=dataset.fingerprint(), force=force, limit=limit, folds=folds)
    if existing is not None:
        return existing
    baseline = metrics.CenterBias(folds)
    for batch in dataset.batches(batch_size, limit=limit):
        baseline.add(batch.heatmaps)
    if baseline.n_added < 2:
        raise InvalidInputError(f"dataset {dataset.name}: need at least 2 images for a center-bias baseline")
    columns: dict[str, list[np.ndarray]] = {"spearman": [], "dice": [], "iou": []}
    index = 0
    for batch in dataset.batches(batch_size, limit=limit):
        for key, values in baseline.score(batch.heatmaps, index).items():
            columns[key].append(values)
        index += len(batch.heatmaps)
    rho = np.concatenate(columns["spearman"])
    ceiling = ensure_ceiling(dataset, results_dir)
    record = {"kind": "baseline", "task": "maps", "dataset": dataset.name,
              "dataset_fingerprint": dataset.fingerprint(), "model": "center-bias",
              "display_name": "Center bias (held-out mean human map)", "limit": limit, "folds": folds,
              **record_summary(rho, score_name=SPEARMAN, ceiling=ceiling["value"] if ceiling else None),
              "dice_mean": float(np.concatenate(columns["dice"]).mean()),
              "iou_mean": float(np.concatenate(columns["iou"]).mean()), "provenance": provenance()}
    records.write_record(path, record)
    return record


def record_summary(rho: np.ndarray, *, score_name: str, ceiling: float | None) -> dict[str, Any]:
    """The fields a maps record derives from its per-image Spearman values: the score shape plus the
    maps task's own ``spearman_mean``, ``spearman_sd`` and ``n_images``."""
    from benchmark import metrics

    s = metrics.summarize(np.asarray(rho, dtype=np.float64))
    fields = scores.summary_fields(s, score_name=score_name, ceiling=ceiling)
    return {**fields, "n_images": int(s.n), "spearman_mean": fields["score"], "spearman_sd": fields["error"]}
