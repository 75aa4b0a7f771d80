"""Result records: one JSON file per (dataset, model), per-image scores beside it.

Layout under a results folder::

    results/<dataset>/<model>.json          the record (schema below)
    results/<dataset>/<model>.scores.csv    per-image scores: image_id,label,pred,correct,spearman,dice,iou
    results/<dataset>/_baseline-center-bias.json, _ceiling.json   the dataset's own baselines
    results/<dataset>/.partial/<model>/     chunks of a run in progress (resume), removed when done

Every write is atomic; a record is only written after its scores file, and it carries the scores
file's sha256, so a record never points at scores it was not computed from.

Every record (schema ``alignbench.result/2``) carries one score shape, whatever its task:
``score`` (the task's headline number, in ``score_name``'s units), ``ceiling`` (what a perfect
model is expected to reach, or None), ``normalized`` (score / ceiling where a ceiling exists),
``error`` (bootstrap SD of ``score``), ``normalized_error`` (error / ceiling), ``n`` (images
scored) and ``n_undefined`` (scored images whose value is undefined and left out of the mean), plus
the task's own fields. A failed model's record says why in ``failure``. Records of schema 1 are read and upgraded in memory (:func:`upgrade`).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from benchmark import scores
from model_zoo.errors import InvalidInputError
from model_zoo.explainers import DEFAULT as DEFAULT_EXPLAINER
from model_zoo.explainers import Explainer, get_explainer
from model_zoo.fileio import atomic_write_json, atomic_write_text, sha256_file

log = logging.getLogger(__name__)

SCHEMA = "alignbench.result/2"
SCHEMA_V1 = "alignbench.result/1"  # read (upgraded in memory by :func:`upgrade`), never written
RECORD_KINDS = ("model", "baseline", "ceiling")
TASKS = ("maps", "psychophysics", "neural")
#: The score shape every record carries (Brain-Score style; :func:`benchmark.scores.score_fields`).
SCORE_FIELDS = scores.SCORE_FIELDS
REQUIRED_FIELDS = {
    "model": ("schema", "kind", "task", "dataset", "dataset_fingerprint", "model", "status", "provenance")
    + SCORE_FIELDS,
    "baseline": ("schema", "kind", "task", "dataset", "model") + SCORE_FIELDS,
    "ceiling": ("schema", "kind", "task", "dataset", "value", "source") + SCORE_FIELDS,
}
# a "model" record of the maps task (ClickMe, Clicktionary: saliency vs human maps) also has these
MAPS_FIELDS = ("spearman_mean", "dice_mean", "iou_mean")
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
    """Validate and atomically write one record (schema :data:`SCHEMA`)."""
    record = _clean(dict(record))
    record.setdefault("schema", SCHEMA)
    problems = validate_record(record)
    if problems:
        raise InvalidInputError(f"refusing to write an invalid record to {path}: " + "; ".join(problems))
    return atomic_write_json(path, record)


def upgrade(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record of schema 1 as schema 2 (a copy; schema-2 records are returned as they are).

    Schema 1 called the headline number ``alignment`` whatever it was: a fraction of the ceiling
    (maps), -log MSE of accuracy curves (psychophysics) or a raw Pearson r (neural); it becomes
    ``normalized`` for maps and ``score`` for the other two, and the score shape is filled in. Old
    fields are kept beside the new ones (nothing is lost), except ``alignment``/``alignment_sd``.
    """
    if record.get("schema") != SCHEMA_V1:
        return dict(record)
    old = dict(record)
    kind, task = old.get("kind"), old.get("task") or "maps"
    alignment, alignment_sd = old.pop("alignment", None), old.pop("alignment_sd", None)
    out = {**old, "schema": SCHEMA, "task": task}
    failure = out.pop("error", None)  # schema 1's failure reason; "error" is now the score's SD
    if old.get("status") == "failed":
        out["failure"] = failure
    if "alignment_ci95" in out:
        out["score_ci95"] = out.pop("alignment_ci95")
    if kind == "ceiling":
        value = old.get("value")
        panels = old.get("panels") if isinstance(old.get("panels"), dict) else {}
        n = old.get("n_images", sum(p.get("n_images", 0) for p in panels.values()) if panels else None)
        fields = scores.score_fields(value, score_name=_V1_CEILING_NAMES.get(task, "ceiling"), n=n,
                                     n_undefined=old.get("n_excluded") or 0)
    elif task == "maps":
        ceiling = old.get("ceiling")
        if ceiling is None and alignment and old.get("spearman_mean") is not None:
            ceiling = old["spearman_mean"] / alignment  # v1 baselines stored alignment, not the ceiling
        fields = scores.score_fields(old.get("spearman_mean"), score_name="spearman", error=old.get("spearman_sd"),
                                     n=old.get("n_images"), n_undefined=old.get("n_undefined") or 0,
                                     ceiling=ceiling)
    else:  # psychophysics (-log MSE) and neural (Pearson r): the score itself
        fields = scores.score_fields(alignment, score_name=old.get("score_name") or task, error=alignment_sd,
                                     n=old.get("n_images"), n_undefined=old.get("n_undefined") or 0,
                                     ceiling=old.get("ceiling") if kind == "model" else None)
    out.update(fields)
    return out


