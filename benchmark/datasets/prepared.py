"""Prepared datasets: the paper's preprocessing done once, then read as memory-mapped arrays.

Decoding the JPEGs, resizing and blurring costs every model of a run the same data pass again
(about 190-300 images/s on 2 CPU cores, far below what a GPU consumes). So the first full pass over
a *unit* of a dataset (a ClickMe shard, a Clicktionary release) also writes, once, what that pass
handed out into ``cache_dir("prepared", <key>)``; every later pass, by any model, run or process,
reads it back (``bench/bench_prepared.py`` prints the speed-up).

What is stored, per valid record, in the unit's row order:

* ``images.npy``   float32 (n,224,224,3): the batches' images, bit for bit.
* ``heatmaps.npy`` float32 (n,224,224): the blurred human maps, bit for bit.
* ``ranks.npy``    float32 (n,50176): their average ranks (:func:`benchmark.ranking.rank_maps`),
  so Spearman never ranks a human map again (:attr:`Batch.human_ranks`).
* ``columns.npz``  labels, record index, the ranks' sums of squares and undefined flags.
* ``meta.json``    the key, the row count, and size, sha256 and mtime of every file.

Why float32 224x224 images and not uint8: the paper's chain is decode (uint8 256x256) -> cast ->
bilinear 256->224, and the bilinear resize yields non-integer values (almost every pixel), so no
uint8 224x224 array reproduces it; "uint8 224x224 before the float cast" does not exist. Exact
alternatives are the decoded uint8 256x256 images (and heatmaps) with TF's resize (and blur) redone
per batch: 3x less disk, but that per-batch work alone runs at about 2,400 images/s for the images
and 2,000 for the heatmap chain on 2 cores (``bench/bench_prepared.py`` measures it), against
about 16,000 for copying the float32 rows, and it needs TensorFlow in every consumer. Stored
float32 rows are exact by construction, need no TensorFlow to read, and keep the loader far ahead
of any model. Cost: about 1 MB of disk per image (the ClickMe validation set: tens of GB).

Identity and integrity:

* The key is a sha256 over the unit's source digest (a shard's sha256 with the validation rules'
  version; a Clicktionary release's fingerprint), :data:`PREPARED_REVISION` (bump it with any
  change to what the chain yields), the TensorFlow version, the CPU's instruction-set flags and
  ``TF_ENABLE_ONEDNN_OPTS`` (oneDNN picks its convolution kernels per CPU, so the blur's last bits
  may differ between machines sharing one cache). A changed shard has another key: it is prepared
  anew and the old copy is never read.
* A unit is written into a temporary folder and renamed into place when complete, so a killed
  pass leaves nothing half-written behind under the key; concurrent writers of one unit are safe
  (the first rename wins, the same bytes either way).
* Opening checks every file's size and mtime against ``meta.json``; a truncated file, or one whose
  bytes no longer match its sha256 (checked whenever its mtime changed), makes the unit invalid:
  it is removed and written again by the next full pass.

Reading: batches are copied out of the memory maps by background threads, a few batches ahead
of the consumer (numpy's copies release the GIL), so loading overlaps the model's compute.

Off switch: ``ALIGNBENCH_PREPARED=0`` in the environment, or ``prepared=False`` on
:func:`benchmark.datasets.get_dataset` / the dataset classes. Nothing is prepared when the dataset
would take more than ``ALIGNBENCH_PREPARED_MAX_GB`` (default 100) or when the disk would be left
with less than 1 GiB; the readers then stay on the tf.data path, which yields the same batches.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import secrets
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from benchmark.datasets.batch import Batch
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_json, cache_dir, create_temp_folder, sha256_file

log = logging.getLogger(__name__)

#: Bump with every change of what the preprocessing chain yields (tf_ops, decoding, the
#: constant-map rule, rank_maps): every prepared copy is then written again.
PREPARED_REVISION = 1
PREPARED_ENV = "ALIGNBENCH_PREPARED"
MAX_GB_ENV = "ALIGNBENCH_PREPARED_MAX_GB"
DEFAULT_MAX_GB = 100.0
RESERVE_BYTES = 1 << 30  # never fill the disk beyond this
SIDE = 224
ARRAYS = {  # name -> (dtype, shape of one row)
    "images": (np.float32, (SIDE, SIDE, 3)),
    "heatmaps": (np.float32, (SIDE, SIDE)),
    "ranks": (np.float32, (SIDE * SIDE,)),
}
COLUMNS = {"labels": np.int64, "index": np.int64, "ss": np.float64, "undefined": np.bool_}
FILES = tuple(f"{name}.npy" for name in ARRAYS) + ("columns.npz",)
BYTES_PER_ROW = sum(np.dtype(d).itemsize * int(np.prod(s)) for d, s in ARRAYS.values())
_TRUE, _FALSE = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")


# --------------------------------------------------------------------------- switches and keys

def prepared_enabled(prepared: bool | None = None) -> bool:
    """``prepared`` if given, else ``$ALIGNBENCH_PREPARED`` (default on; 0/false/no/off turn it off)."""
    if prepared is not None:
        return bool(prepared)
    value = os.environ.get(PREPARED_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInputError(f"{PREPARED_ENV}={value!r}: expected 1 (prepare datasets, the default) or 0")


def max_bytes() -> float:
    """Largest dataset (bytes of prepared copy) that is prepared: ``$ALIGNBENCH_PREPARED_MAX_GB``."""
    value = os.environ.get(MAX_GB_ENV, "").strip()
    try:
        gb = float(value) if value else DEFAULT_MAX_GB
    except ValueError:
        gb = -1.0
    if not gb >= 0:
        raise InvalidInputError(f"{MAX_GB_ENV}={value!r}: expected a number of gigabytes >= 0")
    return gb * 1e9


def root() -> Path:
    """Folder of all prepared units (``$ALIGNBENCH_CACHE/prepared``)."""
    return cache_dir("prepared")


@lru_cache(maxsize=1)
def environment() -> tuple[str, ...]:
    """What besides the data and the code decides the chain's bits (see the module docstring)."""
    return (f"tensorflow={_tensorflow_version()}", f"machine={platform.machine()}", f"isa={_isa_digest()}",
            f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', '')}")


def _tensorflow_version() -> str:
    import importlib.metadata as md
    import sys

    module = sys.modules.get("tensorflow")
    if module is not None:
        return str(module.__version__)
    for dist in ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel", "tf-nightly"):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    names = md.packages_distributions().get("tensorflow") or []
    return md.version(names[0]) if names else "absent"


def _isa_digest() -> str:
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1] for line in fh if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = platform.processor()
    return hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:16]


