"""Result records: one JSON file per (dataset, model), per-image scores beside it.

Layout under a results folder::

    results/<dataset>/<model>.json          the record (schema below)
    results/<dataset>/<model>.scores.csv    per-image scores: image_id,label,pred,correct,spearman,dice,iou
    results/<dataset>/_baseline-center-bias.json, _ceiling.json   the dataset's own baselines
    results/<dataset>/.partial/<model>/     chunks of a run in progress (resume), removed when done
    results/published/*.csv                 published reference points (never mixed with measured ones)

Every write is atomic; a record is only written after its scores file, and it carries the scores
file's sha256, so a record never points at scores it was not computed from.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_json, atomic_write_text, sha256_file

SCHEMA = "alignbench.result/1"
RECORD_KINDS = ("model", "baseline", "ceiling")
REQUIRED_FIELDS = {
    "model": ("schema", "kind", "dataset", "dataset_fingerprint", "model", "status", "n_images",
              "alignment", "alignment_sd", "provenance"),
    "baseline": ("schema", "kind", "dataset", "model", "spearman_mean", "n_images"),
    "ceiling": ("schema", "kind", "dataset", "value", "source"),
}
# a "model" record of the maps task (ClickMe, Clicktionary: saliency vs human maps) also has these;
# other tasks (psychophysics, neural) set "task" and carry their own fields
MAPS_FIELDS = ("n_undefined", "spearman_mean", "dice_mean", "iou_mean")
SCORE_COLUMNS = ("image_id", "label", "pred", "correct", "spearman", "dice", "iou")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def safe_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single path component, else raise (no traversal, no hidden files)."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise InvalidInputError(
            f"{what} {name!r} is not allowed as a file name: use letters, digits, '.', '_', '+', '-' "
            "(at most 128, not starting with '.')")
    return name


def record_path(results_dir: str | Path, dataset: str, model: str) -> Path:
    return Path(results_dir) / safe_name(dataset, "dataset") / f"{safe_name(model, 'model id')}.json"


def scores_path(results_dir: str | Path, dataset: str, model: str) -> Path:
    return Path(results_dir) / safe_name(dataset, "dataset") / f"{safe_name(model, 'model id')}.scores.csv"


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_record(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Validate and atomically write one record."""
    record = _clean(dict(record))
    record.setdefault("schema", SCHEMA)
    problems = validate_record(record)
    if problems:
        raise InvalidInputError(f"refusing to write an invalid record to {path}: " + "; ".join(problems))
    return atomic_write_json(path, record)


def validate_record(record: Mapping[str, Any]) -> list[str]:
    """Problems with a record, each naming its field; empty when valid."""
    problems = []
    if record.get("schema") != SCHEMA:
        return [f"schema: expected {SCHEMA!r}, found {record.get('schema')!r}"]
    kind = record.get("kind")
    if kind not in RECORD_KINDS:
        return [f"kind: expected one of {RECORD_KINDS}, found {kind!r}"]
    required = REQUIRED_FIELDS[kind]
    if kind == "model" and record.get("task", "maps") == "maps":
        required = required + MAPS_FIELDS
    for field in required:
        if field not in record:
            problems.append(f"{field}: missing")
    if kind == "model" and record.get("status") == "ok" and record.get("task", "maps") == "maps":
        n, n_undef = record.get("n_images"), record.get("n_undefined")
        if not isinstance(n, int) or n < 0:
            problems.append(f"n_images: expected a non-negative integer, found {n!r}")
        if not isinstance(n_undef, int) or not (0 <= n_undef <= (n if isinstance(n, int) else n_undef)):
            problems.append(f"n_undefined: expected an integer in [0, n_images], found {n_undef!r}")
        for field in ("spearman_mean", "dice_mean", "iou_mean"):
            v = record.get(field)
            lo = -1.0 if field == "spearman_mean" else 0.0
            if v is not None and not (isinstance(v, (int, float)) and lo - 1e-9 <= v <= 1 + 1e-9):
                problems.append(f"{field}: expected a number in [{lo:g}, 1], found {v!r}")
        sd = record.get("alignment_sd")
        if sd is not None and not (isinstance(sd, (int, float)) and sd >= 0):
            problems.append(f"alignment_sd: expected a non-negative number, found {sd!r}")
    return problems


def read_record(path: str | Path) -> dict[str, Any]:
    """Read and validate a record; raise InvalidInputError naming the file and field otherwise."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path}: not a readable JSON record ({exc})") from exc
    if not isinstance(record, dict):
        raise InvalidInputError(f"{path}: a record must be a JSON object")
    problems = validate_record(record)
    if problems:
        raise InvalidInputError(f"{path}: " + "; ".join(problems))
    return record


@dataclass
class LoadedResults:
    records: list[dict[str, Any]]
    problems: list[str]  # one line per file that was skipped, naming it and why


def load_results(results_dir: str | Path, dataset: str, *, kinds: Iterable[str] = ("model",)) -> LoadedResults:
    """All valid records of ``kinds`` for a dataset; corrupt or foreign files are reported, not fatal."""
    folder = Path(results_dir) / safe_name(dataset, "dataset")
    kinds = set(kinds)
    out, problems = [], []
    if not folder.is_dir():
        return LoadedResults([], [])
    for path in sorted(folder.glob("*.json")):
        try:
            record = read_record(path)
        except InvalidInputError as exc:
            problems.append(str(exc))
            continue
        if record.get("dataset") != dataset:
            problems.append(f"{path}: record is for dataset {record.get('dataset')!r}, not {dataset!r}")
            continue
        if record["kind"] in kinds:
            record["_path"] = str(path)
            out.append(record)
    return LoadedResults(out, problems)


def write_scores(path: str | Path, scores: Mapping[str, np.ndarray | list]) -> str:
    """Write the per-image scores CSV atomically; returns its sha256."""
    n = len(scores["image_id"])
    for col in SCORE_COLUMNS:
        if len(scores[col]) != n:
            raise InvalidInputError(f"scores column {col!r} has {len(scores[col])} rows, expected {n}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    for i in range(n):
        row = []
        for col in SCORE_COLUMNS:
            v = scores[col][i]
            if isinstance(v, (float, np.floating)):
                row.append("" if not math.isfinite(float(v)) else repr(float(v)))
            else:
                row.append(str(v.item() if isinstance(v, np.generic) else v))
        writer.writerow(row)
    atomic_write_text(path, buf.getvalue())
    return sha256_file(path)


def write_table(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Write a side CSV of another task (header + rows; floats in full precision, NaN/inf empty)
    atomically; returns its sha256."""
    header = list(header)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise InvalidInputError(f"{path}: row {i} has {len(row)} values for {len(header)} columns")
        out = []
        for v in row:
            v = v.item() if isinstance(v, np.generic) else v
            out.append(("" if not math.isfinite(v) else repr(v)) if isinstance(v, float) else v)
        writer.writerow(out)
    atomic_write_text(path, buf.getvalue())
    return sha256_file(path)


def read_scores(path: str | Path) -> dict[str, np.ndarray]:
    """Read a scores CSV back into columns (NaN where a score is undefined)."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"image_id": str}, keep_default_na=True)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable scores file ({exc})") from exc
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"{path}: missing columns {missing}")
    return {c: frame[c].to_numpy() for c in SCORE_COLUMNS}
