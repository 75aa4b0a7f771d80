"""One job: one model on one task -- skip or resume, load, score, write the record, or record a failure.

Every executor runs this same job: the local loop, ``--shard k/n`` (a share of the models) and the
Ray executor (which scores the task's parts on workers and hands the rows back here).

* **Identity.** A record is reused only when everything that defines it matches (:func:`identity`):
  the model id, the weights (and their sha256 when known before loading), the preprocessing, the
  precision, the task, its settings and scoring revision, the dataset fingerprint and ``--limit``.
  A record of the same name computed from *other weights* is a different model under the same id:
  it is not overwritten, the job reports a conflict (``--force`` replaces it).
* **Resume.** Rows are saved in chunks as they are scored (``<results>/<dataset>/.partial/<record
  id>/``, atomic), keyed by the identity; a killed run resumes after its last saved chunk.
* **Failures.** Only loading the model and the model's own computation (:func:`benchmark.tasks.
  model_call`) become a recorded failure, and the run goes on; anything else is a bug in alignbench
  and propagates with its traceback.
"""
from __future__ import annotations

import io
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from benchmark import maps_store, records
from benchmark.provenance import provenance
from benchmark.scores import score_fields
from benchmark.tasks.base import Chunk, ModelFailure, References, ScoringContext, Task
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_bytes, atomic_write_json, sha256_file

log = logging.getLogger(__name__)

PRECISION_TAGS = {"bfloat16": "bf16", "float16": "fp16"}


@dataclass
class ModelOutcome:
    """What happened to one model: ``status`` is ``ok``, ``skipped`` (a matching record exists),
    ``failed`` (recorded with its reason) or ``conflict`` (another model's record has this name)."""

    model: str
    status: str
    record: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


