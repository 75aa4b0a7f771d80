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

from benchmark import records
from benchmark.provenance import provenance
from model_zoo.errors import InvalidInputError

log = logging.getLogger(__name__)

CEILING_FILE = "_ceiling.json"
CENTER_BIAS_FILE = "_baseline-center-bias.json"
CENTER_BIAS_FOLDS = 10
PUBLISHED_CEILINGS = {
    # dataset name prefix -> (value, citation)
    "clickme": (0.6575315343478081,
                "published ClickMe inter-rater ceiling of the harmonization paper's code "
                "(serre-lab/Harmonization evaluation/clickme.py; see shared/reference/paper-notes.md §2.1)"),
}


def _folder(results_dir: str | Path, dataset) -> Path:
    return Path(results_dir) / records.safe_name(dataset.name, "dataset")


def reusable_record(path: Path, dataset, force: bool, **match: Any) -> dict[str, Any] | None:
    """The record at ``path`` if it may be reused: not ``force``, readable (a corrupt one is logged and
    recomputed), of ``dataset``'s current fingerprint, and equal to ``match`` on every given field."""
    if force or not path.exists():
        return None
    try:
        record = records.read_record(path)
    except InvalidInputError as exc:
        log.warning("%s; recomputing", exc)
        return None
    if record.get("dataset_fingerprint") != dataset.fingerprint():
        return None
    if any(record.get(k) != v for k, v in match.items()):
        return None
    return record


def ensure_ceiling(dataset, results_dir: str | Path, *, force: bool = False, n_splits: int = 10,
                   seed: int = 0, chunk: int = 256) -> dict[str, Any] | None:
    """The dataset's ceiling record (computed, or the cited constant), written once and reused."""
    path = _folder(results_dir, dataset) / CEILING_FILE
    existing = reusable_record(path, dataset, force)
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
        record = {"kind": "ceiling", "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
                  "value": weighted / total, "source": "computed: split-half Spearman of participants' maps",
                  "method": {"name": "split_half_ceiling", "n_splits": n_splits, "seed": seed},
                  "n_images": total, "n_excluded": n_excluded}
    else:
        published = next((v for k, v in PUBLISHED_CEILINGS.items() if dataset.name.startswith(k)), None)
        if published is None:
            log.warning("dataset %s has no per-participant maps and no published ceiling: alignment "
                        "(rho / ceiling) is left undefined; raw Spearman is still reported", dataset.name)
            return None
        record = {"kind": "ceiling", "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
                  "value": published[0], "source": f"published constant: {published[1]}",
                  "method": {"name": "published"}}
    record["provenance"] = provenance()
    records.write_record(path, record)
    return record


def ensure_center_bias(dataset, results_dir: str | Path, *, limit: int | None = None, force: bool = False,
                       batch_size: int = 64, folds: int = CENTER_BIAS_FOLDS) -> dict[str, Any]:
    """Center-bias baseline record: Spearman/Dice/IoU of each human map with the mean human map of the
    other folds (image i is in fold i % folds). Two streaming passes over the human maps."""
    from benchmark import metrics

    path = _folder(results_dir, dataset) / CENTER_BIAS_FILE
    existing = reusable_record(path, dataset, force, limit=limit, folds=folds)
    if existing is not None:
        return existing
    sums: np.ndarray | None = None
    counts = np.zeros(folds, dtype=np.int64)
    index = 0
    for batch in dataset.batches(batch_size, limit=limit):
        h = batch.heatmaps.astype(np.float64)
        if sums is None:
            sums = np.zeros((folds,) + h.shape[1:], dtype=np.float64)
        fold = (index + np.arange(len(h))) % folds
        np.add.at(sums, fold, h)
        counts += np.bincount(fold, minlength=folds)
        index += len(h)
    if sums is None or index < 2:
        raise InvalidInputError(f"dataset {dataset.name}: need at least 2 images for a center-bias baseline")
    total, n_total = sums.sum(axis=0), counts.sum()
    held_out_means = np.stack([(total - sums[k]) / max(n_total - counts[k], 1) for k in range(folds)])
    held_out_means = held_out_means.astype(np.float32)
    rho, dice, iou = [], [], []
    index = 0
    for batch in dataset.batches(batch_size, limit=limit):
        fold = (index + np.arange(len(batch.heatmaps))) % folds
        prior = held_out_means[fold]
        rho.append(metrics.spearman(prior, batch.heatmaps))
        dice.append(metrics.dice(prior, batch.heatmaps))
        iou.append(metrics.iou(prior, batch.heatmaps))
        index += len(batch.heatmaps)
    rho_all = np.concatenate(rho)
    s = metrics.summarize(rho_all)
    ceiling = ensure_ceiling(dataset, results_dir)
    c = ceiling["value"] if ceiling else None
    record = {"kind": "baseline", "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
              "model": "center-bias", "display_name": "Center bias (held-out mean human map)",
              "limit": limit, "folds": folds, "n_images": int(len(rho_all)), "n_undefined": int(s.n_undefined),
              "spearman_mean": s.mean, "spearman_sd": s.sd,
              "alignment": s.mean / c if c else None, "alignment_sd": s.sd / c if c and s.sd is not None else None,
              "dice_mean": float(np.concatenate(dice).mean()), "iou_mean": float(np.concatenate(iou).mean()),
              "provenance": provenance()}
    records.write_record(path, record)
    return record
