"""Submission bundles: the folder a submitter commits or sends, and how it is read back safely.

Layout (everything inside ``results/submissions/<submission-id>/``)::

    submission.json                      who, what model, licence, claimed top-1, weights sha256, provenance
    <dataset>/<submission-id>.json       a result record (benchmark.records schema), one per dataset
    <dataset>/<submission-id>.scores.csv its per-image scores
    <dataset>/_ceiling.json              the ceiling the alignment was divided by
    <dataset>/<submission-id>.gallery.npz  the model's maps of the dataset's gallery images (benchmark.gallery)
    model/architecture.json              (plugin submissions) how to rebuild the model safely
    model/weights.safetensors | model/model.keras   (optional) the exported weights
    model/plugin.py                      (plugin submissions) the plugin source, only ever run in the sandbox

A bundle is untrusted input: every name is checked with :func:`benchmark.records.safe_name`, every
path is resolved and must stay inside the bundle (symlinks are refused), and only the files above
are accepted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from benchmark.gallery import SUFFIX as GALLERY_SUFFIX
from benchmark.records import safe_name
from leaderboard.bounds import MAX_TEXT, read_json_bounded
from model_zoo.errors import InvalidInputError

SUBMISSION_SCHEMA = "alignbench.submission/1"
SUBMISSION_FILE = "submission.json"
SUBMISSIONS_DIR = "submissions"
MODEL_DIR = "model"
MODEL_FILES = ("architecture.json", "weights.safetensors", "model.keras", "plugin.py")
DATASET_EXTRA_FILES = ("_ceiling.json", "_baseline-center-bias.json")
SOURCE_KINDS = ("timm", "keras", "weights", "plugin")
MAX_FILE_PROBLEMS = 20  # stray files listed per bundle; the rest are counted


@dataclass
class SubmissionMeta:
    """What the submitter says about themselves and the model (all free text is untrusted).

    ``top1_claimed``: ImageNet-1k top-1 in percent, or None; ``top1_method`` says how it was measured
    (required with a claim). ``family``: one of ``model_zoo.catalog.FAMILIES`` or None.
    """

    submitter: str
    model_name: str
    description: str
    licence: str
    email: str | None = None
    affiliation: str | None = None
    url: str | None = None
    family: str | None = None
    top1_claimed: float | None = None
    top1_method: str | None = None

    def problems(self) -> list[str]:
        """Problems with the metadata, each naming its ``submission.json`` field; empty when valid."""
        from model_zoo.catalog import FAMILIES

        out = []
        for fld, key, required in (("submitter.name", "name", self.submitter), ("model.name", "name", self.model_name),
                                   ("model.description", "description", self.description),
                                   ("model.licence", "licence", self.licence)):
            if not isinstance(required, str) or not required.strip():
                out.append(f"{fld}: required (a non-empty text)")
            elif len(required) > MAX_TEXT[key]:
                out.append(f"{fld}: longer than {MAX_TEXT[key]} characters")
        for fld, key, value in (("submitter.email", "email", self.email), ("submitter.affiliation", "affiliation",
                                self.affiliation), ("model.url", "url", self.url), ("top1.method", "method",
                                self.top1_method)):
            if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT[key]):
                out.append(f"{fld}: expected a text of at most {MAX_TEXT[key]} characters or null")
        if self.email and ("@" not in self.email or any(c.isspace() for c in self.email)):
            out.append(f"submitter.email: {self.email!r} is not an e-mail address")
        if self.family is not None and self.family not in FAMILIES:
            out.append(f"model.family: expected one of {FAMILIES} or null, found {self.family!r}")
        claim = self.top1_claimed
        if claim is not None:
            if isinstance(claim, bool) or not isinstance(claim, (int, float)) or not 0 <= claim <= 100:
                out.append(f"top1.claimed: expected a percentage in [0, 100] or null, found {claim!r}")
            if not (isinstance(self.top1_method, str) and self.top1_method.strip()):
                out.append("top1.method: required with a claimed top-1 (say how it was measured)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "submitter": {"name": self.submitter, "email": self.email, "affiliation": self.affiliation},
            "model": {"name": self.model_name, "description": self.description, "licence": self.licence,
                      "family": self.family, "url": self.url},
            "top1": {"claimed": self.top1_claimed, "method": self.top1_method},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SubmissionMeta":
        def part(name: str) -> Mapping[str, Any]:
            value = data.get(name)
            return value if isinstance(value, Mapping) else {}

        sub, model, top1 = part("submitter"), part("model"), part("top1")
        return cls(submitter=sub.get("name"), email=sub.get("email"), affiliation=sub.get("affiliation"),
                   model_name=model.get("name"), description=model.get("description"),
                   licence=model.get("licence"), family=model.get("family"), url=model.get("url"),
                   top1_claimed=top1.get("claimed"), top1_method=top1.get("method"))


@dataclass
class Bundle:
    """A bundle read from disk: its folder, ``submission.json`` (None if unreadable), records by
    dataset, and the problems met while reading (each ``"field: message"``)."""

    path: Path
    submission: dict[str, Any] | None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def meta(self) -> SubmissionMeta | None:
        return SubmissionMeta.from_json(self.submission) if self.submission else None


def submissions_root(results_dir: str | Path) -> Path:
    return Path(results_dir) / SUBMISSIONS_DIR


def bundle_dir(results_dir: str | Path, submission_id: str) -> Path:
    """``results/submissions/<submission-id>`` (the id is checked: no traversal)."""
    return submissions_root(results_dir) / safe_name(submission_id, "submission id")


def inside(root: Path, *parts: str) -> Path:
    """``root/parts...`` after checking each part is a safe name and the result, with symlinks
    resolved, stays inside ``root``; raises :class:`InvalidInputError` otherwise."""
    path = Path(root)
    for part in parts:
        path = path / (part if part in DATASET_EXTRA_FILES else safe_name(part, "file name"))
    real_root = Path(root).resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise InvalidInputError(f"{path}: resolves outside the bundle folder {root}")
    if path.is_symlink():
        raise InvalidInputError(f"{path}: symbolic links are not allowed in a bundle")
    return path


def list_bundles(results_dir: str | Path) -> list[Path]:
    """Bundle folders under ``results/submissions`` (folders only; names are checked later)."""
    root = submissions_root(results_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def bundle_files(path: Path) -> Iterator[tuple[Path, str | None]]:
    """Every entry of a bundle with the problem it poses (None when it is an expected file)."""
    sid = path.name
    for entry in sorted(path.rglob("*")):
        rel = entry.relative_to(path)
        if entry.is_symlink():
            yield entry, f"{rel}: symbolic links are not allowed in a bundle"
            continue
        parts = rel.parts
        if entry.is_dir():
            if len(parts) == 1:
                continue
            yield entry, f"{rel}: unexpected folder (a bundle holds <dataset>/ and model/ folders only)"
            continue
        if parts == (SUBMISSION_FILE,):
            yield entry, None
        elif len(parts) == 2 and parts[0] == MODEL_DIR:
            yield entry, None if parts[1] in MODEL_FILES else f"{rel}: unexpected file in model/ (allowed: {', '.join(MODEL_FILES)})"
        elif len(parts) == 2 and parts[1] in (f"{sid}.json", f"{sid}.scores.csv", f"{sid}{GALLERY_SUFFIX}",
                                              *DATASET_EXTRA_FILES):
            yield entry, None
        else:
            yield entry, f"{rel}: unexpected file (expected submission.json, <dataset>/{sid}.json, " \
                         f"<dataset>/{sid}.scores.csv, <dataset>/{sid}{GALLERY_SUFFIX}, <dataset>/_ceiling.json " \
                         "or model/...)"


def read_json(path: Path, kind: str = "record") -> Any:
    """JSON of a bundle file, refused (one clear line) when it is not a regular file, larger than
    its kind's byte limit, or holds a field over its length limit (:mod:`leaderboard.bounds`)."""
    return read_json_bounded(Path(path), kind)


