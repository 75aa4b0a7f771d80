"""``alignbench leaderboard validate``: check bundles before they enter the leaderboard.

Every problem is reported with the bundle and the field it concerns; nothing stops at the first one.
Checked: the files a bundle may hold (no traversal, no symlinks, no stray files, no file or field
over its size limit), ``submission.json`` (schema, metadata, claimed top-1), each record (schema and
value ranges, the submission's id and weights, a full run, maps of exactly the default explainer),
the dataset against facts the bundle cannot choose (:class:`Reference`: the pins of
``known_datasets.json`` first, then the local data, then the catalog's own records): image count,
fingerprint, image-id set, ceiling and whether the data is generated; the per-image file (its
sha256, and every aggregate recomputed from it), and clashes across bundles and the catalog (model
ids, duplicate weights, duplicate scores).

Each valid (bundle, dataset) also gets a :class:`Standing`: ``pinned`` when count, fingerprint, id
set and ceiling were all checked against pins, else ``unverified`` (the site lists those apart).
"""
from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from benchmark import records
from leaderboard import fields as F
from leaderboard.bounds import MAX_BYTES
from leaderboard.bundle import (SOURCE_KINDS, SUBMISSION_SCHEMA, Bundle, inside, list_bundles, read_bundle, read_json)
from leaderboard.pins import CEILING_RTOL, PinTable, as_table, ids_digest
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
    """What is known about a dataset without asking the bundle: image count, fingerprint, image-id
    set digest, ceiling, generated or not; ``pinned``: whether count, fingerprint and id set come
    from ``known_datasets.json``; ``known``: whether the dataset is in that table at all; ``source``
    and ``ceiling_source`` say where the facts came from (for messages)."""

    n_images: int | None = None
    fingerprint: str | None = None
    image_ids_sha256: str | None = None
    ceiling: float | None = None
    synthetic: bool = False
    pinned: bool = False
    ceiling_pinned: bool = False
    known: bool = False
    source: str = "nothing known"
    ceiling_source: str = "nothing known"

    @property
    def anything(self) -> bool:
        return self.n_images is not None or self.fingerprint is not None or self.ceiling is not None


@dataclass(frozen=True)
class Standing:
    """How far a valid (bundle, dataset) could be checked: ``pinned`` (everything against the pins;
    ranked with the paper's data, or with the other generated data when ``synthetic``) or
    ``unverified`` (``reason`` says what could not be checked)."""

    level: str
    synthetic: bool
    reason: str = ""


@dataclass
class ValidationReport:
    bundles: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    standing: dict[tuple[str, str], Standing] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def format(self) -> str:
        if self.ok:
            lines = [f"{len(self.bundles)} bundle(s) valid: {', '.join(self.bundles)}"]
            for (bundle, dataset), s in sorted(self.standing.items()):
                tag = "pinned" + (", SYNTHETIC data" if s.synthetic else "") if s.level == "pinned" \
                    else f"UNVERIFIED ({s.reason})"
                lines.append(f"  {bundle} on {dataset}: {tag}")
            return "\n".join(lines)
        lines = [str(p) for p in self.problems]
        bad = sorted({p.bundle for p in self.problems})
        lines.append(f"{len(self.problems)} problem(s) in {len(bad)} of {len(self.bundles)} bundle(s)")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- references
def _local_dataset(name: str) -> Any:
    """A cached copy of dataset ``name`` (never downloaded), or None."""
    try:
        from benchmark.datasets import get_dataset

        dataset = get_dataset(name, download=False)
        dataset.files()
        return dataset
    except (AlignbenchError, OSError):
        return None


