"""``alignbench submit``: score a submitted model with the runner and write its bundle.

The model runs through :class:`benchmark.job.Job` exactly like a catalog model (same batches,
saliency, scoring), so the bundle's records and per-image scores are ordinary result records, with
what only the submission knows in the job's model reference: ``weights`` (``pretrained``, ``random``
or ``file:<sha256>``) and the resolved preprocessing. The bundle is written into a hidden staging
folder beside the final one and moved into place only when every dataset was scored: a failed or
interrupted submit leaves nothing under ``results/submissions/``.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmark import baselines, gallery, records, runner
from benchmark.job import Job, JobConfig, ModelRef
from benchmark.tasks import References
from benchmark.tasks.maps import MapsTask
from benchmark.provenance import provenance
from leaderboard.bundle import (MODEL_DIR, SUBMISSION_FILE, SubmissionMeta, bundle_dir, submission_document,
                                submissions_root)
from leaderboard.architecture import preprocess_json
from leaderboard.loading import ModelSource, SubmittedSpec, load_submitted
from leaderboard.sandbox import Limits
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_copy_file, atomic_output, atomic_write_json


@dataclass
class SubmitResult:
    """What :func:`submit` did: the bundle folder, its ``submission.json``, the runner's outcomes
    (one per dataset), and the text telling the submitter what to do next."""

    bundle: Path
    submission: dict[str, Any] | None
    outcomes: list[runner.ModelOutcome] = field(default_factory=list)
    instructions: str = ""
    preprocess: str = ""  # the resolved preprocessing, in words

    @property
    def ok(self) -> bool:
        return self.submission is not None and all(o.status == "ok" for o in self.outcomes)


def default_submission_id(model_name: str) -> str:
    """A file-safe id from a model name: ``"My Net (v2)"`` -> ``"my-net-v2"``."""
    slug = re.sub(r"[^a-z0-9._+-]+", "-", model_name.lower()).strip("-._+")[:100]
    if not slug:
        raise InvalidInputError(f"model name {model_name!r} gives no usable id; pass --id")
    return records.safe_name(slug, "submission id")


def catalog_ids() -> set[str]:
    """Ids the catalog and registered models already use (a submission may not take one)."""
    from model_zoo.registry import all_models

    return set(all_models())


def _dataset(name_or_obj: Any, download: bool) -> Any:
    if not isinstance(name_or_obj, str):
        return name_or_obj
    from benchmark.datasets import get_dataset

    return get_dataset(name_or_obj, download=download)


def submit(source: ModelSource, meta: SubmissionMeta, *, datasets: Sequence[Any] = ("clickme-val",),
           results_dir: str | Path = "results", submission_id: str | None = None, batch_size: int = 32,
           device: str = "auto", precision: str = "float32", limit: int | None = None,
           include_weights: bool = False, force: bool = False, download: bool = True, progress: bool = True,
           limits: Limits = Limits(), trust_plugin: bool = False) -> SubmitResult:
    """Score ``source`` on ``datasets`` (names, or dataset objects) and write
    ``results_dir/submissions/<id>/``. ``limit`` makes a preview bundle (it will not validate).
    Raises :class:`InvalidInputError` for bad metadata, an id clash, an existing bundle (unless
    ``force``), or preprocessing that would only be a guess (pass ``--preprocess``). On any failure
    nothing is left under ``results_dir/submissions``."""
    problems = meta.problems()
    if problems:
        raise InvalidInputError("submission metadata: " + "; ".join(problems))
    sid = records.safe_name(submission_id, "--id") if submission_id else default_submission_id(meta.model_name)
    clash = {i.lower() for i in catalog_ids()}
    if sid.lower() in clash:
        raise InvalidInputError(f"submission id {sid!r} is a catalog model id; choose another with --id")
    final = bundle_dir(results_dir, sid)
    if final.exists() and not force:
        raise InvalidInputError(f"{final} already exists; use --force to replace it or --id for a new one")
    dsets = [_dataset(d, download) for d in datasets]
    if not dsets:
        raise InvalidInputError("no dataset to score the submission on")
    for ds in dsets:
        records.safe_name(ds.name, "dataset")
    device = runner.resolve_device(device)
    root = submissions_root(results_dir)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{sid}-", dir=root))  # hidden: never listed as a bundle
    try:
        result = _score_into(staging / sid, sid, source, meta, dsets, results_dir=results_dir, batch_size=batch_size,
                             device=device, precision=precision, limit=limit, include_weights=include_weights,
                             progress=progress, limits=limits, trust_plugin=trust_plugin)
        if result.submission is not None:
            if final.exists():  # --force: the old bundle goes only once the new one is complete
                final.rename(staging / ".replaced")
            (staging / sid).rename(final)
            result.instructions = instructions(final, result.submission, result.outcomes, result.preprocess)
        result.bundle = final
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _score_into(folder: Path, sid: str, source: ModelSource, meta: SubmissionMeta, dsets: list[Any], *,
                results_dir: str | Path, batch_size: int, device: str, precision: str, limit: int | None,
                include_weights: bool, progress: bool, limits: Limits, trust_plugin: bool) -> SubmitResult:
    """Score every dataset into ``folder`` (the staging copy of the bundle) and write its ``submission.json``."""
    folder.mkdir(parents=True)
    spec = SubmittedSpec(id=sid, display_name=meta.model_name, family=meta.family, framework="",
                         top1=meta.top1_claimed,
                         top1_source=f"claimed by the submitter: {meta.top1_method}" if meta.top1_method else None)
    with tempfile.TemporaryDirectory(prefix="alignbench-export-") as export:
        loaded = load_submitted(source, spec, device=device, precision=precision, export_dir=export, limits=limits,
                                trust_plugin=trust_plugin, require_preprocess=True)
        if source.kind == "plugin":
            _copy_plugin_export(source, Path(export), folder / MODEL_DIR, include_weights)
    if include_weights and source.kind in ("weights", "keras"):
        dest = folder / MODEL_DIR / ("model.keras" if source.kind == "keras" else "weights.safetensors")
        _copy_weights(source, dest)
    result = SubmitResult(bundle=folder, submission=None, preprocess=loaded.preprocess.describe())
    for ds in dsets:
        ceiling = baselines.ensure_ceiling(ds, results_dir)
        if ceiling is not None:
            records.write_record(folder / ds.name / baselines.CEILING_FILE, ceiling)
        config = JobConfig(results_dir=folder, device=device, precision=precision, batch_size=batch_size,
                           limit=limit, force=True, progress=runner.tqdm_progress(progress))
        model = ModelRef.plain(sid, loaded.weights_label, record_id=sid, weights_sha256=loaded.adapter.weights_sha256,
                               preprocess=preprocess_json(loaded.preprocess.preprocess),
                               preprocess_origin=loaded.preprocess.origin)
        job = Job(MapsTask(ds), model, config, references=References(ceiling=ceiling),
                  loader=lambda *a, **k: loaded.adapter)
        result.outcomes.append(job.run())
        if result.outcomes[-1].status == "ok":
            write_gallery(ds, loaded.adapter, job.scores_path, folder / ds.name / f"{sid}{gallery.SUFFIX}")
        try:  # the runner's resume folder, empty once the run is done
            (folder / ds.name / ".partial").rmdir()
        except OSError:
            pass
    if any(o.status != "ok" for o in result.outcomes):
        result.instructions = "\n".join(f"{ds.name}: FAILED: {o.error}" for ds, o in zip(dsets, result.outcomes)
                                        if o.status != "ok") + "\nno bundle was written; fix the model and run again"
        return result
    described = {**source.describe(), "preprocess": preprocess_json(loaded.preprocess.preprocess),
                 "preprocess_origin": loaded.preprocess.origin, "weights": loaded.weights_label}
    if loaded.sandboxed is not None:
        described["sandboxed"] = loaded.sandboxed
    doc = submission_document(sid, meta, source=described, weights_sha256=loaded.adapter.weights_sha256,
                              datasets=[d.name for d in dsets], provenance=provenance(device=device),
                              preview=limit is not None)
    atomic_write_json(folder / SUBMISSION_FILE, doc)
    result.submission = doc
    return result


def write_gallery(data: Any, adapter: Any, scores_path: Path, path: Path) -> Path:
    """The bundle's gallery file: the model's maps of the dataset's gallery images
    (:func:`benchmark.gallery.gallery_ids` of the scored ids), recomputed for those images only."""
    from benchmark.maps_figure import compute_maps, fetch_images

    ids = [str(i) for i in records.read_scores(scores_path)["image_id"]]
    chosen = gallery.gallery_ids(data.name, ids)
    images, _, labels = fetch_images(data, chosen, {i: row for row, i in enumerate(ids)})
    return gallery.write_gallery(path, chosen, compute_maps(adapter, images, labels))


def _copy_plugin_export(source: ModelSource, export: Path, model_dir: Path, include_weights: bool) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    atomic_copy_file(source.path, model_dir / "plugin.py")
    atomic_copy_file(export / "architecture.json", model_dir / "architecture.json")
    if include_weights:
        for name in ("weights.safetensors", "model.keras"):
            if (export / name).exists():
                atomic_copy_file(export / name, model_dir / name)


def _copy_weights(source: ModelSource, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.kind == "weights" and Path(source.path).suffix != ".safetensors":
        # a bundle carries safetensors only: convert the (safely read) checkpoint
        from safetensors.torch import save_file

        from model_zoo.weights import extract_state_dict, load_state_dict

        state = extract_state_dict(load_state_dict(source.path), where=str(source.path))
        with atomic_output(dest, suffix=".safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        return
    atomic_copy_file(source.path, dest)


def instructions(folder: Path, doc: dict[str, Any], outcomes: Sequence[runner.ModelOutcome],
                 preprocess: str = "") -> str:
    """The text printed after a submission: scores, the preprocessing used, then what to commit or send."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    size_kb = sum(p.stat().st_size for p in files) / 1024
    lines = [f"Submission bundle written: {folder}/ ({len(files)} files, {size_kb:.0f} kB)"]
    if preprocess:
        lines.append(f"  preprocessing: {preprocess}")
    for o in outcomes:
        r = o.record or {}
        align = r.get("normalized")
        lines.append(f"  {r.get('dataset')}: alignment "
                     + (f"{100 * align:.1f}% of the human ceiling" if align is not None else "undefined (no ceiling)")
                     + f", Spearman {r.get('spearman_mean', float('nan')):.3f}, {r.get('n_images')} images")
    if doc.get("preview"):
        lines.append("  PREVIEW: scored with --limit; the leaderboard accepts full runs only.")
    src = doc["model"]["source"]
    sha = doc["model"].get("weights_sha256")
    if src["kind"] == "timm" and src.get("weights") == "pretrained":
        weights = f"the public timm weights of {src['architecture']} (sha256 {sha or 'unknown'})"
    elif src["kind"] == "timm":
        weights = f"timm {src['architecture']} with seeded random weights (rebuilt identically; digest {sha})"
    elif (folder / MODEL_DIR / "weights.safetensors").exists() or (folder / MODEL_DIR / "model.keras").exists():
        weights = "the weights in model/ of the bundle"
    elif src["kind"] == "plugin":
        weights = "plugin.py in the bundle: build_model() must give the same weights again (sha256 " \
                  f"{sha}), or re-submit with --include-weights"
    else:
        weights = f"your file {src.get('file')} (sha256 {sha}): publish it at a stable URL and give the URL"
    lines += [
        "Next:",
        f"  1. check it:   alignbench leaderboard validate {folder}",
        f"  2. send it:    commit the folder and open a pull request (git add {folder}), or zip the folder",
        "                 and send it to the leaderboard maintainers.",
        f"  Maintainers re-score a random subset of images (alignbench leaderboard verify) from {weights}.",
    ]
    return "\n".join(lines)