def unit_key(kind: str, source: str) -> str:
    """Hex key of one unit: (kind, source digest, revision, environment)."""
    text = "\n".join((kind, source, f"revision={PREPARED_REVISION}", *environment()))
    return hashlib.sha256(text.encode()).hexdigest()


def fits(n_rows_total: int) -> bool:
    """Whether a dataset of ``n_rows_total`` valid records may be prepared (size cap, free disk)."""
    need = n_rows_total * BYTES_PER_ROW
    if need > max_bytes():
        log.info("not preparing a dataset of %d images (%.1f GB > %s=%g)", n_rows_total, need / 1e9, MAX_GB_ENV,
                 max_bytes() / 1e9)
        return False
    return True


def _free_bytes() -> int:
    folder = root()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


# --------------------------------------------------------------------------- reading

@dataclass(frozen=True, eq=False)
class PreparedUnit:
    """One complete, checked unit, memory-mapped. Row ``r`` is the unit's ``r``-th valid record."""

    path: Path
    images: np.ndarray  # memmap float32 (n,224,224,3)
    heatmaps: np.ndarray  # memmap float32 (n,224,224)
    ranks: np.ndarray  # memmap float32 (n,50176)
    labels: np.ndarray  # int64 (n,)
    index: np.ndarray  # int64 (n,): record index in the source
    ss: np.ndarray  # float64 (n,)
    undefined: np.ndarray  # bool (n,)

    def __len__(self) -> int:
        return len(self.labels)


