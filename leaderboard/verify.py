"""``alignbench leaderboard verify``: check a bundle against the local data and re-score a seeded
random subset of its images from the submitted model.

First the bundle as a whole: its scores file must cover exactly the dataset's images (count and
image-id set, against the local data and the pins of ``known_datasets.json``), so a preview or a
cherry-picked subset fails even where every re-scored image matches. Then the images:

the subset is ``numpy.random.default_rng(seed).choice(n_images, k, replace=False)`` over the rows of
the bundle's scores file, so anyone re-running with the same seed checks the same images. Those
images are read from the local dataset (contiguous runs, so only they are decoded), scored with
:func:`benchmark.tasks.maps.score_batch` (the runner's own scoring), and every per-image Spearman, Dice
and IoU that differs by more than ``tolerance`` (absolute), and every differing prediction, is
reported with its image id.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from benchmark import records, runner
from benchmark.tasks.maps import score_batch
from leaderboard import fields as F
from leaderboard.bundle import MODEL_DIR, inside, read_bundle
from leaderboard.loading import ModelSource, SubmittedSpec, load_adapter, model_from_export, parse_preprocess
from leaderboard.pins import PinTable, as_table, ids_digest, image_ids
from leaderboard.sandbox import Limits
from model_zoo.errors import InvalidInputError

FLOAT_FIELDS = ("spearman", "dice", "iou")


@dataclass(frozen=True)
class Mismatch:
    image_id: str
    field: str
    submitted: Any
    recomputed: Any

    def __str__(self) -> str:
        return f"image {self.image_id}: {self.field}: bundle {self.submitted!r}, recomputed {self.recomputed!r}"


@dataclass
class VerifyReport:
    """One dataset's verification. ``mismatches``: per-image differences (``image_id`` an image of
    the dataset); ``bundle_mismatches``: differences of the bundle as a whole (weights, image count,
    image-id set), which are not images and are counted apart."""

    bundle: str
    dataset: str
    checked: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    bundle_mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tolerance: float = 0.0
    seed: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.bundle_mismatches

    @property
    def bad_images(self) -> list[str]:
        return sorted({m.image_id for m in self.mismatches})

    def format(self) -> str:
        head = (f"{self.bundle} on {self.dataset}: {len(self.checked)} images re-scored (seed {self.seed}, "
                f"tolerance {self.tolerance:g})")
        lines = [head] + [f"  note: {n}" for n in self.notes]
        if self.ok:
            lines.append("  OK: the image count and id set are the dataset's and every re-computed score matches")
            return "\n".join(lines)
        lines += [f"  MISMATCH (bundle) {m.field}: bundle {m.submitted!r}, found {m.recomputed!r}"
                  for m in self.bundle_mismatches]
        lines += [f"  MISMATCH {m}" for m in self.mismatches]
        if self.mismatches:
            lines.append(f"  {len(self.bad_images)} of {len(self.checked)} images do not match: {', '.join(self.bad_images)}")
        else:
            lines.append(f"  all {len(self.checked)} re-scored images match, but the bundle as a whole does not (above)")
        return "\n".join(lines)


def select_rows(n_rows: int, k: int, seed: int) -> np.ndarray:
    """Sorted row indices of the seeded subset (all rows when k >= n_rows)."""
    if k < 1:
        raise InvalidInputError(f"--n-images must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=min(k, n_rows), replace=False))


def _runs(rows: np.ndarray, max_gap: int = 0) -> Iterator[tuple[int, int]]:
    """(start, length) spans covering the sorted row indices; runs closer than ``max_gap`` rows are
    merged (reading a few unselected images costs less than starting another input pipeline)."""
    start = prev = None
    for r in rows.tolist():
        if start is None:
            start = prev = r
        elif r - prev - 1 <= max_gap:
            prev = r
        else:
            yield start, prev - start + 1
            start = prev = r
    if start is not None:
        yield start, prev - start + 1


def bundle_model(bundle_path: Path, model: str | Path | None, *, device: str, precision: str,
                 limits: Limits, export_dir: Path, trust_plugin: bool = False) -> tuple[Any, list[str]]:
    """The adapter of a bundle's model, and notes. ``model`` overrides the weights file (or the
    Keras/plugin file); a bundle's ``model/`` export is used when present."""
    bundle = read_bundle(bundle_path)
    if bundle.submission is None:
        raise InvalidInputError(f"{bundle_path}: no readable submission.json")
    meta = bundle.meta
    sub_model = bundle.submission.get("model") or {}
    src = dict(sub_model.get("source") or {})
    spec = SubmittedSpec(id=bundle.id, display_name=str(meta.model_name), family=meta.family, framework="")
    pre_text = src.get("preprocess", "absent")
    pre_kw: dict[str, Any] = {}
    if pre_text != "absent":
        import json

        pre_kw = {"preprocess": parse_preprocess(json.dumps(pre_text)), "preprocess_given": True,
                  "preprocess_from": "the bundle's submission.json"}
    notes = []
    kind = src.get("kind")
    model_dir = bundle_path / MODEL_DIR
    exported = [n for n in ("weights.safetensors", "model.keras") if (model_dir / n).is_file()]
    if model is None and kind == "plugin" and exported and (model_dir / "architecture.json").is_file():
        from model_zoo.wrap import wrap

        m, resolved, framework, sha = model_from_export(model_dir)
        notes.append("model rebuilt from the bundle's model/ export (no plugin code run)")
        kw = {"spec": spec, "weights_sha256": sha, **({"device": device} if framework == "torch" else {})}
        return wrap(m, pre_kw["preprocess"] if pre_kw else resolved.preprocess, **kw), notes
    if kind == "plugin":
        path = Path(model) if model else inside(bundle_path, MODEL_DIR, "plugin.py")
        notes.append(f"plugin {path.name} rebuilt in the sandbox")
        source = ModelSource("plugin", path=path, **pre_kw)
    elif kind == "timm":
        source = ModelSource("timm", name=src.get("architecture"), weights=src.get("weights", "pretrained"), **pre_kw)
    elif kind in ("weights", "keras"):
        path = Path(model) if model else (model_dir / exported[0] if exported else None)
        if path is None:
            raise InvalidInputError(f"{bundle_path}: the bundle does not carry its weights; pass --model PATH "
                                    f"(the submitter's {src.get('file')!r}, sha256 {sub_model.get('weights_sha256')})")
        source = ModelSource(kind, name=src.get("architecture"), path=path, **pre_kw)
    else:
        raise InvalidInputError(f"{bundle_path}: submission.json model.source.kind {kind!r} is unknown")
    return load_adapter(source, spec, device=device, precision=precision, export_dir=export_dir, limits=limits,
                        trust_plugin=trust_plugin), notes