# ----------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class ModelRef:
    """A model as known before loading it: what names its record and decides its identity."""

    target: str  # what the loader is given: a model id or an exported model folder
    model_id: str  # the catalog / registered / folder id
    weights: str  # "pretrained", "random" or "file:<sha256>"
    weights_path: str | None  # the local weights file, for weights="file:..."
    weights_sha256: str | None  # known before loading: the file's, the folder manifest's, a catalog pin
    preprocess: dict[str, Any] | None
    record_id: str
    preprocess_origin: str | None = None  # where the preprocessing came from (catalog, folder, submitter)

    @classmethod
    def resolve(cls, target: str, weights: str = "pretrained", *, tags: Iterable[str] = ()) -> "ModelRef":
        """Resolve ``target`` (a model id or an exported model folder) and ``weights`` ("pretrained",
        "random" or a file path). Raises :class:`UnknownModelError` / :class:`InvalidInputError`."""
        import dataclasses

        from model_zoo.api import MODEL_FOLDER_FILE, get_spec, read_model_folder

        target = str(target)
        if (Path(target) / MODEL_FOLDER_FILE).is_file():
            if weights != "pretrained":
                raise InvalidInputError(f"{target}: an exported model folder carries its own weights; "
                                        "do not combine it with --weights")
            spec, doc = read_model_folder(target)
            sha = str(doc.get("weights_sha256") or "") or None
            tag, path = "pretrained", None
        else:
            spec = get_spec(target)
            sha = spec.weights_sha256 or None
            if weights in ("pretrained", "random"):
                tag, path = weights, None
                sha = sha if weights == "pretrained" else None
            else:
                if not Path(weights).is_file():
                    raise InvalidInputError(f"--weights {weights!r}: expected 'pretrained', 'random' or an existing "
                                            "weights file")
                sha = sha256_file(weights)
                tag, path = f"file:{sha}", str(weights)
        pre = spec.preprocess()
        rid = spec.id + {"pretrained": "", "random": "+random"}.get(tag, f"+custom-{(sha or '')[:12]}")
        rid += "".join(f"+{t}" for t in tags if t)
        return cls(target=target, model_id=spec.id, weights=tag, weights_path=path, weights_sha256=sha,
                   preprocess=dataclasses.asdict(pre) if pre is not None else None,
                   record_id=records.safe_name(rid, "model id"),
                   preprocess_origin="exported model folder" if tag == "pretrained" and sha and spec.meta.get("folder")
                   else "catalog")

    @classmethod
    def plain(cls, model_id: str, weights: str = "pretrained", *, tags: Iterable[str] = (),
              weights_sha256: str | None = None, preprocess: dict[str, Any] | None = None,
              preprocess_origin: str | None = None, record_id: str | None = None) -> "ModelRef":
        """A model outside the catalog, known only to a custom loader (a leaderboard submission, a
        test's stand-in): named by ``record_id``, else by ``model_id`` and the weights and tags."""
        rid = record_id or (str(model_id) + {"pretrained": "", "random": "+random"}.get(weights, "")
                            + "".join(f"+{t}" for t in tags if t))
        return cls(target=str(model_id), model_id=str(model_id), weights=weights, weights_path=None,
                   weights_sha256=weights_sha256, preprocess=preprocess, record_id=records.safe_name(rid, "model id"),
                   preprocess_origin=preprocess_origin)

    @property
    def load_weights(self) -> str:
        """The ``weights=`` argument of :func:`model_zoo.load`."""
        return self.weights_path or ("pretrained" if self.weights.startswith("file:") else self.weights)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; other values as given."""
    if device != "auto":
        return device
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def identity(task: Task, model: ModelRef, *, precision: str, limit: int | None,
             fast_path: str = "eager") -> dict[str, Any]:
    """Everything that defines a model's record on ``task`` (compared in full before reusing it).
    A fast path other than ``eager`` reorders float32 arithmetic (maps agree to rounding, not bit
    for bit), so it is part of the identity; ``eager`` adds nothing (older records stay valid)."""
    out = {"task": task.kind, "revision": task.revision, "dataset_fingerprint": task.fingerprint(),
           "settings": task.settings(), "model_id": model.model_id, "weights": model.weights,
           "weights_sha256": model.weights_sha256, "preprocess": model.preprocess, "precision": precision,
           "limit": limit}
    if fast_path != "eager":
        out["fast_path"] = fast_path
    return out


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ----------------------------------------------------------------------------------- partial rows
class PartialRows:
    """Chunks of rows of one job in progress, saved atomically under ``folder`` and valid only for
    the identity they were computed under (a folder of another identity is discarded)."""

    def __init__(self, folder: Path, key: Mapping[str, Any], columns: tuple[str, ...], *, compressed: bool = False):
        self.folder, self.columns, self.compressed = folder, columns, compressed
        meta_path = folder / "meta.json"
        if folder.exists():
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                old = None
            if old != _json(key):
                log.warning("discarding partial results in %s: they were computed for another identity", folder)
                shutil.rmtree(folder)
        if not folder.exists():
            atomic_write_json(meta_path, _json(key))

    def chunks(self) -> dict[str, Chunk]:
        """Every readable chunk, by name (an unreadable one is left out: it will be recomputed)."""
        out = {}
        for name in self.lengths():
            chunk = self.load(name)
            if chunk is not None:
                out[name] = chunk
        return out

    def lengths(self) -> dict[str, int]:
        """The number of rows of every readable chunk, by name, reading only its first column."""
        out = {}
        for path in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(path, allow_pickle=False) as data:
                    out[path.stem[len("chunk-"):]] = len(data[f"col.{self.columns[0]}"])
            except (OSError, ValueError, KeyError, EOFError):
                log.warning("ignoring unreadable chunk %s (it will be recomputed)", path)
        return out

    def load(self, name: str) -> Chunk | None:
        """The chunk ``name``, or None when it cannot be read."""
        path = self.folder / f"chunk-{name}.npz"
        try:
            with np.load(path, allow_pickle=False) as data:
                cols = {k: data[f"col.{k}"] for k in self.columns}
                extras = json.loads(str(data["__extras__"])) if "__extras__" in data else {}
        except (OSError, ValueError, KeyError, EOFError):
            log.warning("ignoring unreadable chunk %s (it will be recomputed)", path)
            return None
        return Chunk(cols, extras)

    def save(self, name: str, chunk: Chunk) -> None:
        buf = io.BytesIO()
        # prefixed: a column may be called "file", which is np.savez's own argument
        arrays = {f"col.{k}": np.asarray(chunk.columns[k]) for k in self.columns}
        save = np.savez_compressed if self.compressed else np.savez
        save(buf, **arrays, __extras__=np.asarray(json.dumps(_json(chunk.extras))))
        atomic_write_bytes(self.folder / f"chunk-{name}.npz", buf.getvalue())

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def rows_prefix(chunks: Mapping[str, Chunk | int]) -> tuple[int, list[str]]:
    """How many rows from 0 the ``rows-<start>`` chunks (or their lengths) cover contiguously, and
    those chunks' names."""
    starts = {}
    for name, chunk in chunks.items():
        kind, _, start = name.partition("-")
        if kind == "rows" and start.isdigit():
            starts[int(start)] = (name, chunk if isinstance(chunk, int) else len(chunk))
    covered, used = 0, []
    while covered in starts and starts[covered][1]:
        name, n = starts[covered]
        used.append(name)
        covered += n
    return covered, used


