"""The one place the leaderboard reads result-record fields (schema ``alignbench.result/2``).

Validation, verification and the site all go through these accessors, so a change of the record
schema (``benchmark.records``) is ported here and nowhere else. Values come back as plain Python
(None where absent or not a finite number of the right type), never as whatever JSON held.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from benchmark import records

Record = Mapping[str, Any]

#: The record fields the maps task's per-image scores file determines (recomputed by validation).
SUMMARY_FIELDS = ("score", "score_name", "normalized", "error", "normalized_error", "n", "n_undefined",
                  "n_images", "spearman_mean", "spearman_sd", "dice_mean", "iou_mean", "top1_measured")


def number(value: Any) -> float | None:
    """A finite float, or None (bools, text, NaN and infinities are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def task(rec: Record) -> str:
    return str(rec.get("task") or "maps")


def kind(rec: Record) -> str | None:
    return text(rec.get("kind"))


def ok(rec: Record) -> bool:
    return rec.get("status") == "ok"


def model_id(rec: Record) -> str | None:
    return text(rec.get("model"))


def dataset(rec: Record) -> str | None:
    return text(rec.get("dataset"))


def fingerprint(rec: Record) -> str | None:
    return text(rec.get("dataset_fingerprint"))


def synthetic(rec: Record) -> bool:
    """Whether the record says its data was generated (``dataset_synthetic``)."""
    return rec.get("dataset_synthetic") is True


def n_images(rec: Record) -> int | None:
    """Images scored (the maps task's ``n_images``, else the score shape's ``n``)."""
    value = integer(rec.get("n_images"))
    return value if value is not None else integer(rec.get("n"))


def limit(rec: Record) -> int | None:
    return integer(rec.get("limit"))


def ceiling(rec: Record) -> float | None:
    return number(rec.get("ceiling"))


def ceiling_value(ceiling_record: Record) -> float | None:
    """The value of a ``_ceiling.json`` record."""
    return number(ceiling_record.get("value"))


def alignment(rec: Record) -> float | None:
    """The maps task's headline: mean Spearman / ceiling, a fraction (None without a ceiling)."""
    return number(rec.get("normalized"))


def alignment_error(rec: Record) -> float | None:
    return number(rec.get("normalized_error"))


def spearman(rec: Record) -> float | None:
    return number(rec.get("spearman_mean"))


def dice(rec: Record) -> float | None:
    return number(rec.get("dice_mean"))


def iou(rec: Record) -> float | None:
    return number(rec.get("iou_mean"))


def top1(rec: Record) -> float | None:
    """Published (catalog) or claimed (submission) ImageNet top-1, in percent."""
    return number(rec.get("top1_published"))


def top1_source(rec: Record) -> str | None:
    return text(rec.get("top1_source"))


def weights(rec: Record) -> str | None:
    """``pretrained``, ``random``, ``file:<sha256>`` or a path tag; None when absent."""
    return text(rec.get("weights"))


def random_weights(rec: Record) -> bool:
    """Whether the record scores an untrained (random-weight) control."""
    return weights(rec) == "random" or str(rec.get("model", "")).endswith("+random")


def weights_sha256(rec: Record) -> str | None:
    return text(rec.get("weights_sha256"))


def scores_file(rec: Record) -> str | None:
    return text(rec.get("scores_file"))


def scores_sha256(rec: Record) -> str | None:
    return text(rec.get("scores_sha256"))


def display_name(rec: Record) -> str | None:
    return text(rec.get("display_name"))


def family(rec: Record) -> str | None:
    return text(rec.get("family"))


def provenance(rec: Record) -> Mapping[str, Any]:
    value = rec.get("provenance")
    return value if isinstance(value, Mapping) else {}


def failure(rec: Record) -> str | None:
    """Why a failed run failed (schema 2's ``failure``)."""
    return text(rec.get("failure"))


def explainer(rec: Record) -> str | None:
    """The name of the explainer the record's maps came from (None: no maps task)."""
    return records.explainer_name(rec)


def explainer_problem(rec: Record) -> str | None:
    """Why the record's maps are not the leaderboard's (the default explainer, saliency, exactly as
    the paper scored them), or None: only such records are ranked."""
    return records.default_explainer_problem(rec)