def dataset_reference(name: str, results_dir: str | Path, *, dataset: Any = None, use_local_data: bool = True,
                      pins: PinTable | str | Path | None = None) -> Reference:
    """Facts about dataset ``name``: pinned ones from ``pins`` (default: the package's table), the
    rest from the data itself (``dataset`` or, with ``use_local_data``, a cached copy; its ceiling
    record is computed into ``results_dir`` as ``alignbench run`` would), else from the catalog's
    full-run records and ceiling record under ``results_dir/<name>``."""
    from leaderboard import pins as pin_mod

    table = as_table(pins)
    ref = Reference()
    pin = table.get(name)
    if pin is not None:
        ref.known, ref.synthetic, ref.pinned = True, pin.synthetic, pin.pinned
        ref.n_images, ref.fingerprint, ref.image_ids_sha256 = pin.n_images, pin.fingerprint, pin.image_ids_sha256
        if pin.ceiling is not None:
            ref.ceiling, ref.ceiling_pinned = pin.ceiling, True
            ref.ceiling_source = f"known_datasets.json ({pin.ceiling_source})"
        ref.source = "known_datasets.json"
    if ref.pinned and ref.ceiling is not None:
        return ref
    if dataset is None and use_local_data:
        dataset = _local_dataset(name)
    if dataset is not None:
        if not ref.pinned:
            ref.n_images, ref.fingerprint = dataset.num_images(), dataset.fingerprint()
            ids = pin_mod.image_ids(dataset)
            ref.image_ids_sha256 = None if ids is None else ids_digest(ids)
            ref.synthetic = ref.synthetic or bool(getattr(dataset, "synthetic", False))
            ref.source = "the local data"
        if ref.ceiling is None and getattr(dataset, "task", "maps") == "maps":
            from benchmark import baselines

            ceiling = baselines.ensure_ceiling(dataset, results_dir)
            if ceiling is not None:
                ref.ceiling, ref.ceiling_source = float(ceiling["value"]), f"the local data ({ceiling.get('source')})"
        return ref
    if ref.ceiling is None:
        ceiling_path = Path(results_dir) / name / "_ceiling.json"
        if ceiling_path.exists():
            try:
                ref.ceiling = F.ceiling_value(records.read_record(ceiling_path))
                ref.ceiling_source = str(ceiling_path)
            except InvalidInputError:
                pass
    if ref.n_images is None and ref.fingerprint is None:
        full = [r for r in _safe_records(results_dir, name) if F.ok(r) and F.limit(r) is None]
        if full:
            # the catalog's own full runs: the most common (count, fingerprint) pair
            (n, fp), _ = Counter((F.n_images(r), F.fingerprint(r)) for r in full).most_common(1)[0]
            ref.n_images, ref.fingerprint, ref.source = n, fp, f"the catalog's records in {Path(results_dir) / name}"
    return ref


def _safe_records(results_dir: str | Path, name: str) -> list[dict[str, Any]]:
    try:
        return records.load_results(results_dir, name).records
    except InvalidInputError:
        return []


