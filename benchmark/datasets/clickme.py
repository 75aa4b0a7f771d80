"""ClickMe TFRecord shards -> batches of (images, human heatmaps, labels, ids), exactly as the paper.

Pipeline (``tf.data``, the paper's own): read shards in order, parse, TF-decode the JPEGs, then per
batch resize images 256->224 and heatmaps 256->64 -> off-centre Gaussian blur -> 224 (the ops in
:mod:`benchmark.datasets.tf_ops`), with parallel decode and prefetch so loading overlaps the consumer.

Two deliberate differences from the paper's loader, both so that every valid image is scored once:
the tail batch is kept (the paper uses ``drop_remainder=True``), and the order is shard by shard,
record by record (the paper interleaves shards with an AUTOTUNE-dependent cycle). Scores carry
per-image ids (``"<shard stem>:<record index>"``), so order never changes a result.

Bad records (wrong shape, undecodable JPEG, label outside 0..999, all-zero heatmap, missing or
malformed feature, and the same for every participant map) are found once per shard by a
validation scan, cached by the shard's sha256, skipped and reported, by record id, in
:attr:`ClickMeDataset.skips`: every consumer (scores, baselines, ceiling, ``data info``) sees the
same valid records. An all-zero heatmap is the ClickMe convention for "no human map" (ImageNet
images without clicks), hence a skip; a heatmap constant at any other value is kept and yields an
exactly constant map, whose Spearman rho is undefined (:func:`benchmark.datasets.tf_ops.keep_constant`).
A truncated, corrupt or empty (0-byte) shard raises :class:`~model_zoo.errors.InvalidInputError`
naming the file, and so does a dataset with no valid record at all.

Prepared copy: the first full pass over a shard also writes it, preprocessed, to the cache, and
later passes read that copy (:mod:`benchmark.datasets.prepared`; same batches, bit for bit).
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from benchmark.datasets import prepared as prepared_copy
from benchmark.datasets import tf_ops
from benchmark.datasets.batch import Batch, SkipReport
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_json, cache_dir, sha256_file

__all__ = ["Batch", "ClickMeDataset", "ShardIndex", "SkipReport", "load_clickme", "preprocess_heatmaps",
           "preprocess_images", "record_id", "shard_index"]

NUM_CLASSES = 1000
INDEX_VERSION = 2  # bump when the validation rules change: cached shard indexes are then rebuilt
_REASONS = {1: "wrong shape", 2: "label out of range", 3: "empty heatmap", 4: "wrong participant map shape"}


# --------------------------------------------------------------------------- numpy entry points

def preprocess_heatmaps(h: Any) -> np.ndarray:
    """ClickMe heatmaps (N,256,256) or (N,256,256,1), any real dtype -> (N,224,224) float32.

    The paper's chain: bilinear 256->64, off-centre 10x10 sigma-10 Gaussian with TF 'SAME' zero
    padding, bilinear 64->224 (TF semantics: half-pixel centres, no antialias).
    """
    h = np.asarray(h)
    if h.ndim == 3:
        h = h[..., None]
    if h.ndim != 4 or h.shape[1:] != (tf_ops.IMAGE_SIZE, tf_ops.IMAGE_SIZE, 1):
        raise InvalidInputError(f"heatmaps must have shape (N,256,256) or (N,256,256,1), got {np.shape(h)}")
    return tf_ops.preprocess_heatmaps_tf(h.astype(np.float32, copy=False)).numpy()


def preprocess_images(x: Any) -> np.ndarray:
    """ClickMe images (N,256,256,3) in [0,255] -> (N,224,224,3) float32 (bilinear, no antialias, no crop)."""
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (tf_ops.IMAGE_SIZE, tf_ops.IMAGE_SIZE, 3):
        raise InvalidInputError(f"images must have shape (N,256,256,3), got {x.shape}")
    return tf_ops.preprocess_images_tf(x.astype(np.float32, copy=False)).numpy()


# --------------------------------------------------------------------------- validation results

@dataclass(frozen=True)
class ShardIndex:
    """What the validation scan learned about one shard (cached by its sha256)."""

    records: int
    invalid: tuple[tuple[int, str], ...]  # (record index, reason)
    min_participants: int  # fewest participant maps on a valid record (0: some have none)

    @property
    def n_valid(self) -> int:
        return self.records - len(self.invalid)

    @property
    def valid_mask(self) -> np.ndarray:
        mask = np.ones(self.records, dtype=bool)
        mask[[i for i, _ in self.invalid]] = False
        return mask


# --------------------------------------------------------------------------- the dataset

class ClickMeDataset:
    """A ClickMe-format dataset: a list of TFRecord shards, local or fetched on demand.

    Use :func:`benchmark.datasets.get_dataset` rather than the constructor. ``fetch`` (when given)
    returns the local shard paths, downloading them if needed. ``prepared``: read and write the
    prepared copy (default: ``$ALIGNBENCH_PREPARED``, on; see :mod:`benchmark.datasets.prepared`).
    """

    task = "maps"  # the task kind that scores it (benchmark.tasks)

    def __init__(self, name: str, *, paths: Sequence[str | Path] | None = None, fetch: Any = None,
                 synthetic: bool = False, description: str = "", prepared: bool | None = None) -> None:
        if (paths is None) == (fetch is None):
            raise ValueError("give exactly one of paths, fetch")
        self.name = name
        self.synthetic = synthetic
        self.description = description
        self.prepared = prepared
        self._fetch = fetch
        self._files: list[Path] | None = None if paths is None else [Path(p) for p in paths]
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"ClickMeDataset({self.name!r})"

    # -- files and identity
    def files(self) -> list[Path]:
        """Local shard paths, in order (downloaded first when allowed)."""
        if self._files is None:
            self._files = [Path(p) for p in self._fetch()]
        for p in self._files:
            if not p.is_file():
                raise InvalidInputError(f"ClickMe shard {p} does not exist")
            if p.stat().st_size == 0:  # no writer makes a record-less shard on purpose: a failed copy or download
                raise InvalidInputError(f"ClickMe shard {p} is empty (0 bytes): an interrupted download or copy; "
                                        "delete it and fetch it again")
        return list(self._files)

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over (shard name, size, sha256) of each file, in order."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for p in self.files():
                h.update(f"{p.name}\t{p.stat().st_size}\t{_file_sha256(p)}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    # -- validation results
    def _indexes(self, files: Sequence[Path] | None = None) -> list[ShardIndex]:
        return [shard_index(p) for p in (self.files() if files is None else files)]

    def num_images(self) -> int:
        """Number of valid records (the images that will be scored)."""
        return sum(ix.n_valid for ix in self._indexes())

    @property
    def skips(self) -> SkipReport:
        """Every record of the dataset that is left out, with its reason."""
        report = SkipReport()
        for p, ix in zip(self.files(), self._indexes()):
            for i, reason in ix.invalid:
                report.add(reason, record_id(p, i))
        return report

    @property
    def has_participant_maps(self) -> bool:
        """Whether every valid record carries at least two participant maps (a split-half ceiling needs 2)."""
        indexes = [ix for ix in self._indexes() if ix.n_valid]
        return bool(indexes) and all(ix.min_participants >= 2 for ix in indexes)

    def _require_valid(self, files: Sequence[Path], indexes: Sequence[ShardIndex]) -> None:
        if not any(ix.n_valid for ix in indexes):
            n = sum(ix.records for ix in indexes)
            where = f"{len(files)} shard{'s' if len(files) != 1 else ''} in {files[0].parent}" if files else "no shards"
            detail = self.skips.summary() if n else "the shards hold no records"
            raise InvalidInputError(f"dataset {self.name} ({where}) has no valid record: {detail}")

    # -- data
    def batches(self, batch_size: int, *, files: Sequence[Path] | None = None, start: int = 0,
                limit: int | None = None) -> Iterator[Batch]:
        """Batches of valid records in a fixed order (shards in order, then records), tail kept.

        ``start``: valid images to skip first (to resume); ``limit``: at most this many images.
        ``files``: a subset of :meth:`files` (e.g. one scheduler task's shards). Read from the
        prepared copy when every shard involved has one; otherwise through tf.data, and a pass that
        covers whole shards writes their prepared copies on the way.
        """
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        all_files = self.files()
        files = all_files if files is None else [Path(f) for f in files]
        indexes = self._indexes(files)
        self._require_valid(files, indexes)
        plan = _plan(files, indexes, start, limit)
        if plan is None:
            return
        use_prepared = prepared_copy.prepared_enabled(self.prepared) and prepared_copy.fits(self.num_images())
        units = [self._open_unit(files[k], indexes[k]) for k in plan.file_ids] if use_prepared else []
        if use_prepared and all(u is not None for u in units):
            segments = [prepared_copy.Segment(u, lo, hi, _ids(files[k], u.index[lo:hi]))
                        for u, k, (lo, hi) in zip(units, plan.file_ids, plan.rows)]
            yield from prepared_copy.read_batches(segments, batch_size)
            return
        writers = self._writers(files, indexes, plan, units) if use_prepared else {}
        yield from self._tf_batches(files, plan, batch_size, writers)

    def _unit_key(self, path: Path) -> str:
        return prepared_copy.unit_key("clickme-shard", f"sha256={_file_sha256(path)} index=v{INDEX_VERSION}")

    def _open_unit(self, path: Path, ix: ShardIndex) -> prepared_copy.PreparedUnit | None:
        return prepared_copy.open_unit(self._unit_key(path), ix.n_valid, np.flatnonzero(ix.valid_mask))

    def _writers(self, files: Sequence[Path], indexes: Sequence[ShardIndex], plan: "_Plan",
                 units: Sequence[Any]) -> dict[int, prepared_copy.UnitWriter]:
        """Writers for the planned shards that have no prepared copy and are read whole by this pass."""
        out = {}
        for k, (lo, hi), unit in zip(plan.file_ids, plan.rows, units):
            if unit is None and lo == 0 and hi == indexes[k].n_valid:
                w = prepared_copy.UnitWriter.start(self._unit_key(files[k]), hi, f"shard {files[k]}")
                if w is not None:
                    out[k] = w
        return out

    def _tf_batches(self, files: Sequence[Path], plan: "_Plan", batch_size: int,
                    writers: dict[int, prepared_copy.UnitWriter]) -> Iterator[Batch]:
        tf = tf_ops.tf_module()
        stems = [p.stem for p in files]
        ds = _records(tf, plan).map(_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size).map(_preprocess_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        try:
            for k, i, images, heatmaps, labels in _iterate(ds.prefetch(tf.data.AUTOTUNE), self.name, files):
                labels = labels.astype(np.int64)
                for f in np.unique(k) if writers else ():
                    if int(f) in writers:
                        rows = k == f
                        writers[int(f)].add(images[rows], heatmaps[rows], labels[rows], i[rows])
                        if writers[int(f)].complete:
                            writers.pop(int(f)).commit()
                yield Batch(images, heatmaps, labels, [f"{stems[a]}:{b:06d}" for a, b in zip(k, i)])
        finally:
            for w in writers.values():  # the pass stopped early: nothing half-written stays behind
                w.abort()

    def prepare(self) -> dict[str, Any]:
        """Write the prepared copy of every shard that lacks one (one full pass); returns
        :meth:`prepared_status`. Raises :class:`InvalidInputError` when preparing is switched off."""
        if not prepared_copy.prepared_enabled(self.prepared):
            raise InvalidInputError(f"preparing is switched off ({prepared_copy.PREPARED_ENV}=0 or prepared=False)")
        if not prepared_copy.fits(self.num_images()):
            raise InvalidInputError(f"dataset {self.name}: its prepared copy would exceed {prepared_copy.MAX_GB_ENV}="
                                    f"{prepared_copy.max_bytes() / 1e9:g} GB")
        for _ in self.batches(64):
            pass
        return self.prepared_status()

    def prepared_status(self) -> dict[str, Any]:
        """Which shards have an intact prepared copy:
        ``{"enabled", "unit", "units", "prepared", "bytes", "folder"}``."""
        enabled = prepared_copy.prepared_enabled(self.prepared)
        files = self.files()
        have = [u for u in self.prepared_units() if u is not None] if enabled else []
        return {"enabled": enabled, "unit": "shard", "units": len(files), "prepared": len(have),
                "bytes": sum(prepared_copy.unit_bytes(u.path) for u in have), "folder": str(prepared_copy.root())}

    def prepared_units(self) -> list[prepared_copy.PreparedUnit | None]:
        """The intact prepared copy of each shard, in order (None where there is none yet)."""
        return [self._open_unit(p, ix) for p, ix in zip(self.files(), self._indexes())]

    def participant_maps(self, *, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """(id, (P,224,224) float32) per valid record that has participant maps, preprocessed like
        the heatmaps. ``limit`` counts valid records from the start (as in :meth:`batches`)."""
        files = self.files()
        indexes = self._indexes(files)
        self._require_valid(files, indexes)
        plan = _plan(files, indexes, 0, limit)
        if plan is None:
            return
        tf = tf_ops.tf_module()
        stems = [p.stem for p in files]
        ds = _records(tf, plan).map(_decode_participants, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.filter(lambda k, i, maps: tf.shape(maps)[0] > 0)
        ds = ds.map(lambda k, i, maps: (k, i, tf_ops.preprocess_heatmaps_tf(tf.cast(maps, tf.float32))),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for k, i, maps in _iterate(ds.prefetch(tf.data.AUTOTUNE), self.name, files):
            yield f"{stems[int(k)]}:{int(i):06d}", maps

    def human_maps(self, *, limit: int | None = None, batch_size: int = 128) -> tuple[np.ndarray, list[str]]:
        """All (N,224,224) float32 heatmaps and their ids (N x 200 KB of memory)."""
        maps, ids = [], []
        for b in self.batches(batch_size, limit=limit):
            maps.append(b.heatmaps)
            ids.extend(b.ids)
        out = np.concatenate(maps) if maps else np.zeros((0, tf_ops.OUT_SIZE, tf_ops.OUT_SIZE), np.float32)
        return out, ids

    def info(self) -> dict[str, Any]:
        """A JSON-able summary: name, files, image count, fingerprint, skips, participant maps, prepared copy."""
        files = self.files()
        return {"name": self.name, "description": self.description, "synthetic": self.synthetic,
                "files": [str(p) for p in files], "images": self.num_images(),
                "records": sum(ix.records for ix in self._indexes()), "fingerprint": self.fingerprint(),
                "has_participant_maps": self.has_participant_maps, "skips": self.skips.to_dict(),
                "prepared": self.prepared_status()}


def _ids(path: Path, index: np.ndarray) -> list[str]:
    stem = Path(path).stem
    return [f"{stem}:{int(i):06d}" for i in index]


def load_clickme(paths: Sequence[str | Path] | str | Path, batch_size: int, *,
                 with_ids: bool = False) -> Iterator[tuple]:
    """The paper's ``load_clickme`` as numpy: ``(images, heatmaps, labels[, ids])`` per batch, EVERY
    valid image included (no ``drop_remainder``). Skipped records are reported by a warning."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    ds = ClickMeDataset("clickme-local", paths=paths)
    skips = ds.skips
    if skips.total:
        warnings.warn(f"ClickMe: {skips.summary()}", RuntimeWarning, stacklevel=2)
    for b in ds.batches(batch_size):
        yield (b.images, b.heatmaps, b.labels, b.ids) if with_ids else (b.images, b.heatmaps, b.labels)


def record_id(path: Path, index: int) -> str:
    return f"{Path(path).stem}:{index:06d}"


# --------------------------------------------------------------------------- tf.data pieces

def _features(tf: Any) -> dict[str, Any]:
    # no defaults: a record missing a feature fails to parse and is reported, never read as label 0
    return {"image": tf.io.FixedLenFeature([], tf.string), "heatmap": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "participant_heatmaps": tf.io.VarLenFeature(tf.string)}


def _validate(index: Any, raw: Any) -> tuple[Any, Any, Any]:
    """(index, status, participant count) of one record; status 0 = valid, else a key of _REASONS.
    Decode errors raise (the scan turns them into gaps, diagnosed afterwards). Participant maps are
    decoded too: a record whose participant map is bad is skipped as a whole, so that the ceiling and
    the scores rest on the same images."""
    tf = tf_ops.tf_module()
    ex = tf.io.parse_single_example(raw, _features(tf))
    image, heatmap = tf.io.decode_jpeg(ex["image"]), tf.io.decode_jpeg(ex["heatmap"])
    s = tf_ops.IMAGE_SIZE
    shape_ok = (tf.reduce_all(tf.equal(tf.shape(image), [s, s, 3]))
                & tf.reduce_all(tf.equal(tf.shape(heatmap), [s, s, 1])))
    label_ok = (ex["label"] >= 0) & (ex["label"] < NUM_CLASSES)
    jpegs = ex["participant_heatmaps"].values
    shapes = tf.map_fn(lambda b: tf.shape(tf.io.decode_jpeg(b)), jpegs,
                       fn_output_signature=tf.TensorSpec([3], tf.int32))
    participants_ok = tf.reduce_all(tf.equal(shapes, [s, s, 1]))  # True when there are none
    status = tf.where(~shape_ok, 1, tf.where(~label_ok, 2, tf.where(tf.reduce_max(heatmap) == 0, 3,
                                                                    tf.where(~participants_ok, 4, 0))))
    return index, status, tf.size(jpegs)


def _decode(k: Any, i: Any, raw: Any) -> tuple[Any, ...]:
    tf = tf_ops.tf_module()
    ex = tf.io.parse_single_example(raw, _features(tf))
    s = tf_ops.IMAGE_SIZE
    image = tf.reshape(tf.io.decode_jpeg(ex["image"]), (s, s, 3))
    heatmap = tf.reshape(tf.io.decode_jpeg(ex["heatmap"]), (s, s, 1))
    return k, i, image, heatmap, ex["label"]


def _preprocess_batch(k: Any, i: Any, images: Any, heatmaps: Any, labels: Any) -> tuple[Any, ...]:
    tf = tf_ops.tf_module()
    return (k, i, tf_ops.preprocess_images_tf(tf.cast(images, tf.float32)),
            tf_ops.preprocess_heatmaps_tf(tf.cast(heatmaps, tf.float32)), labels)


def _decode_participants(k: Any, i: Any, raw: Any) -> tuple[Any, Any, Any]:
    tf = tf_ops.tf_module()
    jpegs = tf.io.parse_single_example(raw, _features(tf))["participant_heatmaps"].values
    s = tf_ops.IMAGE_SIZE
    maps = tf.map_fn(lambda b: tf.reshape(tf.io.decode_jpeg(b), (s, s, 1)), jpegs,
                     fn_output_signature=tf.TensorSpec((s, s, 1), tf.uint8))
    return k, i, maps


@dataclass(frozen=True)
class _Plan:
    paths: list[str]
    file_ids: list[int]  # index into the dataset's files (for ids)
    offsets: list[int]  # start of each file's slice in keep
    stops: list[int]  # records to read from each file (past the last kept one: not read)
    keep: np.ndarray  # bool, concatenated per-file masks
    rows: list[tuple[int, int]]  # per file: the planned valid records, as (first, stop) among its valid ones


def _plan(files: Sequence[Path], indexes: Sequence[ShardIndex], start: int, limit: int | None) -> _Plan | None:
    """Which records to read: the valid ones, minus the first ``start``, at most ``limit``."""
    if start < 0 or (limit is not None and limit < 0):
        raise InvalidInputError(f"start and limit must be >= 0, got start={start}, limit={limit}")
    to_skip, to_take = start, (np.inf if limit is None else limit)
    paths, file_ids, offsets, stops, masks, rows = [], [], [], [], [], []
    offset = 0
    for k, (p, ix) in enumerate(zip(files, indexes)):
        pos = np.flatnonzero(ix.valid_mask)
        drop = min(to_skip, len(pos))
        to_skip -= drop
        take = pos[drop:drop + int(min(to_take, len(pos) - drop))]
        to_take -= len(take)
        if not len(take):
            continue
        mask = np.zeros(int(take[-1]) + 1, bool)  # records after the last one taken are never read
        mask[take] = True
        paths.append(str(p)), file_ids.append(k), offsets.append(offset), stops.append(len(mask)), masks.append(mask)
        rows.append((drop, drop + len(take)))
        offset += len(mask)
    return _Plan(paths, file_ids, offsets, stops, np.concatenate(masks), rows) if masks else None


def _records(tf: Any, plan: _Plan) -> Any:
    """tf.data of (file id, record index, raw bytes) for the planned records, in order."""
    keep = tf.constant(plan.keep)

    def one_file(path: Any, k: Any, offset: Any, stop: Any) -> Any:
        ds = tf.data.TFRecordDataset(path).take(stop).enumerate()
        return ds.filter(lambda i, raw: tf.gather(keep, offset + i)).map(lambda i, raw: (k, i, raw))

    files = tf.data.Dataset.from_tensor_slices((plan.paths, tf.constant(plan.file_ids, tf.int64),
                                                tf.constant(plan.offsets, tf.int64), tf.constant(plan.stops, tf.int64)))
    return files.flat_map(one_file)


def _iterate(ds: Any, name: str, files: Sequence[Path]) -> Iterator[tuple[np.ndarray, ...]]:
    tf = tf_ops.tf_module()
    it = iter(ds)
    while True:
        try:
            element = next(it)
        except StopIteration:
            return
        except tf.errors.OpError as exc:  # validated shards do not fail: they changed, or a participant map is bad
            first = str(exc.message).strip().splitlines()[0] if exc.message else type(exc).__name__
            raise InvalidInputError(
                f"reading {name} ({len(files)} shards in {files[0].parent}) failed: {type(exc).__name__}: {first}. "
                "A shard was modified after it was validated: run again to validate it anew."
            ) from None
        yield tuple(t.numpy() for t in element)


# --------------------------------------------------------------------------- validation scan + caches

def shard_index(path: str | Path) -> ShardIndex:
    """Validate every record of a shard once (cached by the shard's sha256 under the cache folder).

    Raises :class:`InvalidInputError` naming the file when the shard itself is truncated or corrupt.
    """
    path = Path(path)
    digest = _file_sha256(path)
    if digest in _INDEXES:
        return _INDEXES[digest]
    cached = cache_dir("clickme-index", f"v{INDEX_VERSION}-{digest}.json")
    ix = None
    if cached.is_file():
        try:
            d = json.loads(cached.read_text())
            ix = ShardIndex(d["records"], tuple((int(i), str(r)) for i, r in d["invalid"]), d["min_participants"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry: rebuild it
    if ix is None:
        ix = _scan(path)
        atomic_write_json(cached, {"file": path.name, "records": ix.records, "invalid": [list(x) for x in ix.invalid],
                                   "min_participants": ix.min_participants, "version": INDEX_VERSION})
    _INDEXES[digest] = ix
    return ix


_INDEXES: dict[str, ShardIndex] = {}  # shard sha256 -> its index, this process (content-addressed)
_HASHES: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime, inode) -> sha256, this process


def _scan(path: Path) -> ShardIndex:
    tf = tf_ops.tf_module()
    try:  # read the raw records first: tf.data's ignore_errors below would hide a corrupt shard
        n = int(tf.data.TFRecordDataset(str(path)).reduce(np.int64(0), lambda c, _: c + 1))
    except tf.errors.OpError as exc:
        raise InvalidInputError(
            f"{path}: not a readable TFRecord file ({type(exc).__name__}: {str(exc.message).splitlines()[0]}); "
            "it is truncated or corrupt: delete it and download it again"
        ) from None
    ds = tf.data.TFRecordDataset(str(path)).enumerate().map(_validate, num_parallel_calls=tf.data.AUTOTUNE,
                                                             deterministic=True)
    seen: dict[int, str] = {}
    min_participants: int | None = None
    for idx, status, n_part in ds.ignore_errors().batch(1024).as_numpy_iterator():
        for i, s, q in zip(idx.tolist(), status.tolist(), n_part.tolist()):
            seen[i] = _REASONS.get(s, "")
            if not s:
                min_participants = q if min_participants is None else min(min_participants, q)
    invalid = {i: r for i, r in seen.items() if r}
    gaps = set(range(n)) - set(seen)
    if gaps:  # records whose parsing or decoding raised: find out why, one by one (rare)
        for i, raw in tf.data.TFRecordDataset(str(path)).enumerate().as_numpy_iterator():
            if i in gaps:
                invalid[int(i)] = _diagnose(raw)
    return ShardIndex(n, tuple(sorted(invalid.items())), min_participants or 0)


def _diagnose(raw: bytes) -> str:
    tf = tf_ops.tf_module()
    try:
        ex = tf.train.Example.FromString(raw)
    except Exception:  # protobuf's DecodeError
        return "unparsable record"
    feats = ex.features.feature
    for key, kind in (("image", "bytes_list"), ("heatmap", "bytes_list"), ("label", "int64_list")):
        if key not in feats or feats[key].WhichOneof("kind") != kind or len(getattr(feats[key], kind).value) != 1:
            return "missing or malformed feature"
    for key in ("image", "heatmap"):
        try:
            tf.io.decode_jpeg(feats[key].bytes_list.value[0])
        except tf.errors.OpError:
            return "undecodable JPEG"
    if "participant_heatmaps" in feats:
        if feats["participant_heatmaps"].WhichOneof("kind") != "bytes_list":
            return "missing or malformed feature"
        for jpeg in feats["participant_heatmaps"].bytes_list.value:
            try:
                tf.io.decode_jpeg(jpeg)
            except tf.errors.OpError:
                return "undecodable participant map"
    return "unparsable record"


def _file_sha256(path: Path) -> str:
    """sha256 of a file, memoised in the cache by (absolute path, size, mtime)."""
    memo_path = cache_dir("file-hashes.json")
    st = path.stat()
    key, stamp = str(path.resolve()), [st.st_size, st.st_mtime_ns]
    here = (key, st.st_size, st.st_mtime_ns, st.st_ino)
    if here in _HASHES:  # the cache file grows with every file ever hashed: read it once per file and process
        return _HASHES[here]
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(key)
    if isinstance(entry, list) and entry[:2] == stamp:
        _HASHES[here] = entry[2]
        return entry[2]
    digest = sha256_file(path)
    memo[key] = stamp + [digest]
    atomic_write_json(memo_path, memo)
    _HASHES[here] = digest
    return digest


def natural_key(path: Path) -> list[Any]:
    """Sort key putting ``val-2`` before ``val-10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]