def verify_bundle(bundle_path: str | Path, *, n_images: int = 100, seed: int = 0, tolerance: float = 1e-4,
                  model: str | Path | None = None, datasets: dict[str, Any] | None = None, download: bool = False,
                  device: str = "auto", precision: str = "float32", batch_size: int = 32,
                  limits: Limits = Limits(), trust_plugin: bool = False, pins: PinTable | str | Path | None = None,
                  loader: Callable[..., Any] | None = None) -> list[VerifyReport]:
    """Check every dataset of the bundle against the local data: the scores file's image count and
    image-id set must be the dataset's (and the pinned ones, ``pins``), and ``n_images`` seeded
    random images are re-scored (``datasets``: dataset objects by name; otherwise each is opened by
    name, downloaded only with ``download``). ``trust_plugin``: run a plugin without a sandbox where
    none can be set up (:func:`leaderboard.sandbox.build_plugin`). ``loader(bundle_path)`` may
    replace :func:`bundle_model` (tests). One report per dataset."""
    import tempfile

    bundle_path = Path(bundle_path)
    bundle = read_bundle(bundle_path)
    if bundle.submission is None or not bundle.records:
        raise InvalidInputError(f"{bundle_path}: not a bundle with records ({'; '.join(bundle.problems) or 'empty'})")
    table = as_table(pins)
    device = runner.resolve_device(device)
    reports = []
    with tempfile.TemporaryDirectory(prefix="alignbench-verify-") as export:
        notes: list[str] = []
        if loader is not None:
            adapter = loader(bundle_path)
        else:
            adapter, notes = bundle_model(bundle_path, model, device=device, precision=precision, limits=limits,
                                          export_dir=Path(export), trust_plugin=trust_plugin)
        claimed = (bundle.submission.get("model") or {}).get("weights_sha256")
        actual = getattr(adapter, "weights_sha256", None)
        for name, rec in sorted(bundle.records.items()):
            report = VerifyReport(bundle=bundle.id, dataset=name, tolerance=tolerance, seed=seed, notes=list(notes))
            if claimed and actual and claimed != actual:
                report.notes.append(f"the model's weights have sha256 {actual}, the bundle claims {claimed}: "
                                    "not the submitted weights")
                report.bundle_mismatches.append(Mismatch("*", "weights_sha256", claimed, actual))
            dataset = _open(name, datasets, download)
            scores = records.read_scores(inside(bundle_path, name, f"{bundle.id}.scores.csv"))
            _check_image_set(report, rec, scores, dataset, table.get(name))
            _verify_dataset(report, bundle.id, name, rec, scores, adapter, dataset, n_images, seed, tolerance,
                            batch_size)
            expected = min(n_images, len(scores["image_id"]))
            if len(report.checked) != expected:
                report.bundle_mismatches.append(Mismatch("*", "images re-scored", expected, len(report.checked)))
                report.notes.append(f"the dataset yielded {len(report.checked)} of the {expected} selected images")
            reports.append(report)
    return reports


