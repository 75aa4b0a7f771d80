"""``alignbench leaderboard validate``: check bundles before they enter the leaderboard.

Every problem is reported with the bundle and the field it concerns; nothing stops at the first one.
Checked: the files a bundle may hold (no traversal, no symlinks, no stray files), ``submission.json``
(schema, metadata, claimed top-1), each record (schema and value ranges, the submission's id and
weights, a full run), the dataset (image count and fingerprint against the local data, else the
maintainers' table ``known_datasets.json``, else the catalog's own records in ``results/``), the
ceiling, the per-image file (its sha256, and every aggregate recomputed from it), and clashes
across bundles and the catalog (model ids, duplicate weights, duplicate scores).
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from benchmark import records
from leaderboard.bundle import (SOURCE_KINDS, SUBMISSION_SCHEMA, Bundle, inside, list_bundles, read_bundle)
from model_zoo.errors import AlignbenchError, InvalidInputError
from model_zoo.fileio import sha256_file

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
ABS_TOL = 1e-9  # aggregates are recomputed from the exact floats of the scores file


@dataclass(frozen=True)
class Problem:
    bundle: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.bundle}: {self.field}: {self.message}"


@dataclass
class Reference:
    """What is known about a dataset: image count, fingerprint, ceiling, and where it came from."""

    n_images: int | None = None
    fingerprint: str | None = None
    ceiling: float | None = None
    source: str = "nothing known"


@dataclass
class ValidationReport:
    bundles: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        if self.ok:
            return f"{len(self.bundles)} bundle(s) valid: {', '.join(self.bundles)}"
        lines = [str(p) for p in self.problems]
        bad = sorted({p.bundle for p in self.problems})
        lines.append(f"{len(self.problems)} problem(s) in {len(bad)} of {len(self.bundles)} bundle(s)")
        return "\n".join(lines)


def known_datasets() -> dict[str, dict[str, Any]]:
    """The maintainers' table of dataset facts (``n_images``, ``fingerprint``) for datasets not held locally."""
    text = resources.files("leaderboard").joinpath("known_datasets.json").read_text(encoding="utf-8")
    return dict(json.loads(text).get("datasets", {}))


def dataset_reference(name: str, results_dir: str | Path, *, dataset: Any = None, use_local_data: bool = True,
                      known: Mapping[str, Mapping[str, Any]] | None = None) -> Reference:
    """Facts about dataset ``name``, from the best source available: the data itself (``dataset``
    or, with ``use_local_data``, a cached copy: never downloaded), else ``known``, else the
    catalog's full-run records under ``results_dir/<name>``."""
    ref = Reference()
    ceiling_path = Path(results_dir) / name / "_ceiling.json"
    if ceiling_path.exists():
        try:
            ref.ceiling = records.read_record(ceiling_path).get("value")
        except InvalidInputError:
            pass
    if dataset is None and use_local_data:
        try:
            from benchmark.datasets import get_dataset

            dataset = get_dataset(name, download=False)
            dataset.files()
        except (AlignbenchError, OSError):
            dataset = None
    if dataset is not None:
        ref.n_images, ref.fingerprint, ref.source = dataset.num_images(), dataset.fingerprint(), "the local data"
        return ref
    known = known_datasets() if known is None else known
    if name in known:
        entry = known[name]
        ref.n_images, ref.fingerprint = entry.get("n_images"), entry.get("fingerprint")
        ref.source = "known_datasets.json"
        return ref
    full = [r for r in records.load_results(results_dir, name).records
            if r.get("status") == "ok" and r.get("limit") is None]
    if full:
        # the catalog's own full runs: the most common (count, fingerprint) pair
        (n, fp), _ = Counter((r.get("n_images"), r.get("dataset_fingerprint")) for r in full).most_common(1)[0]
        ref.n_images, ref.fingerprint, ref.source = n, fp, f"the catalog's records in {Path(results_dir) / name}"
    return ref


# ----------------------------------------------------------------------------------- one bundle
def _split(problem: str) -> tuple[str, str]:
    fld, _, msg = problem.partition(": ")
    return (fld, msg) if msg else ("bundle", problem)


