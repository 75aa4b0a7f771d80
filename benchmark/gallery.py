"""The gallery: the same few images of a dataset for every model, small maps to show on the leaderboard.

* **Which images** (:func:`gallery_ids`): the :data:`GALLERY_SIZE` image ids of smallest sha256 of
  ``"<dataset>:<id>"``: fixed by the id set alone, spread over the shards, the same for every model.
* **A model's gallery** (``<model>.gallery.npz``, :data:`FORMAT`): ``image_id`` (k,) and ``maps``
  float16 (k, :data:`GALLERY_PX`, :data:`GALLERY_PX`), the model's raw maps averaged over 2x2
  blocks of the 224x224 frame. A leaderboard submission carries it beside its scores.
* **The reference** (``results/<dataset>/_gallery.npz``, :data:`REFERENCE_FORMAT`): the same ids'
  human maps (float16, same size) and images (uint8 RGB), written by ``alignbench run --save-maps``
  from the dataset; the leaderboard takes the human side of every gallery from it, never from a bundle.

Files are plain ``.npz`` (no pickle), small (about 150 KB for a model's gallery), written atomically.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_bytes

GALLERY_SIZE = 6
GALLERY_PX = 112
FORMAT = "alignbench.gallery/1"
REFERENCE_FORMAT = "alignbench.gallery-reference/1"
REFERENCE_FILE = "_gallery.npz"
SUFFIX = ".gallery.npz"


def gallery_ids(dataset: str, image_ids: Sequence[str], k: int = GALLERY_SIZE) -> list[str]:
    """The gallery's ids among ``image_ids``: the ``k`` of smallest sha256("<dataset>:<id>"), in that order."""
    def key(image_id: str) -> str:
        return hashlib.sha256(f"{dataset}:{image_id}".encode("utf-8")).hexdigest()

    return sorted({str(i) for i in image_ids}, key=key)[:k]


def shrink(maps: np.ndarray, px: int = GALLERY_PX) -> np.ndarray:
    """(k, H, W[, C]) maps or images -> (k, px, px[, C]) float32 block means (H, W multiples of px)."""
    maps = np.asarray(maps, dtype=np.float32)
    k, h, w = maps.shape[:3]
    if h % px or w % px:
        raise ValueError(f"maps of {h}x{w} pixels do not shrink evenly to {px}x{px}")
    shape = (k, px, h // px, px, w // px) + maps.shape[3:]
    return maps.reshape(shape).mean(axis=(2, 4))


def _npz(**arrays: Any) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_gallery(path: str | Path, image_ids: Sequence[str], maps: np.ndarray) -> Path:
    """A model's gallery file from its raw maps (k, 224, 224) of ``image_ids``."""
    return atomic_write_bytes(path, _npz(format=np.asarray(FORMAT), image_id=np.asarray([str(i) for i in image_ids]),
                                         maps=shrink(maps).astype(np.float16)))


def write_reference(path: str | Path, image_ids: Sequence[str], images: np.ndarray, human: np.ndarray) -> Path:
    """The dataset's gallery reference: images (k, 224, 224, 3) in [0, 255] and human maps (k, 224, 224)."""
    small = np.clip(np.rint(shrink(images)), 0, 255).astype(np.uint8)
    return atomic_write_bytes(path, _npz(format=np.asarray(REFERENCE_FORMAT),
                                         image_id=np.asarray([str(i) for i in image_ids]),
                                         human=shrink(human).astype(np.float16), images=small))


def read_gallery(data: bytes, *, reference: bool = False, where: str = "gallery") -> dict[str, Any]:
    """The arrays of a gallery (or reference) file's bytes, checked: no pickle, exactly the expected
    members, at most :data:`GALLERY_SIZE` images of :data:`GALLERY_PX` pixels, finite values.
    Problems raise :class:`InvalidInputError` naming ``where`` and the member."""
    expected = {"format", "image_id", "human", "images"} if reference else {"format", "image_id", "maps"}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            members = set(npz.files)
            if members != expected:
                raise InvalidInputError(f"{where}: members {sorted(members)}, expected {sorted(expected)}")
            arrays = {k: npz[k] for k in expected}
    except InvalidInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed zip/npy is a bad file, said in one line
        raise InvalidInputError(f"{where}: not a readable .npz ({type(exc).__name__}: {exc})") from None
    fmt = str(arrays["format"]) if arrays["format"].shape == () else None
    want = REFERENCE_FORMAT if reference else FORMAT
    if fmt != want:
        raise InvalidInputError(f"{where}: format {fmt!r}, expected {want!r}")
    ids = arrays["image_id"]
    if ids.ndim != 1 or ids.dtype.kind != "U" or not 1 <= len(ids) <= GALLERY_SIZE or ids.dtype.itemsize > 4 * 200:
        raise InvalidInputError(f"{where}: image_id must be 1 to {GALLERY_SIZE} texts of at most 200 characters")
    k = len(ids)
    square = (k, GALLERY_PX, GALLERY_PX)
    checks = {"human": (square, "f"), "images": (square + (3,), "u")} if reference else {"maps": (square, "f")}
    for name, (shape, kind) in checks.items():
        a = arrays[name]
        if a.shape != shape or a.dtype.kind != kind or a.dtype.itemsize > 4:
            raise InvalidInputError(f"{where}: {name} is {a.dtype} {a.shape}, expected {shape} "
                                    f"({'float16/32' if kind == 'f' else 'uint8'})")
        if kind == "f" and not np.isfinite(a).all():
            raise InvalidInputError(f"{where}: {name} has NaN or infinite values")
    arrays["image_id"] = [str(i) for i in ids]
    return arrays


def write_reference_for(data: Any, results_dir: str | Path, image_ids: Sequence[str],
                        positions: dict[str, int] | None = None) -> Path:
    """Write ``results/<dataset>/_gallery.npz`` for ``data`` (a maps dataset), the gallery of ``image_ids``."""
    from benchmark import records
    from benchmark.maps_figure import fetch_images

    ids = gallery_ids(data.name, image_ids)
    if not ids:
        raise InvalidInputError(f"{data.name}: no image ids to choose a gallery from")
    images, human, _ = fetch_images(data, ids, positions or {})
    return write_reference(Path(results_dir) / records.safe_name(data.name, "dataset") / REFERENCE_FILE, ids,
                           images, human)