def concat(chunks: list[Chunk], columns: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """All rows of ``chunks`` in order, and their extras merged."""
    cols = {k: np.concatenate([np.asarray(c.columns[k]) for c in chunks]) if chunks else np.zeros(0)
            for k in columns}
    extras: dict[str, Any] = {}
    for c in chunks:
        extras.update(c.extras)
    return cols, extras


# ----------------------------------------------------------------------------------- the job
@dataclass
class JobConfig:
    """The run settings a job needs (a subset of :class:`benchmark.runner.RunConfig`)."""

    results_dir: Path
    weights: str = "pretrained"
    device: str = "cpu"
    precision: str = "float32"
    batch_size: int = 32
    limit: int | None = None
    force: bool = False
    save_maps: bool = False  # also keep every image's map (benchmark.maps_store), for tasks that have maps
    progress: Callable[[str, int, int], Callable[[int], Any]] | None = None  # (label, total, done) -> update(n)
    options: Mapping[str, Any] = field(default_factory=dict)
    fast_path: str = "eager"  # torch models: model_zoo.adapters.torch_adapter.FAST_PATHS


class Job:
    """One model on one task (module docstring). ``loader(target, weights=, device=, precision=)``
    builds the adapter (default :func:`model_zoo.load`)."""

    def __init__(self, task: Task, target: str | ModelRef, config: JobConfig, *, references: References,
                 loader: Callable[..., Any] | None = None, shared: dict[str, Any] | None = None) -> None:
        self.task, self.config, self.references = task, config, references
        self.loader = loader
        self.shared = shared if shared is not None else {}
        self.model = target if isinstance(target, ModelRef) else self._resolve(target)
        self.identity = identity(task, self.model, precision=config.precision, limit=config.limit,
                                 fast_path=config.fast_path)
        self.record_path = records.record_path(config.results_dir, task.name, self.model.record_id)
        self.scores_path = records.scores_path(config.results_dir, task.name, self.model.record_id)

    def _resolve(self, target: str) -> ModelRef:
        from model_zoo.errors import UnknownModelError

        try:
            return ModelRef.resolve(target, self.config.weights, tags=self._tags())
        except UnknownModelError:
            if self.loader is None:
                raise
            # a model only the given loader knows (a leaderboard submission, a test's stand-in)
            return ModelRef.plain(target, self.config.weights, tags=self._tags())

    def _tags(self) -> list[str]:
        tags = list(getattr(self.task, "record_tags", lambda: [])())
        tags.append(PRECISION_TAGS.get(self.config.precision, ""))
        return tags

    @property
    def record_id(self) -> str:
        return self.model.record_id

    # -- before any work
    def existing(self) -> ModelOutcome | None:
        """The outcome without work: ``skipped`` for a matching record, ``conflict`` for another
        model's; None when the job must run (no record, ``force``, or a stale record)."""
        if self.config.force or not self.record_path.exists():
            return None
        try:
            old = records.read_record(self.record_path)
        except InvalidInputError as exc:
            log.warning("%s; recomputing", exc)
            return None
        if old.get("status") == "ok" and old.get("identity") == _json(self.identity):
            if not self.config.save_maps or maps_store.store_matches(
                    self.config.results_dir, self.task.name, self.record_id, self.identity):
                return ModelOutcome(self.record_id, "skipped", record=old)
            return None  # the scores are there but not the maps --save-maps asks for: score again
        mine, theirs = self.model.weights_sha256, old.get("weights_sha256")
        if (mine and theirs and mine != theirs and old.get("status") == "ok"
                and old.get("model_id") == self.model.model_id):
            message = (f"{self.record_path} holds the scores of another model with the same id "
                       f"{self.model.model_id!r} (weights sha256 {theirs[:12]}..., this one's {mine[:12]}...): "
                       "not overwritten; pass --force to replace it, or use another --results folder")
            return ModelOutcome(self.record_id, "conflict", record=old, error=message)
        return None

    def partial(self) -> PartialRows:
        return PartialRows(self.record_path.parent / ".partial" / self.record_id, self.identity, self.task.columns)

    def maps_partial(self) -> PartialRows | None:
        """The saved maps of this job in progress (``save_maps``), else None."""
        if not self.config.save_maps:
            return None
        folder = maps_store.partial_folder(self.config.results_dir, self.task.name, self.record_id)
        return PartialRows(folder, self.identity, maps_store.COLUMNS, compressed=True)

    # -- the whole job, in this process
    def run(self) -> ModelOutcome:
        done = self.existing()
        if done is not None:
            return done
        started = time.perf_counter()
        partial = self.partial()
        chunks = partial.chunks()
        maps = self.maps_partial()
        if maps is not None:  # resume only where the maps were saved too (an earlier run may not have saved them)
            saved = maps.lengths()
            chunks = {name: c for name, c in chunks.items() if saved.get(name) == len(c)}
        covered, used = rows_prefix(chunks)
        kept = [chunks[name] for name in used]
        total = self.task.rows(self.config.limit)
        try:
            adapter = self.load()
        except ModelFailure as exc:
            return self.failed(str(exc), started)
        progress = (self.config.progress or (lambda label, n, d: (lambda k: None)))(self.record_id, total, covered)
        ctx = ScoringContext(model_id=self.record_id, batch_size=self.config.batch_size, limit=self.config.limit,
                             start=covered, progress=progress, shared=self.shared, options=self.config.options)
        try:
            for chunk in self.task.score(adapter, ctx):
                if maps is not None:  # before the rows: saved rows always have their maps saved
                    maps.save(f"rows-{covered:09d}", Chunk({"image_id": chunk.columns["image_id"],
                                                            "maps": chunk.arrays["maps"]}))
                partial.save(f"rows-{covered:09d}", chunk)
                kept.append(chunk)
                covered += len(chunk)
        except ModelFailure as exc:
            return self.failed(str(exc), started)
        columns, extras = concat(kept, self.task.columns)
        if maps is not None:
            self.write_maps(maps, columns["image_id"])
        return self.finish(columns, extras, adapter=adapter, started=started, partial=partial)

    def write_maps(self, maps: PartialRows, image_ids: Any, names: Sequence[str] | None = None) -> None:
        """Assemble the saved chunks into the model's maps file (before its record is written).

        ``names``: the saved chunks in row order (default: the ``rows-<start>`` chunks from row 0);
        rows past ``len(image_ids)`` (a ``--limit`` that cut the last of several parts) are left out."""
        used = rows_prefix(maps.lengths())[1] if names is None else list(names)
        path = maps_store.store_path(self.config.results_dir, self.task.name, self.record_id)

        def loaded() -> Iterator[dict[str, Any]]:  # one chunk in memory at a time
            row = 0
            for name in used:
                chunk = maps.load(name)
                cols = chunk.columns if chunk is not None else {"image_id": [], "maps": []}
                take = max(0, min(len(cols["image_id"]), len(image_ids) - row))
                yield {k: v[:take] for k, v in cols.items()}
                row += take

        maps_store.write_store(path, self.identity, loaded(), image_ids)
        maps.discard()

    def load(self) -> Any:
        """The model's adapter; any error while loading is the model's failure."""
        import model_zoo

        loader = self.loader or model_zoo.load
        try:
            adapter = loader(self.model.target, weights=self.model.load_weights, device=self.config.device,
                             precision=self.config.precision)
        except Exception as exc:  # noqa: BLE001 - loading a model: whatever it raised is the model's failure
            raise ModelFailure(f"{type(exc).__name__}: {exc}") from exc
        if self.config.fast_path != "eager":
            if not hasattr(adapter, "set_fast_path"):
                raise ModelFailure(f"--fast-path {self.config.fast_path}: only PyTorch models have fast paths; "
                                   f"{self.record_id} is {getattr(adapter, 'framework', type(adapter).__name__)}")
            try:
                adapter.set_fast_path(self.config.fast_path)
            except InvalidInputError as exc:  # e.g. a network torch.fx cannot trace has no fused path
                raise ModelFailure(str(exc)) from exc
        return adapter

    # -- writing
    def failed(self, reason: str, started: float) -> ModelOutcome:
        log.error("model %s failed: %s", self.record_id, reason)
        record = {**self._common(), "status": "failed", "failure": reason, "n_images": 0,
                  **score_fields(None, score_name=self.task.score_name, n=0),
                  "seconds": round(time.perf_counter() - started, 3), "provenance": provenance(device=self.config.device)}
        records.write_record(self.record_path, record)
        return ModelOutcome(self.record_id, "failed", record=record, error=reason,
                            seconds=time.perf_counter() - started)

    def finish(self, columns: dict[str, np.ndarray], extras: Mapping[str, Any], *, adapter: Any,
               started: float, partial: PartialRows | None = None, device: str | None = None) -> ModelOutcome:
        """Write the scores file and the record of a completed job."""
        table = self.task.scores_table(columns)
        sha = records.write_columns(self.scores_path, table)
        result = self.task.summarize(columns, extras, self.references)
        record = {
            **self._common(), **spec_fields(adapter, self.record_id, self.model.weights),
            **self.task.model_fields(adapter), "status": "ok",
            "weights_sha256": getattr(adapter, "weights_sha256", None) or self.model.weights_sha256, **result,
            "scores_file": self.scores_path.name, "scores_sha256": sha,
            "seconds": round(time.perf_counter() - started, 3),
            "provenance": provenance(device=device or self.config.device, dataset_skips=_skips(self.task.data)),
        }
        records.write_record(self.record_path, record)
        if partial is not None:
            partial.discard()
        return ModelOutcome(self.record_id, "ok", record=record, seconds=record["seconds"])

    def _common(self) -> dict[str, Any]:
        return {"kind": "model", "task": self.task.kind, "dataset": self.task.name,
                "dataset_fingerprint": self.task.fingerprint(), "dataset_synthetic": self.task.synthetic,
                "model": self.record_id, "model_id": self.model.model_id, "weights": self.model.weights,
                "preprocess": self.model.preprocess, "preprocess_origin": self.model.preprocess_origin,
                "precision": self.config.precision, "fast_path": self.config.fast_path, "limit": self.config.limit,
                "identity": _json(self.identity)}


def spec_fields(adapter: Any, record_id: str, weights: str = "pretrained") -> dict[str, Any]:
    """Catalog fields of the record. A catalog top-1 belongs to the published weights only: an
    untrained control or a user's own weights file gets ``top1_published = None``, unless the spec
    says its top-1 describes the very weights scored (``top1_describes_weights``: a submission's claim)."""
    spec = getattr(adapter, "spec", None)
    fields = {"display_name": record_id, "family": None, "harmonized": None,
              "framework": getattr(adapter, "framework", None), "top1_published": None}
    if spec is not None:
        published = weights == "pretrained" or bool(getattr(spec, "top1_describes_weights", False))
        fields.update(
            display_name=getattr(spec, "display_name", record_id),
            family=getattr(spec, "family", None),
            harmonized=getattr(spec, "harmonized", None),
            top1_published=getattr(spec, "top1", None) if published else None,
            top1_source=getattr(spec, "top1_source", None) if published else None,
            base_model=getattr(spec, "base_model", None),
        )
    return fields


def _skips(data: Any) -> dict[str, Any]:
    skips = getattr(data, "skips", None)
    to_dict = getattr(skips, "to_dict", None)
    return to_dict() if callable(to_dict) else {}
