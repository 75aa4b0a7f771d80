"""Psychophysics stimuli: reveal the most important pixels of an image over phase-scrambled noise.

What the paper describes (§3 "Psychophysics participants and dataset", paper-notes §3.4), and how
each point is implemented here:

* levels: 1 % to 100 % of the pixels revealed, log-spaced: ``10 ** (k / 5)`` %, k = 0..10
  (1, 1.58, 2.51, ..., 63.1, 100); the release names them ``'0', '10', ..., '90', 'full'``.
* which pixels: the top ``n`` pixels of the image's human importance map, ``n = round(p/100 * H*W)``
  (at least 1), so every image of the same size reveals the same number of pixels at a level. Ties
  in the map (flat regions) are broken by distance to the map's importance-weighted centroid, then
  by raster index, so the revealed region grows compactly and deterministically. (The 2017
  experiment grew the region probabilistically; its exact procedure was not accessible.)
* centring: the revealed pixels, with the image content under them, are translated by a whole
  number of pixels so that their centroid lands on the image centre; the shift is clamped so the
  region's bounding box stays inside the frame (then the centroid is as close to the centre as
  the frame allows). The pixel count is therefore always exact.
* background: phase-scrambled noise of the same image: the greyscale image's 2-D Fourier amplitude
  spectrum with the phase of white noise (Hermitian, so the noise is real; the DC phase is kept, so
  the mean luminance is the image's). Values are clipped to [0, 255] when written as 8-bit PNG.
* greyscale: the paper's example stimuli are greyscale; luminance is ITU-R BT.601 luma
  (0.299 R + 0.587 G + 0.114 B, what PIL's "L" mode computes). Models see it replicated to 3 channels.
* size: 256x256, the size shown to participants; models get them resized to 224 (TF-style bilinear),
  not centre-cropped as in the published code (paper-notes §4 row 24).
* determinism: the noise of an image depends only on (seed, image id): the same image gets the same
  noise at every level (only the revealed fraction changes), and a seed reproduces every file.

Output folder: ``L<kk>_<image id>.png`` (8-bit greyscale) per (level, image), ``manifest.csv``
(file, image_id, label, animal, level, percent, n_revealed, revealed_fraction, shift_y, shift_x,
seed) and ``manifest.json`` (parameters and source).
"""
from __future__ import annotations

import csv
import io
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

N_LEVELS = 11
LEVELS = tuple(range(N_LEVELS))  # k: 10 ** (k/5) percent revealed
FULL_LEVEL = N_LEVELS - 1
LEVEL_NAMES = tuple(str(10 * k) for k in range(N_LEVELS - 1)) + ("full",)  # the release's names
ANIMAL_CLASSES = 398
MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"
MANIFEST_COLUMNS = ("file", "image_id", "label", "animal", "level", "percent", "n_revealed", "revealed_fraction",
                    "shift_y", "shift_x", "seed")
GENERATOR_VERSION = 1


def level_percent(k: int | np.ndarray) -> float | np.ndarray:
    """Percent of pixels revealed at level ``k`` (0..10): ``10 ** (k / 5)``."""
    k_arr = np.asarray(k)
    if np.any((k_arr < 0) | (k_arr > FULL_LEVEL)):
        raise InvalidInputError(f"level must be in 0..{FULL_LEVEL}, got {k}")
    out = 10.0 ** (k_arr / 5.0)
    return float(out) if np.ndim(out) == 0 else out


def n_revealed(percent: float, n_pixels: int) -> int:
    """Pixels revealed at ``percent`` of ``n_pixels``: rounded, at least 1, at most all."""
    if not 0 < percent <= 100:
        raise InvalidInputError(f"percent must be in (0, 100], got {percent}")
    return int(min(n_pixels, max(1, round(percent / 100.0 * n_pixels))))


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H,W,3) RGB in [0,255] -> (H,W) float64 BT.601 luma; (H,W) is returned as float64."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[-1] != 3:
        raise InvalidInputError(f"image must be (H,W) or (H,W,3), got shape {image.shape}")
    return image @ np.array([0.299, 0.587, 0.114])