def _close(a: Any, b: Any, tol: float = ABS_TOL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def check_submission(bundle: Bundle) -> list[tuple[str, str]]:
    """(field, message) problems of ``submission.json``."""
    sub = bundle.submission
    if sub is None:
        return []
    out = []
    if sub.get("schema") != SUBMISSION_SCHEMA:
        return [("schema", f"expected {SUBMISSION_SCHEMA!r}, found {sub.get('schema')!r}")]
    if sub.get("id") != bundle.id:
        out.append(("id", f"{sub.get('id')!r} differs from the bundle folder name {bundle.id!r}"))
    out += [_split(p) for p in bundle.meta.problems()]
    model = sub.get("model") if isinstance(sub.get("model"), dict) else {}
    src = model.get("source")
    if not isinstance(src, dict) or src.get("kind") not in SOURCE_KINDS:
        out.append(("model.source.kind", f"expected one of {SOURCE_KINDS}"))
    sha = model.get("weights_sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        out.append(("model.weights_sha256", f"expected 64 lowercase hex digits or null, found {sha!r}"))
    if sub.get("preview"):
        out.append(("preview", "the bundle was scored with --limit (a preview); submit a full run"))
    declared = sub.get("datasets")
    if not isinstance(declared, list) or sorted(map(str, declared)) != sorted(bundle.records):
        out.append(("datasets", f"lists {declared!r} but the bundle holds records for {sorted(bundle.records)}"))
    return out


def check_record(bundle: Bundle, dataset: str, rec: Mapping[str, Any], ref: Reference) -> list[tuple[str, str]]:
    """(field, message) problems of one record, including its per-image scores file."""
    where = f"{dataset}/{bundle.id}.json"
    problems = [(f"{where} {f}", m) for f, m in map(_split, records.validate_record(rec))]
    if problems:
        return problems

    def bad(fld: str, msg: str) -> None:
        problems.append((f"{where} {fld}", msg))

    if rec.get("kind") != "model":
        bad("kind", f"expected 'model', found {rec.get('kind')!r}")
        return problems
    if rec.get("task", "maps") != "maps":
        bad("task", f"only maps-task records are ranked here, found {rec.get('task')!r}")
        return problems
    if rec.get("model") != bundle.id:
        bad("model", f"{rec.get('model')!r} differs from the submission id {bundle.id!r}")
    if rec.get("dataset") != dataset:
        bad("dataset", f"{rec.get('dataset')!r} differs from its folder {dataset!r}")
    if rec.get("status") != "ok":
        bad("status", f"the run did not succeed ({rec.get('status')!r}: {rec.get('error')})")
        return problems
    if rec.get("limit") is not None:
        bad("limit", f"scored on the first {rec['limit']} images only; the leaderboard takes full runs")
    if bundle.submission is not None:
        declared = (bundle.submission.get("model") or {}).get("weights_sha256")
        if rec.get("weights_sha256") != declared:
            bad("weights_sha256", f"{rec.get('weights_sha256')!r} differs from submission.json's {declared!r}")
    if ref.n_images is not None and rec.get("n_images") != ref.n_images:
        bad("n_images", f"{rec.get('n_images')} images scored but the dataset has {ref.n_images} ({ref.source})")
    if ref.fingerprint is not None and rec.get("dataset_fingerprint") != ref.fingerprint:
        bad("dataset_fingerprint", f"{rec.get('dataset_fingerprint')!r} is not the dataset's {ref.fingerprint!r} "
            f"({ref.source}): scored on other data")
    ceiling = rec.get("ceiling")
    if not (isinstance(ceiling, (int, float)) and 0 < ceiling <= 1):
        bad("ceiling", f"expected a number in (0, 1], found {ceiling!r}")
        ceiling = None
    elif ref.ceiling is not None and not _close(ceiling, ref.ceiling):
        bad("ceiling", f"{ceiling} differs from the leaderboard's ceiling {ref.ceiling} for {dataset}")
    try:
        ceil_rec = records.read_record(inside(bundle.path, dataset, "_ceiling.json"))
        if ceiling is not None and not _close(ceil_rec.get("value"), ceiling):
            bad("ceiling", f"{ceiling} differs from the bundle's {dataset}/_ceiling.json value {ceil_rec.get('value')}")
    except InvalidInputError as exc:
        if (bundle.path / dataset / "_ceiling.json").exists():
            bad("ceiling", str(exc))
    problems += [(f"{where} {f}", m) for f, m in check_scores(bundle, dataset, rec, ceiling)]
    return problems


def check_scores(bundle: Bundle, dataset: str, rec: Mapping[str, Any], ceiling: float | None) -> list[tuple[str, str]]:
    """Check the per-image file against the record: sha256, row count, value ranges, and every
    aggregate recomputed from the rows."""
    from benchmark import baselines

    expected_name = f"{bundle.id}.scores.csv"
    if rec.get("scores_file") != expected_name:
        return [("scores_file", f"expected {expected_name!r}, found {rec.get('scores_file')!r}")]
    try:
        path = inside(bundle.path, dataset, expected_name)
    except InvalidInputError as exc:
        return [("scores_file", str(exc))]
    if not path.is_file():
        return [("scores_file", f"{dataset}/{expected_name} is missing")]
    out = []
    sha = sha256_file(path)
    if sha != rec.get("scores_sha256"):
        out.append(("scores_sha256", f"the file's sha256 is {sha}, the record says {rec.get('scores_sha256')}: "
                    "the per-image scores were changed after the run"))
    try:
        cols = records.read_scores(path)
    except InvalidInputError as exc:
        return out + [("scores_file", str(exc))]
    n = len(cols["image_id"])
    if n != rec.get("n_images"):
        out.append(("n_images", f"record says {rec.get('n_images')}, the scores file has {n} rows"))
    ids = [str(i) for i in cols["image_id"]]
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    if dupes:
        out.append(("scores_file", f"{len(dupes)} image id(s) appear more than once, e.g. {dupes[:3]}"))
    try:
        rho, dice, iou = (np.asarray(cols[c], dtype=np.float64) for c in ("spearman", "dice", "iou"))
        label, pred, correct = (np.asarray(cols[c], dtype=np.int64) for c in ("label", "pred", "correct"))
    except (TypeError, ValueError) as exc:
        return out + [("scores_file", f"non-numeric scores ({exc})")]
    for name, v, lo in (("spearman", rho, -1.0), ("dice", dice, 0.0), ("iou", iou, 0.0)):
        outside = np.flatnonzero(~np.isnan(v) & ((v < lo - 1e-9) | (v > 1 + 1e-9)))
        if outside.size:
            out.append((f"scores_file {name}", f"{outside.size} value(s) outside [{lo:g}, 1], e.g. image {ids[outside[0]]}"))
    if np.isnan(dice).any() or np.isnan(iou).any():
        out.append(("scores_file", "empty dice/iou values (they are always defined)"))
    wrong = np.flatnonzero(correct != (pred == label))
    if wrong.size:
        out.append(("scores_file correct", f"{wrong.size} row(s) where correct != (pred == label), e.g. image {ids[wrong[0]]}"))
    if n == 0:
        return out
    recomputed = {
        **baselines.record_summary(rho, score_name=baselines.SPEARMAN, ceiling=ceiling),
        "dice_mean": float(np.mean(dice)), "iou_mean": float(np.mean(iou)),
        "top1_measured": float(np.mean(pred == label)),
    }
    for key, value in recomputed.items():
        if key in ("normalized", "normalized_error") and ceiling is None:
            continue
        if key == "score_name" and rec.get(key) != value:
            out.append((key, f"record says {rec.get(key)!r}, expected {value!r}"))
            continue
        if key != "score_name" and not _close(rec.get(key), value):
            out.append((key, f"record says {rec.get(key)!r}, the per-image scores give {value!r}"))
    return out


# ----------------------------------------------------------------------------------- all bundles
def _catalog_records(results_dir: Path, datasets: Iterable[str]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(set(datasets)):
        try:
            out += records.load_results(results_dir, name).records
        except InvalidInputError:
            continue
    return out


def validate_bundles(paths: Sequence[str | Path] | None = None, *, results_dir: str | Path = "results",
                     datasets: Mapping[str, Any] | None = None, use_local_data: bool = True,
                     known: Mapping[str, Mapping[str, Any]] | None = None,
                     catalog: Iterable[str] | None = None) -> ValidationReport:
    """Validate ``paths`` (default: every bundle under ``results_dir/submissions``) against each
    other, the catalog (``catalog``: model ids, default the registry's) and the catalog's records.
    ``datasets``: dataset objects by name, used instead of looking for local data."""
    results_dir = Path(results_dir)
    all_paths = list_bundles(results_dir)
    targets = [Path(p) for p in paths] if paths else all_paths
    report = ValidationReport(bundles=[p.name for p in targets])
    if not targets:
        report.problems.append(Problem("-", "bundles", f"no bundle found under {results_dir / 'submissions'}"))
        return report
    # every bundle of the leaderboard takes part in clash checks, also those not being validated
    others = {p.resolve(): read_bundle(p) for p in all_paths}
    bundles = [others.get(p.resolve()) or read_bundle(p) for p in targets]
    if catalog is None:
        from leaderboard.submit import catalog_ids

        catalog = catalog_ids()
    catalog_lower = {c.lower() for c in catalog}
    refs: dict[str, Reference] = {}
    for b in bundles:
        add = lambda fld, msg, b=b: report.problems.append(Problem(b.id, fld, msg))  # noqa: E731
        for p in b.problems:
            add(*_split(p))
        for fld, msg in check_submission(b):
            add(fld, msg)
        if b.id.lower() in catalog_lower:
            add("id", f"{b.id!r} is the id of a catalog model")
        for name, rec in sorted(b.records.items()):
            if name not in refs:
                refs[name] = dataset_reference(name, results_dir, dataset=(datasets or {}).get(name),
                                               use_local_data=use_local_data, known=known)
            for fld, msg in check_record(b, name, rec, refs[name]):
                add(fld, msg)
    _cross_checks(report, bundles, list(others.values()), results_dir)
    return report


def _cross_checks(report: ValidationReport, bundles: list[Bundle], everyone: list[Bundle], results_dir: Path) -> None:
    pool = {b.path.resolve(): b for b in everyone}
    pool.update({b.path.resolve(): b for b in bundles})
    catalog_recs = _catalog_records(results_dir, {d for b in pool.values() for d in b.records})
    for b in bundles:
        for other in pool.values():
            if other.path.resolve() == b.path.resolve():
                continue
            if other.id.lower() == b.id.lower():
                report.problems.append(Problem(b.id, "id", f"clashes with bundle {other.path} (ids differ only in case)"))
            mine, theirs = _digests(b), _digests(other)
            if mine["weights"] & theirs["weights"]:
                report.problems.append(Problem(b.id, "model.weights_sha256",
                                               f"the same weights were already submitted as {other.id!r}"))
            if mine["scores"] & theirs["scores"]:
                report.problems.append(Problem(b.id, "scores_sha256", f"identical per-image scores to bundle {other.id!r}"))
        for rec in catalog_recs:
            if str(rec.get("model", "")).lower() == b.id.lower():
                report.problems.append(Problem(b.id, "id", f"clashes with the catalog record {rec.get('_path')}"))
            sha = rec.get("weights_sha256")
            if sha and sha in _digests(b)["weights"]:
                report.problems.append(Problem(b.id, "model.weights_sha256",
                                               f"same weights as catalog model {rec.get('model')!r} ({rec.get('_path')})"))
            if rec.get("scores_sha256") and rec["scores_sha256"] in _digests(b)["scores"]:
                report.problems.append(Problem(b.id, "scores_sha256",
                                               f"identical per-image scores to catalog model {rec.get('model')!r}"))


def _digests(b: Bundle) -> dict[str, set[str]]:
    weights = set()
    if b.submission and isinstance(b.submission.get("model"), dict):
        sha = b.submission["model"].get("weights_sha256")
        if isinstance(sha, str) and sha:
            weights.add(sha)
    scores = {r["scores_sha256"] for r in b.records.values() if isinstance(r.get("scores_sha256"), str)}
    return {"weights": weights, "scores": scores}