def open_unit(key: str, n_rows: int, index: np.ndarray | None = None) -> PreparedUnit | None:
    """The unit ``key`` if it is complete and intact with ``n_rows`` rows (and record indices equal to
    ``index`` when given); None if it does not exist. A damaged one is removed (and None returned)."""
    folder = root() / key
    try:
        stamps = _stamps(folder)
    except OSError:
        stamps = None
    if stamps is None:
        if folder.exists():
            log.warning("prepared copy %s is incomplete; it is removed and will be written again", folder)
            discard(folder)
        return None
    known = _OPENED.get(folder)
    if known is not None and known[0] == stamps and (index is None or np.array_equal(known[1].index, index)):
        return known[1]  # unchanged since this process checked it: keep its memory maps (no new page faults)
    try:
        unit = _open_checked(folder, key, n_rows, index)
    except (OSError, ValueError, KeyError, TypeError, _Damaged) as exc:
        log.warning("prepared copy %s is damaged (%s); it is removed and will be written again", folder, exc)
        _OPENED.pop(folder, None)
        discard(folder)
        return None
    if len(_OPENED) >= _MAX_OPENED:
        _OPENED.pop(next(iter(_OPENED)))
    _OPENED[folder] = (_stamps(folder), unit)
    return unit


_OPENED: dict[Path, tuple[tuple, "PreparedUnit"]] = {}  # units checked by this process, with their stamps
_MAX_OPENED = 4096


