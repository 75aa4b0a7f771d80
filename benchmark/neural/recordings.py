"""Spatially resolved recordings in memory, and the loader of a user's own recordings.

A :class:`NeuralRecording` is one panel of the benchmark: one animal, one cortical region, the
images shown, and for each image and recording site (channel) a map of the site's response on a
``g x g`` grid of image positions (Arcaro et al. 2020 flashed each image at positions around the
site's receptive field). Optionally it holds the single trials, from which the noise ceiling is a
split-half reliability; without them it falls back to the inter-channel proxy (predictivity.py).

User recordings: one ``.npz`` file (``numpy.savez``) with

========================  =====================================================================
``responses``             float, ``(image, X, Y, site)``: mean response (e.g. spikes/s over a
                          time window) with the image at grid position (X, Y); X indexes image
                          rows and Y columns, top-left first. Optional when ``trials`` is given.
``trials``                optional float, ``(trial, image, X, Y, site)``; NaN = missing trial.
                          ``responses`` defaults to the NaN-mean over trials.
``images``                uint8 ``(image, H, W, 3)`` RGB (resized to 224x224, bilinear).
``image_ids``             optional str ``(image,)``; default ``img000``, ``img001``, ...
``region``                optional str, one name or one per site ``(site,)``: one panel per region.
``subject``               optional str (default: the file name).
``synthetic``             optional bool: the recordings are generated (``alignbench data generate``);
                          records and figures of them are marked SYNTHETIC.
========================  =====================================================================
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from model_zoo.errors import InvalidInputError
from benchmark.neural.resample import bilinear_resize

IMAGE_SIZE = 224


@dataclass
class NeuralRecording:
    """One panel. ``responses`` float64 ``(N, g, g, S)``; ``images`` float32 ``(N, 224, 224, 3)``
    in [0, 255] (the boundary format of DESIGN.md); ``trials`` None or float64 ``(T, N, g, g, S)``."""

    panel: str                 # e.g. "monkey1-PL"
    subject: str
    region: str
    responses: np.ndarray
    images: np.ndarray
    image_ids: list[str]
    site_ids: list[str]
    trials: np.ndarray | None = None
    window_ms: tuple[int, int] | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        r = np.asarray(self.responses, np.float64)
        if r.ndim != 4 or r.shape[1] != r.shape[2]:
            raise InvalidInputError(f"{self.panel}: responses must be (image, g, g, site), got {r.shape}")
        n, g, _, s = r.shape
        if n < 3:
            raise InvalidInputError(f"{self.panel}: leave-one-image-out needs at least 3 images, got {n}")
        if not np.isfinite(r).all():
            raise InvalidInputError(f"{self.panel}: responses contain NaN or inf")
        if self.images.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3):
            raise InvalidInputError(f"{self.panel}: images must be ({n}, 224, 224, 3), got {self.images.shape}")
        if len(self.image_ids) != n or len(self.site_ids) != s:
            raise InvalidInputError(f"{self.panel}: {len(self.image_ids)} image ids for {n} images, "
                                    f"{len(self.site_ids)} site ids for {s} sites")
        if self.trials is not None and self.trials.shape[1:] != r.shape:
            raise InvalidInputError(f"{self.panel}: trials must be (trial, {n}, {g}, {g}, {s}), got {self.trials.shape}")
        self.responses = r

    @property
    def grid(self) -> int:
        return int(self.responses.shape[1])

    @property
    def n_images(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_sites(self) -> int:
        return int(self.responses.shape[3])

    def image_fingerprint(self) -> str:
        """sha256 of the images (the activation cache key: panels sharing images share activations)."""
        h = hashlib.sha256(np.ascontiguousarray(self.images, np.float32).tobytes())
        h.update("\n".join(self.image_ids).encode())
        return h.hexdigest()

    def fingerprint(self) -> str:
        """sha256 of everything a score depends on: images, responses, trials, window."""
        h = hashlib.sha256(self.image_fingerprint().encode())
        h.update(np.ascontiguousarray(self.responses).tobytes())
        if self.trials is not None:
            h.update(np.ascontiguousarray(self.trials).tobytes())
        h.update(f"{self.panel}|{self.window_ms}".encode())
        return h.hexdigest()

    def subset(self, n_images: int) -> "NeuralRecording":
        """The first ``n_images`` images (``--limit``)."""
        return NeuralRecording(self.panel, self.subject, self.region, self.responses[:n_images],
                               self.images[:n_images], self.image_ids[:n_images], self.site_ids,
                               None if self.trials is None else self.trials[:, :n_images], self.window_ms,
                               self.source, self.notes + [f"first {n_images} images only"])


def images_to_boundary(images: np.ndarray, what: str) -> np.ndarray:
    """uint8/float RGB ``(N, H, W, 3)`` (or grey ``(N, H, W)``) -> float32 (N, 224, 224, 3) in [0, 255].

    Resized bilinearly without antialias and rounded to whole grey levels, like the release code
    (``cv2.resize`` then ``np.uint8``).
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise InvalidInputError(f"{what}: expected (image, H, W, 3) RGB images, got shape {images.shape}")
    images = images[..., :3].astype(np.float32)
    if images.size and (images.min() < 0 or images.max() > 255):
        raise InvalidInputError(f"{what}: pixel values must be in [0, 255]")
    if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        images = np.clip(np.round(bilinear_resize(images, IMAGE_SIZE)), 0, 255)
    return images.astype(np.float32)