def phase_scramble(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise with the amplitude spectrum of ``grey`` (H,W) and a random phase; float64 (H,W), same mean."""
    grey = np.asarray(grey, dtype=np.float64)
    spectrum = np.fft.fft2(grey)
    phase = np.angle(np.fft.fft2(rng.standard_normal(grey.shape)))  # Hermitian: the result is real
    phase[0, 0] = np.angle(spectrum[0, 0])  # keep the mean luminance
    return np.real(np.fft.ifft2(np.abs(spectrum) * np.exp(1j * phase)))


def reveal_order(importance: np.ndarray) -> np.ndarray:
    """Flat pixel indices of ``importance`` (H,W), most important first (ties: nearest to the map's
    importance-weighted centroid first, then raster order)."""
    m = np.asarray(importance, dtype=np.float64)
    if m.ndim != 2:
        raise InvalidInputError(f"importance map must be 2-D, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise InvalidInputError("importance map has NaN or infinite values")
    w = m - m.min()
    yy, xx = np.indices(m.shape)
    if w.sum() > 0:
        cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
    else:
        cy, cx = (m.shape[0] - 1) / 2, (m.shape[1] - 1) / 2
    dist = np.hypot(yy - cy, xx - cx).ravel()
    return np.lexsort((np.arange(m.size), dist, -m.ravel()))


def centring_shift(mask: np.ndarray) -> tuple[int, int]:
    """Integer (dy, dx) moving the centroid of ``mask`` to the image centre, clamped so that the
    mask's bounding box stays in the frame."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return 0, 0
    h, w = mask.shape
    shifts = []
    for coords, size in ((ys, h), (xs, w)):
        want = int(round((size - 1) / 2 - coords.mean()))
        shifts.append(int(np.clip(want, -coords.min(), size - 1 - coords.max())))
    return shifts[0], shifts[1]


@dataclass(frozen=True)
class Stimulus:
    """One stimulus. ``pixels``: uint8 (H,W) greyscale; ``mask``: bool (H,W), where the revealed
    pixels are in the stimulus (after centring)."""

    image_id: str
    label: int
    level: int
    percent: float
    n_revealed: int
    shift: tuple[int, int]
    seed: int
    pixels: np.ndarray
    mask: np.ndarray

    @property
    def file(self) -> str:
        return f"L{self.level:02d}_{self.image_id}.png"


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """The noise generator of one image: depends on (seed, image id) only."""
    return np.random.default_rng([int(seed), zlib.crc32(image_id.encode())])


def stimuli_for_image(image: np.ndarray, importance: np.ndarray, *, image_id: str, label: int, seed: int,
                      levels: Sequence[int] = LEVELS) -> list[Stimulus]:
    """All stimuli of one image. ``image``: (H,W,3) or (H,W) in [0,255]; ``importance``: (H,W), same size."""
    grey = to_grey(image)
    if np.shape(importance) != grey.shape:
        raise InvalidInputError(f"image {image_id}: importance map shape {np.shape(importance)} != image shape {grey.shape}")
    noise = phase_scramble(grey, image_rng(seed, image_id))
    order = reveal_order(importance)
    out = []
    for k in levels:
        pct = level_percent(k)
        n = n_revealed(pct, grey.size)
        mask = np.zeros(grey.size, bool)
        mask[order[:n]] = True
        mask = mask.reshape(grey.shape)
        dy, dx = centring_shift(mask)
        ys, xs = np.nonzero(mask)
        stim = noise.copy()
        stim[ys + dy, xs + dx] = grey[ys, xs]
        shifted = np.zeros_like(mask)
        shifted[ys + dy, xs + dx] = True
        out.append(Stimulus(image_id, int(label), int(k), pct, n, (dy, dx), int(seed),
                            np.clip(np.round(stim), 0, 255).astype(np.uint8), shifted))
    return out


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def make_stimuli(source: Iterable[tuple[str, int, np.ndarray, np.ndarray]], output: str | Path, *, seed: int,
                 levels: Sequence[int] = LEVELS, source_info: dict[str, Any] | None = None) -> Path:
    """Write the stimuli of every (image_id, label, image, importance map) of ``source`` to ``output``.

    All images must have the same size (so that a level reveals the same pixel count everywhere).
    Returns the path of ``manifest.csv``, written last (a folder without it is incomplete).
    """
    output = Path(output)
    rows, shape, ids = [], None, set()
    for image_id, label, image, importance in source:
        if image_id in ids:
            raise InvalidInputError(f"duplicate image id {image_id!r} in the stimulus source")
        ids.add(image_id)
        if shape is None:
            shape = np.shape(importance)
        elif np.shape(importance) != shape:
            raise InvalidInputError(f"image {image_id}: size {np.shape(importance)} differs from {shape}; "
                                    "all images must share one size so each level reveals the same pixel count")
        for s in stimuli_for_image(image, importance, image_id=image_id, label=label, seed=seed, levels=levels):
            atomic_write_bytes(output / s.file, _png(s.pixels))
            rows.append((s.file, s.image_id, s.label, int(s.label < ANIMAL_CLASSES), s.level, repr(s.percent),
                         s.n_revealed, repr(s.n_revealed / s.pixels.size), s.shift[0], s.shift[1], s.seed))
    if not rows:
        raise InvalidInputError("the stimulus source yielded no images")
    atomic_write_json(output / MANIFEST_JSON, {
        "generator": "benchmark.psychophysics.stimuli.make_stimuli", "version": GENERATOR_VERSION, "seed": int(seed),
        "levels": list(map(int, levels)), "percent": [level_percent(k) for k in levels], "size": list(shape),
        "n_images": len(ids), "greyscale": "ITU-R BT.601 luma", "noise": "phase-scrambled (image amplitude spectrum)",
        "centring": "revealed pixels translated so their centroid is at the centre (clamped to the frame)",
        "source": source_info or {}})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    return atomic_write_text(output / MANIFEST_CSV, buf.getvalue())


# --------------------------------------------------------------------------- reading a stimulus set

@dataclass(frozen=True)
class StimulusSet:
    """A folder written by :func:`make_stimuli`; ``rows``: the manifest, one dict per stimulus."""

    folder: Path
    rows: tuple[dict[str, Any], ...]
    params: dict[str, Any]

    @property
    def image_ids(self) -> list[str]:
        return list(dict.fromkeys(r["image_id"] for r in self.rows))

    def select(self, limit: int | None) -> list[dict[str, Any]]:
        """Rows of the first ``limit`` source images (all their levels)."""
        if limit is None:
            return list(self.rows)
        keep = set(self.image_ids[:limit])
        return [r for r in self.rows if r["image_id"] in keep]

    def batches(self, rows: Sequence[dict[str, Any]], batch_size: int) -> Iterator[tuple[list[dict[str, Any]], np.ndarray]]:
        """(rows, images float32 (B,224,224,3) in [0,255]): greyscale replicated to RGB, resized
        256->224 bilinear (half-pixel centres, no antialias = TF's resize)."""
        from PIL import Image

        from model_zoo.frameworks import import_torch

        torch = import_torch()
        for s in range(0, len(rows), batch_size):
            part = rows[s:s + batch_size]
            arrays = []
            for r in part:
                path = self.folder / r["file"]
                try:
                    with Image.open(path) as im:
                        arrays.append(np.asarray(im.convert("L"), dtype=np.float32))
                except (OSError, ValueError) as exc:
                    raise InvalidInputError(f"stimulus {path}: cannot be read ({exc})") from exc
            x = torch.from_numpy(np.stack(arrays))[:, None]
            x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
            yield part, np.repeat(x[:, 0, :, :, None].numpy(), 3, axis=-1)


def read_stimuli(folder: str | Path) -> StimulusSet:
    """Read a stimulus folder's manifest; raises :class:`InvalidInputError` naming what is wrong."""
    import json

    folder = Path(folder)
    path = folder / MANIFEST_CSV
    if not path.is_file():
        raise InvalidInputError(f"{folder} is not a stimulus folder: {MANIFEST_CSV} is missing "
                                "(write one with `alignbench psychophysics make-stimuli`)")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(f"{path}: missing column(s) {missing}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                rows.append({"file": r["file"], "image_id": r["image_id"], "label": int(r["label"]),
                             "animal": bool(int(r["animal"])), "level": int(r["level"]), "percent": float(r["percent"]),
                             "n_revealed": int(r["n_revealed"])})
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"{path}:{line}: bad value ({exc})") from None
    try:
        params = json.loads((folder / MANIFEST_JSON).read_text())
    except (OSError, ValueError):
        params = {}
    if not rows:
        raise InvalidInputError(f"{path}: no stimuli listed")
    return StimulusSet(folder, tuple(rows), params)