def _stamps(folder: Path) -> tuple | None:
    """(size, mtime, inode) of every file of a unit, or None if the folder is not a complete unit."""
    if not folder.is_dir():
        return None
    out = []
    for name in ("meta.json", *FILES):
        try:
            st = (folder / name).stat()
        except FileNotFoundError:
            return None
        out.append((st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


class _Damaged(Exception):
    pass


def _open_checked(folder: Path, key: str, n_rows: int, index: np.ndarray | None) -> PreparedUnit:
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("key") != key or meta.get("revision") != PREPARED_REVISION or meta.get("rows") != n_rows:
        raise _Damaged(f"meta.json describes another unit ({meta.get('rows')} rows, revision {meta.get('revision')})")
    restamp = False
    for name in FILES:
        want, st = meta["files"][name], (folder / name).stat()
        if st.st_size != want["bytes"]:
            raise _Damaged(f"{name} has {st.st_size} bytes, expected {want['bytes']} (truncated or replaced)")
        if st.st_mtime_ns != want["mtime_ns"]:  # touched since it was written: do the bytes still match?
            if sha256_file(folder / name) != want["sha256"]:
                raise _Damaged(f"{name} was modified (sha256 differs)")
            want["mtime_ns"], restamp = st.st_mtime_ns, True
    arrays = {}
    for name, (dtype, shape) in ARRAYS.items():
        a = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        if a.dtype != dtype or a.shape != (n_rows, *shape):
            raise _Damaged(f"{name}.npy holds {a.dtype} {a.shape}, expected {np.dtype(dtype)} {(n_rows, *shape)}")
        arrays[name] = a
    with np.load(folder / "columns.npz", allow_pickle=False) as z:
        cols = {name: z[name] for name in COLUMNS}
    for name, dtype in COLUMNS.items():
        if cols[name].dtype != dtype or cols[name].shape != (n_rows,):
            raise _Damaged(f"columns.npz:{name} holds {cols[name].dtype} {cols[name].shape}")
    if index is not None and not np.array_equal(cols["index"], index):
        raise _Damaged("its record indices differ from the source's valid records")
    if restamp:
        try:
            atomic_write_json(meta_path, meta)  # next time, no hashing
        except OSError:
            pass  # a read-only cache: hashed again next time, still valid
    return PreparedUnit(folder, arrays["images"], arrays["heatmaps"], arrays["ranks"], **cols)


def discard(folder: Path) -> None:
    """Remove a unit folder (renamed aside first, so no reader ever sees it half-deleted)."""
    aside = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.trash")
    try:
        os.replace(folder, aside)
    except OSError:
        return  # already gone (another process discarded it)
    shutil.rmtree(aside, ignore_errors=True)


@dataclass(frozen=True)
class Segment:
    """Rows ``lo:hi`` of ``unit``, handed out with ``ids`` (one per row)."""

    unit: PreparedUnit
    lo: int
    hi: int
    ids: Sequence[str]


def read_batches(segments: Sequence[Segment], batch_size: int, *, prefetch: int | None = None) -> Iterator[Batch]:
    """Batches of ``batch_size`` rows (tail kept) over ``segments`` in order, copied out of the memory
    maps by background threads, up to ``prefetch`` batches ahead (default: one more than the
    threads, ``min(4, CPUs)``; 0: in the caller's thread)."""
    plan = _batch_plan(segments, batch_size)
    workers = max(1, min(4, os.cpu_count() or 1))
    depth = workers + 1 if prefetch is None else prefetch
    if depth <= 0:
        return (_gather(pieces, _allocate(pieces)) for pieces in plan)
    return _prefetched(plan, depth, min(workers, depth))


_Pieces = list  # [(Segment, lo, hi)]: the rows of one batch


def _batch_plan(segments: Sequence[Segment], batch_size: int) -> list[_Pieces]:
    plan: list[_Pieces] = []
    pieces: _Pieces = []
    filled = 0
    for seg in segments:
        at = seg.lo
        while at < seg.hi:
            take = min(batch_size - filled, seg.hi - at)
            pieces.append((seg, at, at + take))
            filled, at = filled + take, at + take
            if filled == batch_size:
                plan.append(pieces)
                pieces, filled = [], 0
    if pieces:
        plan.append(pieces)
    return plan


def _allocate(pieces: _Pieces) -> dict[str, np.ndarray]:
    """Uninitialised output arrays for one batch (the ranks need none when the batch lies in one unit)."""
    b = sum(hi - lo for _, lo, hi in pieces)
    out = {"images": np.empty((b, SIDE, SIDE, 3), np.float32), "heatmaps": np.empty((b, SIDE, SIDE), np.float32)}
    if len(pieces) > 1:
        out["ranks"] = np.empty((b, SIDE * SIDE), np.float32)
    return out


def _gather(pieces: _Pieces, out: dict[str, np.ndarray]) -> Batch:
    """Fill ``out`` with the rows of ``pieces`` and make the batch. Images and heatmaps are copies
    (consumers may write them); the ranks, read only by Spearman, are a view of the memory map
    unless the batch spans two units."""
    from benchmark.ranking import RankedMaps

    pos = 0
    cols: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS if name != "index"}
    ids: list[str] = []
    for seg, lo, hi in pieces:
        u, rows = seg.unit, slice(pos, pos + hi - lo)
        out["images"][rows] = u.images[lo:hi]
        out["heatmaps"][rows] = u.heatmaps[lo:hi]
        if "ranks" in out:
            out["ranks"][rows] = u.ranks[lo:hi]
        for name in cols:
            cols[name].append(getattr(u, name)[lo:hi])
        ids.extend(seg.ids[lo - seg.lo:hi - seg.lo])
        pos += hi - lo
    seg, lo, hi = pieces[0]
    ranks = out["ranks"] if "ranks" in out else seg.unit.ranks[lo:hi]
    labels, ss, undefined = (np.concatenate(cols[name]) for name in ("labels", "ss", "undefined"))
    ranked = RankedMaps(ranks, ss, undefined, (SIDE, SIDE))
    return Batch(out["images"], out["heatmaps"], labels, ids, human_ranks=ranked)


def _prefetched(plan: list[_Pieces], depth: int, workers: int) -> Iterator[Batch]:
    """The batches of ``plan`` in order, each filled by one of ``workers`` threads (numpy's copies
    release the GIL), up to ``depth`` ahead; a worker's error is re-raised here; the work still
    queued is cancelled when the consumer stops early. The output arrays are allocated here, in
    the consumer's thread, which also frees them: glibc then recycles their memory rather than
    mapping (and zero-filling) fresh pages for each batch, as it does for other threads' arenas."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    todo = iter(plan)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alignbench-prepared") as pool:
        pending: deque = deque()

        def submit() -> None:
            pieces = next(todo, None)
            if pieces is not None:
                pending.append(pool.submit(_gather, pieces, _allocate(pieces)))

        for _ in range(depth):
            submit()
        try:
            while pending:
                batch = pending.popleft().result()
                submit()
                yield batch
        finally:
            for future in pending:
                future.cancel()


# --------------------------------------------------------------------------- writing

class UnitWriter:
    """Fills one unit row by row (rows must come in order) in a temporary folder; :meth:`commit`
    renames it into place once all ``n_rows`` rows are in, :meth:`abort` removes it.

    Rows are appended with plain file writes (not a memory map: a full disk is then an ``OSError``,
    not a SIGBUS). A write error abandons the unit with a warning; the pass that feeds it goes on."""

    def __init__(self, key: str, n_rows: int, what: str) -> None:
        self.key, self.n_rows, self.what = key, n_rows, what
        self.final = root() / key
        self.tmp = create_temp_folder(self.final)
        self.filled = 0
        self.failed = False
        self._files: dict = {}
        try:
            for name, (dtype, shape) in ARRAYS.items():
                fh = open(self.tmp / f"{name}.npy", "wb")  # noqa: SIM115 - closed in commit/abort
                self._files[name] = fh
                np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                          "fortran_order": False, "shape": (n_rows, *shape)})
        except BaseException:
            self.abort()
            raise
        self._cols = {name: np.zeros(n_rows, dtype) for name, dtype in COLUMNS.items()}

    @classmethod
    def start(cls, key: str, n_rows: int, what: str) -> "UnitWriter | None":
        """A writer, or None when the disk has no room for it or the cache cannot be written (logged)."""
        need = n_rows * BYTES_PER_ROW + RESERVE_BYTES
        if _free_bytes() < need:
            log.warning("not preparing %s: %.1f GB needed, %.1f GB free under %s", what, need / 1e9,
                        _free_bytes() / 1e9, root())
            return None
        try:
            _remove_leftovers(key)
            return cls(key, n_rows, what)
        except OSError as exc:  # e.g. a read-only shared cache: read the source as before
            log.warning("not preparing %s: cannot write under %s (%s)", what, root(), exc)
            return None

    @property
    def complete(self) -> bool:
        return not self.failed and self.filled == self.n_rows

    def add(self, images: np.ndarray, heatmaps: np.ndarray, labels: np.ndarray, index: np.ndarray) -> None:
        """Append rows: images float32 (k,224,224,3), heatmaps float32 (k,224,224), labels (k,), record
        indices (k,). The heatmaps are ranked here, once."""
        from benchmark.ranking import rank_maps

        if self.failed:
            return
        k = len(labels)
        if self.filled + k > self.n_rows:
            raise InvalidInputError(f"{self.what}: more rows than the {self.n_rows} expected")
        ranked = rank_maps(heatmaps)
        try:
            for name, rows in (("images", images), ("heatmaps", heatmaps), ("ranks", ranked.ranks)):
                self._files[name].write(memoryview(np.ascontiguousarray(rows, ARRAYS[name][0])).cast("B"))
        except OSError as exc:
            self._fail(exc)
            return
        cut = slice(self.filled, self.filled + k)
        for name, values in (("labels", labels), ("index", index), ("ss", ranked.ss), ("undefined", ranked.undefined)):
            self._cols[name][cut] = values
        self.filled += k

    def _fail(self, exc: OSError) -> None:
        log.warning("could not write the prepared copy of %s (%s); the dataset is read without it", self.what, exc)
        self.failed = True
        self.abort()

    def commit(self) -> bool:
        """Finish a complete unit and move it into place; True if this writer's copy is now the unit
        (False: another process finished the same unit first, or writing failed)."""
        if not self.complete:
            raise InvalidInputError(f"{self.what}: {self.filled} of {self.n_rows} rows written, cannot commit")
        try:
            for fh in self._files.values():
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
            self._files.clear()
            with open(self.tmp / "columns.npz", "wb") as fh:
                np.savez(fh, **self._cols)
                fh.flush()
                os.fsync(fh.fileno())
            files = {}
            for name in FILES:
                st = (self.tmp / name).stat()
                files[name] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(self.tmp / name)}
            atomic_write_json(self.tmp / "meta.json", {"key": self.key, "revision": PREPARED_REVISION,
                                                       "rows": self.n_rows, "what": self.what,
                                                       "environment": list(environment()), "files": files})
            if self.final.exists():
                discard(self.final)  # damaged (it was not opened) or a concurrent writer's copy: ours replaces it
            os.replace(self.tmp, self.final)
            return True
        except OSError as exc:
            if self.final.is_dir():  # a concurrent writer renamed the same unit into place first
                shutil.rmtree(self.tmp, ignore_errors=True)
                return False
            self._fail(exc)
            return False

    def abort(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)


STALE_SECONDS = 3600.0  # a temporary unit folder untouched this long belongs to a killed process


def _remove_leftovers(key: str) -> None:
    """Remove temporary folders of ``key`` left by killed writers, and folders set aside for deletion."""
    now = time.time()
    for folder in [*root().glob(f".{key}.*.tmp"), *root().glob(".*.trash")]:
        try:
            newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.iterdir())])
        except OSError:
            continue
        if folder.name.endswith(".trash") or now - newest > STALE_SECONDS:
            shutil.rmtree(folder, ignore_errors=True)


def unit_bytes(folder: Path) -> int:
    """Disk use of a unit folder."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
