"""Clicktionary: the second "where" dataset (200 ImageNet validation images, 100 animal, 100 not).

No public code or file format for the Clicktionary maps exists (paper-notes §3.5), so alignbench
defines the release layout it reads; a release (or a mirror of one) is a folder, or a ``.zip`` /
``.tar.gz`` archive of that folder::

    clicktionary.csv             one row per image: image_id,label,image,map[,participants]
    images/<image_id>.png|.jpg   the photograph, RGB or greyscale, any square size
    maps/<image_id>.png|.npy     its importance map (greyscale PNG, or a 2-D float .npy)
    participants/<image_id>/     optional: one map per participant (same formats)

``label`` is the ImageNet class index (0..999; < 398 is an animal). ``image``, ``map`` and
``participants`` are paths relative to the folder. Images and maps are brought to the ClickMe
storage size (256x256, TF bilinear) and then go through exactly the ClickMe chain
(:func:`benchmark.datasets.clickme.preprocess_images` / ``preprocess_heatmaps``: 224x224 images,
blurred 224x224 maps), so both "where" datasets are scored the same way. That the paper blurred
Clicktionary maps like ClickMe ones is an inference (paper-notes §3.5); ``map_preprocessing=
"resize"`` skips the blur (bilinear 256->224 only).

Ceiling: split-half over participants when the release has 2+ participant maps per image
(``benchmark.baselines.ensure_ceiling`` computes it); otherwise none is known (the paper's value
was not accessible), so alignment is left undefined and the raw Spearman is reported.

Fetching: there is no known official URL. ``mirror`` (or ``$ALIGNBENCH_CLICKTIONARY_URL``) names an
archive URL or a local folder/archive; downloads use :mod:`benchmark.datasets.download` (resume,
size/sha256 checks, offline mode) into ``cache_dir("clicktionary")``.

Rows with a missing or undecodable file (participant maps included), a non-square image or map,
a label outside 0..999 or an all-zero map are skipped and counted, by image id, in
:attr:`ClicktionaryDataset.skips`; a map constant at another value is kept and gives an exactly
constant (undefined) map, as for ClickMe. A malformed ``clicktionary.csv`` raises
:class:`~model_zoo.errors.InvalidInputError` naming the file and column, and so does a release
with no valid row. The first full pass writes a prepared copy of the whole release
(:mod:`benchmark.datasets.prepared`); later passes read it.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from benchmark.datasets import prepared as prepared_copy
from benchmark.datasets.batch import Batch, SkipReport
from model_zoo.errors import DataUnavailableError, InvalidInputError
from model_zoo.fileio import atomic_write_bytes, atomic_write_text, cache_dir, sha256_file

NAME = "clicktionary"
MANIFEST = "clicktionary.csv"
COLUMNS = ("image_id", "label", "image", "map")
STORAGE_SIZE = 256  # ClickMe's stored size; also the paper's psychophysics stimulus size
ANIMAL_CLASSES = 398  # ImageNet indices below this are animals (paper-notes §3.4)
URL_ENV = "ALIGNBENCH_CLICKTIONARY_URL"
SHA256_ENV = "ALIGNBENCH_CLICKTIONARY_SHA256"  # expected sha256 of the archive at URL_ENV (checked when set)
MAP_PREPROCESSING = ("clickme", "resize")
_IMAGE_EXTS = (".png", ".jpg", ".jpeg")
_MAP_EXTS = (".png", ".npy")


@dataclass(frozen=True)
class Item:
    """One valid manifest row (paths absolute)."""

    image_id: str
    label: int
    image: Path
    map: Path
    participants: tuple[Path, ...] = ()

    @property
    def is_animal(self) -> bool:
        return self.label < ANIMAL_CLASSES


# --------------------------------------------------------------------------- decoding

def read_image(path: Path) -> np.ndarray:
    """(H,W,3) uint8 RGB of a PNG/JPEG (greyscale replicated to 3 channels)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def read_map(path: Path) -> np.ndarray:
    """(H,W) float32 importance map of a greyscale PNG (any bit depth) or a 2-D ``.npy``."""
    if path.suffix.lower() == ".npy":
        m = np.load(path, allow_pickle=False)
    else:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ("L", "I", "I;16", "F", "1", "LA"):
                raise InvalidInputError(f"{path}: importance map has mode {im.mode}, expected greyscale")
            m = np.asarray(im.convert("F") if im.mode not in ("LA",) else im.getchannel(0).convert("F"))
    m = np.asarray(m, dtype=np.float32)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise InvalidInputError(f"{path}: importance map must be 2-D, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise InvalidInputError(f"{path}: importance map has NaN or infinite values")
    return m


def resize_to_storage(x: np.ndarray) -> np.ndarray:
    """HWC or HW float32 -> 256x256 (TF bilinear, half-pixel centres, no antialias), float32."""
    from benchmark.datasets import tf_ops

    x = np.asarray(x, dtype=np.float32)
    if x.shape[:2] == (STORAGE_SIZE, STORAGE_SIZE):
        return x
    hwc = x[..., None] if x.ndim == 2 else x
    out = tf_ops.resize_bilinear(hwc, STORAGE_SIZE).numpy()
    return out[..., 0] if x.ndim == 2 else out


# --------------------------------------------------------------------------- the dataset

class ClicktionaryDataset:
    """A Clicktionary release folder behind the ClickMe dataset interface (``batches`` -> ``Batch``).

    ``task = "maps"``: the runner scores it exactly like ClickMe. ``fetch`` (optional) returns the
    release folder, downloading it first when needed.
    """

    task = "maps"

    def __init__(self, root: str | Path | None = None, *, name: str = NAME, fetch: Any = None,
                 map_preprocessing: str = "clickme", description: str = "", prepared: bool | None = None) -> None:
        if (root is None) == (fetch is None):
            raise ValueError("give exactly one of root, fetch")
        if map_preprocessing not in MAP_PREPROCESSING:
            raise InvalidInputError(f"map_preprocessing must be one of {MAP_PREPROCESSING}, got {map_preprocessing!r}")
        self.name = name
        self.description = description or "Clicktionary importance maps (ImageNet validation images)"
        self.map_preprocessing = map_preprocessing
        self.prepared = prepared  # None: $ALIGNBENCH_PREPARED (on)
        self._root = None if root is None else Path(root)
        self._fetch = fetch
        self._items: list[Item] | None = None
        self._skips = SkipReport()
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"ClicktionaryDataset({self.name!r})"

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = Path(self._fetch())
        return self._root

    @property
    def synthetic(self) -> bool:
        return (self.root / "SYNTHETIC").exists()

    # -- index
    def items(self) -> list[Item]:
        """The valid rows, in manifest order (validated once: every file decoded)."""
        if self._items is None:
            self._items, self._skips = _index(self.root)
        return list(self._items)

    def files(self) -> list[Path]:
        """Every file the scores depend on: the manifest, then each valid row's image and map."""
        out = [self.root / MANIFEST]
        for it in self.items():
            out += [it.image, it.map, *it.participants]
        return out

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over (relative path, sha256) of :meth:`files`, plus the map preprocessing."""
        if self._fingerprint is None:
            h = hashlib.sha256(f"map_preprocessing={self.map_preprocessing}\n".encode())
            for p in self.files():
                h.update(f"{p.relative_to(self.root).as_posix()}\t{sha256_file(p)}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    def num_images(self) -> int:
        return len(self.items())

    @property
    def skips(self) -> SkipReport:
        self.items()
        return self._skips

    @property
    def has_participant_maps(self) -> bool:
        """Whether every valid image has 2+ participant maps (needed for a split-half ceiling)."""
        items = self.items()
        return bool(items) and all(len(it.participants) >= 2 for it in items)

    # -- data
    def _select(self, start: int, limit: int | None) -> list[Item]:
        if start < 0 or (limit is not None and limit < 0):
            raise InvalidInputError(f"start and limit must be >= 0, got start={start}, limit={limit}")
        items = self.items()[start:]
        return items if limit is None else items[:limit]

    def raw_items(self, *, limit: int | None = None) -> Iterator[tuple[Item, np.ndarray, np.ndarray]]:
        """(item, image float32 (256,256,3) in [0,255], map float32 (256,256)) per valid image, the
        map as released (no blur): the input of the psychophysics stimulus generator."""
        for it in self._select(0, limit):
            yield it, resize_to_storage(read_image(it.image)), resize_to_storage(read_map(it.map))

    def _require_valid(self) -> None:
        if not self.items():
            detail = self.skips.summary() if self.skips.total else f"{MANIFEST} lists no image"
            raise InvalidInputError(f"dataset {self.name} ({self.root}) has no valid image: {detail}")

    def batches(self, batch_size: int, *, files: Sequence[Path] | None = None, start: int = 0,
                limit: int | None = None) -> Iterator[Batch]:
        """Batches of valid images in manifest order, tail kept. ``start``: images to skip first
        (resume); ``limit``: at most this many images. ``files`` is accepted for interface
        compatibility and must be None (a release is one unit, not shards). Read from the
        prepared copy when there is one; a full pass without one writes it."""
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        if files is not None:
            raise InvalidInputError("Clicktionary is not sharded: batches(files=...) is not supported")
        self._require_valid()
        chosen = self._select(start, limit)
        if not chosen:
            return
        n = len(self.items())
        use_prepared = prepared_copy.prepared_enabled(self.prepared) and prepared_copy.fits(n)
        unit = prepared_copy.open_unit(self._unit_key(), n, np.arange(n)) if use_prepared else None
        if unit is not None:
            lo = min(start, n)
            segment = prepared_copy.Segment(unit, lo, lo + len(chosen), [it.image_id for it in chosen])
            yield from prepared_copy.read_batches([segment], batch_size)
            return
        writer = (prepared_copy.UnitWriter.start(self._unit_key(), n, f"Clicktionary release {self.root}")
                  if use_prepared and len(chosen) == n else None)
        try:
            for s in range(0, len(chosen), batch_size):
                batch = self._read(chosen[s:s + batch_size])
                if writer is not None:
                    writer.add(batch.images, batch.heatmaps, batch.labels, np.arange(s, s + len(batch)))
                    if writer.complete:
                        writer, done = None, writer
                        done.commit()
                yield batch
        finally:
            if writer is not None:
                writer.abort()

    def _unit_key(self) -> str:
        return prepared_copy.unit_key("clicktionary-release", self.fingerprint())

    def _read(self, part: Sequence[Item]) -> Batch:
        """Decode and preprocess ``part`` (the tf path: PIL decode, TF resize and blur)."""
        from benchmark.datasets.clickme import preprocess_images

        images = np.stack([resize_to_storage(read_image(it.image)) for it in part])
        heat = self._heatmaps([read_map(it.map) for it in part])
        return Batch(preprocess_images(images), heat, np.array([it.label for it in part], np.int64),
                     [it.image_id for it in part])

    def prepared_status(self) -> dict[str, Any]:
        """``{"enabled", "unit", "units", "prepared", "bytes", "folder"}`` of the release's prepared copy."""
        enabled = prepared_copy.prepared_enabled(self.prepared)
        n = len(self.items())
        unit = prepared_copy.open_unit(self._unit_key(), n, np.arange(n)) if enabled and n else None
        return {"enabled": enabled, "unit": "release", "units": 1, "prepared": int(unit is not None),
                "bytes": prepared_copy.unit_bytes(unit.path) if unit is not None else 0,
                "folder": str(prepared_copy.root())}

    def prepare(self) -> dict[str, Any]:
        """Write the prepared copy (one full pass) unless it exists; returns :meth:`prepared_status`."""
        if not prepared_copy.prepared_enabled(self.prepared):
            raise InvalidInputError(f"preparing is switched off ({prepared_copy.PREPARED_ENV}=0 or prepared=False)")
        for _ in self.batches(64):
            pass
        return self.prepared_status()

    def _heatmaps(self, maps: Sequence[np.ndarray]) -> np.ndarray:
        from benchmark.datasets import tf_ops

        stacked = np.stack([resize_to_storage(m) for m in maps])[..., None]
        return tf_ops.preprocess_heatmaps_tf(stacked, blur=self.map_preprocessing == "clickme").numpy()

    def participant_maps(self, *, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """(image id, (P,224,224) float32) per valid image with participant maps, preprocessed like
        the pooled map."""
        self._require_valid()
        for it in self._select(0, limit):
            if it.participants:
                yield it.image_id, self._heatmaps([read_map(p) for p in it.participants])

    def human_maps(self, *, limit: int | None = None, batch_size: int = 64) -> tuple[np.ndarray, list[str]]:
        maps, ids = [], []
        for b in self.batches(batch_size, limit=limit):
            maps.append(b.heatmaps)
            ids.extend(b.ids)
        return (np.concatenate(maps) if maps else np.zeros((0, 224, 224), np.float32)), ids

    def info(self) -> dict[str, Any]:
        items = self.items()
        # "files" / "records": the keys `alignbench data info` prints for every dataset kind
        return {"name": self.name, "description": self.description, "synthetic": self.synthetic,
                "root": str(self.root), "files": [str(self.root / MANIFEST)],
                "records": len(items) + self.skips.total, "images": len(items),
                "animals": sum(it.is_animal for it in items), "fingerprint": self.fingerprint(),
                "has_participant_maps": self.has_participant_maps, "map_preprocessing": self.map_preprocessing,
                "skips": self.skips.to_dict(), "prepared": self.prepared_status()}


def _index(root: Path) -> tuple[list[Item], SkipReport]:
    path = root / MANIFEST
    if not path.is_file():
        raise InvalidInputError(f"{root} is not a Clicktionary release: {MANIFEST} is missing "
                                "(see benchmark/datasets/clicktionary.py for the layout)")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(f"{path}: missing column(s) {missing}; expected {', '.join(COLUMNS)}[,participants]")
        rows = list(reader)
    items, skips, seen = [], SkipReport(), set()
    for line, row in enumerate(rows, start=2):
        image_id = (row["image_id"] or "").strip()
        if not image_id or image_id in seen:
            skips.add("missing or duplicate image_id", f"{MANIFEST}:{line}")
            continue
        seen.add(image_id)
        try:
            label = int(row["label"])
        except (TypeError, ValueError):
            label = -1
        if not 0 <= label < 1000:
            skips.add("label out of range", image_id)
            continue
        image, map_path = root / row["image"], root / row["map"]
        participants: tuple[Path, ...] = ()
        if row.get("participants"):
            folder = root / row["participants"]
            participants = tuple(sorted(p for p in folder.glob("*") if p.suffix.lower() in _MAP_EXTS)) if folder.is_dir() else ()
        reason = _check_files(image, map_path, participants)
        if reason:
            skips.add(reason, image_id)
            continue
        items.append(Item(image_id, label, image, map_path, participants))
    return items, skips


def _check_files(image: Path, map_path: Path, participants: Sequence[Path]) -> str | None:
    """Why a row is skipped, or None: every file is decoded once, participant maps included."""
    if not image.is_file() or image.suffix.lower() not in _IMAGE_EXTS:
        return "missing image"
    if not map_path.is_file() or map_path.suffix.lower() not in _MAP_EXTS:
        return "missing map"
    try:
        img = read_image(image)
    except Exception:  # noqa: BLE001 - PIL raises many types for a broken file
        return "undecodable image"
    try:
        pooled = read_map(map_path)
    except Exception:  # noqa: BLE001
        return "undecodable map"
    if not pooled.any():  # all zero: no human map (as ClickMe's "empty heatmap"); other constants are kept
        return "empty map"
    if img.shape[0] != img.shape[1] or pooled.shape[0] != pooled.shape[1]:
        return "not square"
    for p in participants:
        try:
            m = read_map(p)
        except Exception:  # noqa: BLE001
            return "undecodable participant map"
        if m.shape[0] != m.shape[1]:
            return "participant map not square"
    return None


# --------------------------------------------------------------------------- fetching

def fetch_release(*, mirror: str | None = None, download: bool = True, dest_dir: str | Path | None = None,
                  sha256: str | None = None) -> Path:
    """The local release folder. ``mirror``: an archive URL, or a local folder/archive; default
    ``$ALIGNBENCH_CLICKTIONARY_URL``; else the cache folder must already hold the release.

    The rules are ClickMe's: a release already in the cache is used as is; a download streams into a
    ``.part`` file, resumes after an interruption, and is only unpacked once its length (and its
    ``sha256``, default ``$ALIGNBENCH_CLICKTIONARY_SHA256``, when given) checks out; offline mode
    (``--offline``, ``ALIGNBENCH_OFFLINE=1``) never touches the network. Raises
    :class:`DataUnavailableError` with one message saying where to put the files."""
    from benchmark.datasets.download import download_file, is_offline

    folder = Path(dest_dir) if dest_dir is not None else cache_dir(NAME)
    source = mirror or os.environ.get(URL_ENV) or None
    sha256 = sha256 or os.environ.get(SHA256_ENV) or None
    if source and "://" not in source:
        local = Path(source).expanduser()
        if local.is_dir():
            return local
        if local.is_file():
            return _extract(local, folder)
        raise DataUnavailableError(f"Clicktionary mirror {local} does not exist")
    if (folder / MANIFEST).is_file():
        return folder
    if not source:
        raise DataUnavailableError(
            f"Clicktionary release not found in {folder}. No public download URL is known for the Clicktionary "
            f"maps: put the release there ({MANIFEST} + images/ + maps/, see benchmark/datasets/clicktionary.py), "
            f"or set {URL_ENV}, or run `alignbench data download clicktionary --mirror URL|FOLDER`, or score a "
            f"release folder directly with `alignbench run --dataset FOLDER ...`.")
    if not download or is_offline():
        why = "downloads are off" if not download else "offline mode"
        raise DataUnavailableError(f"Clicktionary release not in {folder} and cannot be downloaded ({why}): "
                                   f"fetch {source} yourself and unpack it there, or run "
                                   "`alignbench data download clicktionary --mirror FOLDER`.")
    archive = folder.parent / (folder.name + "-" + Path(source.split("?")[0]).name)
    try:
        download_file(source, archive, sha256=sha256)
    except OSError as exc:  # urllib's URLError is an OSError
        raise DataUnavailableError(f"cannot download the Clicktionary release from {source} ({exc}): put the "
                                   f"release in {folder}, or pass a local folder as the mirror") from exc
    out = _extract(archive, folder)
    archive.unlink(missing_ok=True)  # the unpacked folder is the cache; keeping both doubles the disk use
    return out


def _extract(archive: Path, folder: Path) -> Path:
    """Unpack a .zip/.tar(.gz) into ``folder`` safely (no absolute paths, no '..'), atomically."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for n in zf.namelist():
                    _safe_member(n, archive)
                zf.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")  # refuses links outside, absolute and '..' paths
        else:
            raise InvalidInputError(f"{archive}: not a .zip or .tar archive")
        inner = tmp if (tmp / MANIFEST).is_file() else next((p.parent for p in tmp.rglob(MANIFEST)), None)
        if inner is None:
            raise InvalidInputError(f"{archive}: no {MANIFEST} inside; not a Clicktionary release")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(inner, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _safe_member(name: str, archive: Path) -> None:
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts:
        raise InvalidInputError(f"{archive}: unsafe path {name!r} in archive; refusing to extract")


def clicktionary_dataset(*, download: bool = True, mirror: str | None = None,
                         map_preprocessing: str = "clickme") -> ClicktionaryDataset:
    """The named dataset ``clicktionary`` (nothing is read or downloaded until first use)."""
    return ClicktionaryDataset(fetch=lambda: fetch_release(mirror=mirror, download=download),
                               map_preprocessing=map_preprocessing)


def is_release_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder in the Clicktionary release layout."""
    return (Path(path) / MANIFEST).is_file()


# --------------------------------------------------------------------------- generator (tests, demo)

def write_synthetic_release(out_dir: str | Path, n_images: int = 20, *, n_participants: int = 4, seed: int = 0,
                            size: int = STORAGE_SIZE, participant_noise: float = 0.5,
                            luminance_cue: bool = False) -> Path:
    """Write a Clicktionary-format release of ``n_images`` generated scenes (half animal labels,
    half not) with ``n_participants`` simulated participant maps each (0: none) and their mean as
    the pooled map. Scenes come from :mod:`benchmark.datasets.synthetic`; ``luminance_cue`` makes
    animal objects light and the others dark, so a model can read the class off the object's pixels
    alone. Deterministic per seed; marked by a ``SYNTHETIC`` file. Returns the folder."""
    from PIL import Image

    from benchmark.datasets import synthetic

    if n_images < 2:
        raise InvalidInputError(f"n_images must be >= 2, got {n_images}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    # 5 animal and 5 non-animal ImageNet classes, one shape each (synthetic.SHAPES has 5)
    labels = np.array([1, 100, 200, 300, 397, 400, 500, 600, 800, 999])
    palette = synthetic.class_palette(len(labels))
    rows = [",".join(COLUMNS + ("participants",))]

    def png(array: np.ndarray, path: Path) -> None:
        import io

        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG")
        atomic_write_bytes(path, buf.getvalue())

    for i in range(n_images):
        c = (i % 2) * 5 + (i // 2) % 5  # alternate animal / non-animal
        image, mask = synthetic.draw_scene(rng, c, palette, 0.0)
        if luminance_cue:
            grey = 230.0 if labels[c] < ANIMAL_CLASSES else 25.0
            image[mask] = np.clip(grey + rng.normal(0, 5, size=(int(mask.sum()), 3)), 0, 255).astype(np.uint8)
        if size != synthetic.SIZE:
            image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size))) > 127
        parts = [synthetic.participant_map(rng, mask, participant_noise, 6.0) for _ in range(max(n_participants, 1))]
        pooled = np.mean(parts, axis=0).round().astype(np.uint8)
        image_id = f"ct{i:04d}"
        png(image, out / "images" / f"{image_id}.png")
        png(pooled, out / "maps" / f"{image_id}.png")
        if n_participants:
            for k, m in enumerate(parts):
                png(m, out / "participants" / image_id / f"p{k:02d}.png")
        rows.append(f"{image_id},{int(labels[c])},images/{image_id}.png,maps/{image_id}.png,"
                    + (f"participants/{image_id}" if n_participants else ""))
    atomic_write_text(out / MANIFEST, "\n".join(rows) + "\n")
    atomic_write_text(out / "SYNTHETIC", f"generated by write_synthetic_release(n_images={n_images}, seed={seed})\n")
    return out