def explainer_name(record: Mapping[str, Any]) -> str | None:
    """The name of the explainer a record was scored with (None: its task computes no maps).

    Read from ``explainer_spec`` (the full spec, written since explainers are data) or else from
    the ``explainer`` description older maps records carry (the default's description is unchanged).
    """
    spec = record.get("explainer_spec")
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        return spec["name"]
    text = record.get("explainer")
    if not isinstance(text, str):
        return None
    return DEFAULT_EXPLAINER if text == get_explainer().description else text.split(":", 1)[0]


def default_explainer_problem(record: Mapping[str, Any]) -> str | None:
    """None when ``record`` was scored with exactly the default explainer (saliency, the paper's) or
    computes no maps; else why not, in a sentence naming the explainer it ran.

    A spec is compared field by field with the default's, so a record that calls another recipe
    ``saliency`` is not taken for the default.
    """
    spec = record.get("explainer_spec")
    if spec is None:
        name = explainer_name(record)
        if name is None or name == DEFAULT_EXPLAINER:
            return None
        return f"scored with the explainer {name!r}, not {DEFAULT_EXPLAINER!r}"
    try:
        if not isinstance(spec, Mapping):
            raise InvalidInputError(f"expected an object, found {type(spec).__name__}")
        used = Explainer.from_dict(spec)
    except (InvalidInputError, TypeError, ValueError) as exc:  # a spec from a file: anything may be in it
        return f"explainer_spec is not an explainer spec ({exc})"
    if used == get_explainer():
        return None
    same_name = " (a recipe that is not the default under the default's name)" if used.name == DEFAULT_EXPLAINER else ""
    return f"scored with the explainer {used.name!r}{same_name}: {used.description}"


#: Which score-shape field is a task's headline (figures, leaderboard): maps tasks report alignment as
#: a fraction of the human ceiling (the paper's "human feature alignment"); psychophysics (-log MSE)
#: and neural predictivity (Pearson r, uncorrected as in the 2023 figure) report the raw score.
HEADLINE = {"maps": "normalized", "psychophysics": "score", "neural": "score"}


def headline(record: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(value, error) of a record's headline number, in its own units (see :data:`HEADLINE`)."""
    if HEADLINE.get(record.get("task", "maps")) == "normalized":
        return record.get("normalized"), record.get("normalized_error")
    return record.get("score"), record.get("error")


_V1_CEILING_NAMES = {"maps": "split-half spearman", "neural": "noise ceiling (pearson r)"}


def validate_record(record: Mapping[str, Any]) -> list[str]:
    """Problems with a record (schema 2, or 1 as :func:`upgrade` reads it), each naming its field;
    empty when valid."""
    problems = []
    if record.get("schema") == SCHEMA_V1:
        record = upgrade(record)
    if record.get("schema") != SCHEMA:
        return [f"schema: expected {SCHEMA!r} (or {SCHEMA_V1!r}), found {record.get('schema')!r}"]
    kind = record.get("kind")
    if kind not in RECORD_KINDS:
        return [f"kind: expected one of {RECORD_KINDS}, found {kind!r}"]
    task = record.get("task")
    if task not in TASKS:
        return [f"task: expected one of {TASKS}, found {task!r}"]
    required = REQUIRED_FIELDS[kind]
    ok = record.get("status", "ok") == "ok"
    if kind == "model" and task == "maps" and ok:
        required = required + MAPS_FIELDS
    for field in required:
        if field not in record:
            problems.append(f"{field}: missing")
    if problems:
        return problems
    problems += scores.check_score_fields(record)
    if kind == "model" and ok and task == "maps":
        for field in MAPS_FIELDS:
            v = record.get(field)
            lo = -1.0 if field == "spearman_mean" else 0.0
            if v is not None and not (isinstance(v, (int, float)) and lo - 1e-9 <= v <= 1 + 1e-9):
                problems.append(f"{field}: expected a number in [{lo:g}, 1], found {v!r}")
    return problems


def reusable(path: str | Path, *, fingerprint: str, force: bool = False, **match: Any) -> dict[str, Any] | None:
    """The record at ``path`` if it may be reused: not ``force``, readable (a corrupt one is logged and
    recomputed), of the dataset ``fingerprint``, and equal to ``match`` on every given field. The one
    reuse rule of reference records (ceilings, baselines); model records add their identity
    (:mod:`benchmark.job`)."""
    path = Path(path)
    if force or not path.exists():
        return None
    try:
        record = read_record(path)
    except InvalidInputError as exc:
        log.warning("%s; recomputing", exc)
        return None
    if record.get("dataset_fingerprint") != fingerprint:
        return None
    if any(json.dumps(record.get(k), sort_keys=True, default=str) != json.dumps(v, sort_keys=True, default=str)
           for k, v in match.items()):
        return None
    return record


def read_record(path: str | Path) -> dict[str, Any]:
    """Read, validate and :func:`upgrade` a record (always schema 2 in memory); raise InvalidInputError
    naming the file and field otherwise."""
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
    return upgrade(record)


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


def write_columns(path: str | Path, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> str:
    """Write equal-length columns (header = their names, in order) as a CSV, atomically, with
    :func:`write_table`'s formatting; returns its sha256."""
    names = list(columns)
    values = [np.asarray(columns[c]) for c in names]
    n = len(values[0]) if values else 0
    for name, v in zip(names, values):
        if len(v) != n:
            raise InvalidInputError(f"{path}: column {name!r} has {len(v)} rows, expected {n}")
    return write_table(path, names, zip(*(v.tolist() for v in values)) if n else [])


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