def standing(ref: Reference) -> Standing:
    """The :class:`Standing` a valid bundle on a dataset with ``ref`` gets."""
    if ref.pinned and (ref.ceiling_pinned or ref.ceiling is None and ref.known):
        return Standing("pinned", ref.synthetic)
    missing = [what for what, ok in (("image count, fingerprint and image-id set", ref.pinned),
                                     ("ceiling", ref.ceiling_pinned)) if not ok]
    why = "not in known_datasets.json" if not ref.known else f"{' and '.join(missing)} not pinned"
    return Standing("unverified", ref.synthetic, f"{why}; checked against {ref.source}")


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
    if sub.get("preview") is not False:
        out.append(("preview", "the bundle was scored with --limit (a preview); submit a full run"
                    if sub.get("preview") else f"expected false (a full run), found {sub.get('preview')!r}"))
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

    if F.kind(rec) != "model":
        bad("kind", f"expected 'model', found {rec.get('kind')!r}")
        return problems
    if F.task(rec) != "maps":
        bad("task", f"only maps-task records are ranked here, found {rec.get('task')!r}")
        return problems
    explainer = F.explainer_problem(rec)
    if explainer:
        bad("explainer_spec", f"{explainer}; the leaderboard ranks the maps of saliency, the paper's explainer, only "
            "(score without --explainer; compare other explainers with alignbench plot-pareto --explainer NAME)")
    if F.model_id(rec) != bundle.id:
        bad("model", f"{rec.get('model')!r} differs from the submission id {bundle.id!r}")
    if F.dataset(rec) != dataset:
        bad("dataset", f"{rec.get('dataset')!r} differs from its folder {dataset!r}")
    if not F.ok(rec):
        bad("status", f"the run did not succeed ({rec.get('status')!r}: {F.failure(rec)})")
        return problems
    if "limit" in rec and rec["limit"] is not None:
        bad("limit", f"scored on the first {rec['limit']} images only; the leaderboard takes full runs")
    if bundle.submission is not None:
        declared = (bundle.submission.get("model") or {}).get("weights_sha256")
        if F.weights_sha256(rec) != declared:
            bad("weights_sha256", f"{rec.get('weights_sha256')!r} differs from submission.json's {declared!r}")
    if not ref.anything:
        bad("dataset", f"nothing is known about dataset {dataset!r} (not in known_datasets.json, no local copy, no "
            "catalog records): its image count, fingerprint and ceiling cannot be checked")
    if ref.n_images is not None and F.n_images(rec) != ref.n_images:
        bad("n_images", f"{rec.get('n_images')} images scored but the dataset has {ref.n_images} ({ref.source}): "
            "a preview or a subset is not a full run")
    if ref.fingerprint is not None and F.fingerprint(rec) != ref.fingerprint:
        bad("dataset_fingerprint", f"{rec.get('dataset_fingerprint')!r} is not the dataset's {ref.fingerprint!r} "
            f"({ref.source}): scored on other data")
    if ref.synthetic and not F.synthetic(rec):
        bad("dataset_synthetic", f"the record says the data is not generated, but {dataset} is synthetic ({ref.source})")
    ceiling = F.ceiling(rec)
    if ceiling is None or not 0 < ceiling <= 1:
        bad("ceiling", f"expected a number in (0, 1], found {rec.get('ceiling')!r}")
        ceiling = None
    elif ref.ceiling is not None and not _close(ceiling, ref.ceiling, CEILING_RTOL):
        bad("ceiling", f"{ceiling} differs from the leaderboard's ceiling {ref.ceiling} for {dataset} "
            f"({ref.ceiling_source})")
    if (bundle.path / dataset / "_ceiling.json").exists():
        try:
            raw = read_json(inside(bundle.path, dataset, "_ceiling.json"), "_ceiling.json")
            found = records.validate_record(raw) if isinstance(raw, dict) else ["a record must be a JSON object"]
            if found:
                raise InvalidInputError(f"{dataset}/_ceiling.json: " + "; ".join(found))
            value = F.ceiling_value(records.upgrade(raw))
            if ceiling is not None and not _close(value, ceiling):
                bad("ceiling", f"{ceiling} differs from the bundle's {dataset}/_ceiling.json value {value}")
        except InvalidInputError as exc:
            bad("ceiling", str(exc))
    problems += [(f"{where} {f}", m) for f, m in check_scores(bundle, dataset, rec, ceiling, ref)]
    problems += check_gallery(bundle, dataset)
    return problems


def check_gallery(bundle: Bundle, dataset: str) -> list[tuple[str, str]]:
    """The optional ``<dataset>/<id>.gallery.npz``: within its byte limit, no pickle, the expected
    members, shapes and dtypes (:func:`benchmark.gallery.read_gallery`), and the gallery images of
    the scored ids (:func:`benchmark.gallery.gallery_ids`), no others."""
    from benchmark import gallery
    from leaderboard.bounds import read_bounded

    name = f"{bundle.id}{gallery.SUFFIX}"
    where = f"{dataset}/{name}"
    try:
        path = inside(bundle.path, dataset, name)
        if not path.exists():
            return []
        arrays = gallery.read_gallery(read_bounded(path, "gallery"), where=where)
        scored = records.read_scores(inside(bundle.path, dataset, f"{bundle.id}.scores.csv"))["image_id"]
    except InvalidInputError as exc:
        return [(where, str(exc))]
    expected = gallery.gallery_ids(dataset, [str(i) for i in scored])
    if arrays["image_id"] != expected:
        return [(f"{where} image_id", f"{arrays['image_id'][:3]}... are not the dataset's gallery images "
                 f"{expected[:3]}... (benchmark.gallery.gallery_ids of the scored ids)")]
    return []