def load_recordings_npz(path: str | Path, *, regions: Sequence[str] | None = None) -> list[NeuralRecording]:
    """Panels (one per region) of a user's ``.npz`` recordings (format in the module docstring)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npz file ({exc})") from exc
    with data:
        keys = set(data.files)
        if "images" not in keys or not ({"responses", "trials"} & keys):
            raise InvalidInputError(f"{path}: needs 'images' and 'responses' (or 'trials'); found {sorted(keys)}")
        trials = data["trials"].astype(np.float64) if "trials" in keys else None
        if trials is not None and trials.ndim != 5:
            raise InvalidInputError(f"{path}: 'trials' must be (trial, image, X, Y, site), got {trials.shape}")
        if "responses" in keys:
            responses = data["responses"].astype(np.float64)
        else:
            responses = np.nanmean(trials, axis=0)
        if responses.ndim != 4:
            raise InvalidInputError(f"{path}: 'responses' must be (image, X, Y, site), got {responses.shape}")
        n, s = responses.shape[0], responses.shape[-1]
        images = images_to_boundary(data["images"], f"{path}: 'images'")
        if len(images) != n:
            raise InvalidInputError(f"{path}: {len(images)} images but responses for {n}")
        ids = [str(x) for x in data["image_ids"]] if "image_ids" in keys else [f"img{i:03d}" for i in range(n)]
        region = data["region"] if "region" in keys else np.asarray("all")
        subject = str(data["subject"]) if "subject" in keys else path.stem
        notes = ["synthetic recordings (generated)"] if "synthetic" in keys and bool(data["synthetic"]) else []
    site_region = np.broadcast_to(np.asarray(region).astype(str), (s,)) if np.ndim(region) == 0 else np.asarray(region).astype(str)
    if site_region.shape != (s,):
        raise InvalidInputError(f"{path}: 'region' must be one name or one per site ({s}), got shape {site_region.shape}")
    if trials is not None and np.isnan(trials).all(axis=0).any():
        raise InvalidInputError(f"{path}: 'trials' has (image, position, site) entries with no valid trial")
    wanted = list(dict.fromkeys(site_region)) if regions is None else list(regions)
    out = []
    for name in wanted:
        idx = np.flatnonzero(site_region == name)
        if not len(idx):
            raise InvalidInputError(f"{path}: no site in region {name!r} (regions: {sorted(set(site_region))})")
        out.append(NeuralRecording(
            panel=f"{subject}-{name}", subject=subject, region=str(name), responses=responses[..., idx],
            images=images, image_ids=ids, site_ids=[f"site{i:03d}" for i in idx],
            trials=None if trials is None else trials[..., idx], source=str(path), notes=list(notes)))
    return out