def read_bundle(path: str | Path) -> Bundle:
    """Read a bundle without trusting it: unsafe names, stray files and unreadable JSON become
    problems; records are read raw (validation is :mod:`leaderboard.validate`'s job)."""
    path = Path(path)
    bundle = Bundle(path=path, submission=None)
    if not path.is_dir():
        bundle.problems.append(f"bundle: {path} is not a folder")
        return bundle
    try:
        safe_name(path.name, "submission id")
    except InvalidInputError as exc:
        bundle.problems.append(f"id: {exc}")
        return bundle
    stray = 0
    for _, problem in bundle_files(path):
        if problem:
            stray += 1
            if stray <= MAX_FILE_PROBLEMS:
                bundle.problems.append(f"files: {problem}")
    if stray > MAX_FILE_PROBLEMS:
        bundle.problems.append(f"files: {stray - MAX_FILE_PROBLEMS} more unexpected entries not listed")
    try:
        sub = read_json(inside(path, SUBMISSION_FILE), SUBMISSION_FILE)
        if not isinstance(sub, dict):
            raise InvalidInputError("submission.json: must be a JSON object")
        bundle.submission = sub
    except InvalidInputError as exc:
        bundle.problems.append(f"submission.json: {exc}" if path.joinpath(SUBMISSION_FILE).exists()
                               else "submission.json: missing")
    for entry in sorted(path.iterdir()):
        if not entry.is_dir() or entry.is_symlink() or entry.name == MODEL_DIR:
            continue
        try:
            rec_path = inside(path, entry.name, f"{bundle.id}.json")
        except InvalidInputError as exc:
            bundle.problems.append(f"files: {exc}")
            continue
        if not rec_path.exists():
            bundle.problems.append(f"{entry.name}: folder has no record {bundle.id}.json")
            continue
        try:
            rec = read_json(rec_path)
        except InvalidInputError as exc:
            bundle.problems.append(f"{entry.name}/{bundle.id}.json: {exc}")
            continue
        if not isinstance(rec, dict):
            bundle.problems.append(f"{entry.name}/{bundle.id}.json: a record must be a JSON object")
            continue
        bundle.records[entry.name] = rec
    return bundle


def submission_document(submission_id: str, meta: SubmissionMeta, *, source: Mapping[str, Any],
                        weights_sha256: str | None, datasets: list[str], provenance: Mapping[str, Any],
                        preview: bool) -> dict[str, Any]:
    """The ``submission.json`` of a new bundle."""
    doc = {"schema": SUBMISSION_SCHEMA, "id": safe_name(submission_id, "submission id"), **meta.to_json()}
    doc["model"]["source"] = dict(source)
    doc["model"]["weights_sha256"] = weights_sha256
    doc["datasets"] = list(datasets)
    doc["preview"] = preview
    doc["created"] = provenance.get("date")
    doc["provenance"] = dict(provenance)
    return doc