def check_scores(bundle: Bundle, dataset: str, rec: Mapping[str, Any], ceiling: float | None,
                 ref: Reference | None = None) -> list[tuple[str, str]]:
    """Check the per-image file against the record and the dataset: sha256, row count, image-id set,
    value ranges, and every aggregate recomputed from the rows."""
    from benchmark import baselines

    expected_name = f"{bundle.id}.scores.csv"
    if F.scores_file(rec) != expected_name:
        return [("scores_file", f"expected {expected_name!r}, found {rec.get('scores_file')!r}")]
    try:
        path = inside(bundle.path, dataset, expected_name)
    except InvalidInputError as exc:
        return [("scores_file", str(exc))]
    if not path.is_file():
        return [("scores_file", f"{dataset}/{expected_name} is missing")]
    if os.stat(path).st_size > MAX_BYTES["scores"]:
        return [("scores_file", f"{dataset}/{expected_name} is larger than the limit of "
                 f"{MAX_BYTES['scores'] // 2**20} MiB")]
    out = []
    sha = sha256_file(path)
    if sha != F.scores_sha256(rec):
        out.append(("scores_sha256", f"the file's sha256 is {sha}, the record says {rec.get('scores_sha256')}: "
                    "the per-image scores were changed after the run"))
    try:
        cols = records.read_scores(path)
    except InvalidInputError as exc:
        return out + [("scores_file", str(exc))]
    n = len(cols["image_id"])
    if n != F.n_images(rec):
        out.append(("n_images", f"record says {rec.get('n_images')}, the scores file has {n} rows"))
    ids = [str(i) for i in cols["image_id"]]
    dupes = [i for i, c in Counter(ids).items() if c > 1]
    if dupes:
        out.append(("scores_file", f"{len(dupes)} image id(s) appear more than once, e.g. {dupes[:3]}"))
    if ref is not None and ref.image_ids_sha256 is not None and ids_digest(ids) != ref.image_ids_sha256:
        out.append(("scores_file image_id", f"the {n} image ids are not the dataset's image-id set ({ref.source}): "
                    "scored on a subset or on other images"))
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
        out += _safe_records(results_dir, name)
    return out


def validate_bundles(paths: Sequence[str | Path] | None = None, *, results_dir: str | Path = "results",
                     datasets: Mapping[str, Any] | None = None, use_local_data: bool = True,
                     pins: PinTable | str | Path | None = None,
                     catalog: Iterable[str] | None = None) -> ValidationReport:
    """Validate ``paths`` (default: every bundle under ``results_dir/submissions``) against each
    other, the catalog (``catalog``: model ids, default the registry's), the catalog's records and
    the pinned dataset facts (``pins``: a :class:`~leaderboard.pins.PinTable` or a table file;
    default the package's ``known_datasets.json``). ``datasets``: dataset objects by name, used
    instead of looking for local data."""
    results_dir = Path(results_dir)
    table = as_table(pins)
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
        before = len(report.problems)
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
                                               use_local_data=use_local_data, pins=table)
            for fld, msg in check_record(b, name, rec, refs[name]):
                add(fld, msg)
        if len(report.problems) == before:
            for name in b.records:
                report.standing[(b.id, name)] = standing(refs[name])
    _cross_checks(report, bundles, list(others.values()), results_dir)
    for p in report.problems:  # a bundle with a clash found late has no standing either
        for key in [k for k in report.standing if k[0] == p.bundle]:
            del report.standing[key]
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
            sha = F.weights_sha256(rec)
            if sha and sha in _digests(b)["weights"]:
                report.problems.append(Problem(b.id, "model.weights_sha256",
                                               f"same weights as catalog model {rec.get('model')!r} ({rec.get('_path')})"))
            if F.scores_sha256(rec) and F.scores_sha256(rec) in _digests(b)["scores"]:
                report.problems.append(Problem(b.id, "scores_sha256",
                                               f"identical per-image scores to catalog model {rec.get('model')!r}"))


def _digests(b: Bundle) -> dict[str, set[str]]:
    weights = set()
    if b.submission and isinstance(b.submission.get("model"), dict):
        sha = b.submission["model"].get("weights_sha256")
        if isinstance(sha, str) and sha:
            weights.add(sha)
    scores = {F.scores_sha256(r) for r in b.records.values() if F.scores_sha256(r)}
    return {"weights": weights, "scores": scores}