def _check_image_set(report: VerifyReport, rec: dict[str, Any], scores: dict[str, Any], dataset: Any, pin: Any) -> None:
    """The bundle's rows must be the whole dataset: its count and its id set (also the pinned ones)."""
    ids = [str(i) for i in scores["image_id"]]
    count = dataset.num_images()
    if len(ids) != count or F.n_images(rec) != count:
        report.bundle_mismatches.append(Mismatch("*", "n_images", F.n_images(rec), count))
        report.notes.append(f"the bundle scored {len(ids)} images (record: {rec.get('n_images')}); the dataset has "
                            f"{count}: a preview or a subset is not a full run")
    local = image_ids(dataset)
    if local is not None:
        missing, extra = set(local) - set(ids), set(ids) - set(local)
        if missing or extra or len(set(ids)) != len(ids):
            report.bundle_mismatches.append(Mismatch("*", "image-id set", f"{len(set(ids))} distinct ids", f"{len(local)}"))
            report.notes.append(f"the scores file's image ids are not the dataset's: {len(missing)} missing "
                                f"(e.g. {sorted(missing)[:3]}), {len(extra)} not in the dataset (e.g. {sorted(extra)[:3]})")
    if pin is not None and pin.pinned:
        if dataset.fingerprint() != pin.fingerprint:
            report.notes.append(f"the local copy of {report.dataset} is not the pinned one (fingerprint "
                                f"{dataset.fingerprint()}, pinned {pin.fingerprint}): verify against the pinned data")
        if ids_digest(ids) != pin.image_ids_sha256:
            report.bundle_mismatches.append(Mismatch("*", "image-id set", ids_digest(ids), pin.image_ids_sha256))
            report.notes.append("the scores file's image-id set differs from the one pinned in known_datasets.json")


def _open(name: str, datasets: dict[str, Any] | None, download: bool) -> Any:
    if datasets and name in datasets:
        return datasets[name]
    from benchmark.datasets import get_dataset

    return get_dataset(name, download=download)


def _verify_dataset(report: VerifyReport, sid: str, name: str, rec: dict[str, Any], scores: dict[str, Any],
                    adapter: Any, dataset: Any, k: int, seed: int, tolerance: float, batch_size: int) -> None:
    if F.fingerprint(rec) != dataset.fingerprint():
        raise InvalidInputError(f"{sid}/{name}: the bundle was scored on data with fingerprint "
                                f"{rec.get('dataset_fingerprint')}, the local dataset has {dataset.fingerprint()}")
    ids = [str(i) for i in scores["image_id"]]
    rows = select_rows(len(ids), k, seed)
    # the runner writes scores in dataset order, so row r is the r-th valid image of the dataset
    selected = set(rows.tolist())
    for start, length in _runs(rows, max_gap=batch_size):
        r = start
        for batch in dataset.batches(min(batch_size, length), start=start, limit=length):
            keep = [j for j in range(len(batch.ids)) if r + j in selected]
            positions, r = [r + j for j in keep], r + len(batch.ids)
            if not keep:
                continue
            images, labels = batch.images[keep], np.asarray(batch.labels)[keep]
            logits, maps = adapter.predict_and_saliency(images, labels)
            got = score_batch(np.asarray(maps, dtype=np.float32), batch.heatmaps[keep])
            pred = np.asarray(logits).argmax(axis=1)
            for j, row in enumerate(positions):
                image_id = str(batch.ids[keep[j]])
                report.checked.append(image_id)
                if ids[row] != image_id:
                    report.mismatches.append(Mismatch(image_id, "image_id", ids[row], image_id))
                    continue
                for fld in FLOAT_FIELDS:
                    a, b = float(scores[fld][row]), float(got[fld][j])
                    if not ((math.isnan(a) and math.isnan(b)) or abs(a - b) <= tolerance):
                        report.mismatches.append(Mismatch(image_id, fld, a, b))
                if int(scores["pred"][row]) != int(pred[j]):
                    report.mismatches.append(Mismatch(image_id, "pred", int(scores["pred"][row]), int(pred[j])))
                if int(scores["label"][row]) != int(labels[j]):
                    report.mismatches.append(Mismatch(image_id, "label", int(scores["label"][row]), int(labels[j])))
