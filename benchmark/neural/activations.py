"""Layer features of a model on a recording grid, computed once per (model, layer) and cached.

:func:`grid_features` runs the adapter's forward pass once for all requested layers
(:func:`model_zoo.activations.activations`), pools every chunk to the recording grid as it comes
(:func:`~benchmark.neural.resample.to_grid`) and averages channel groups down to ``max_channels``
(:func:`~benchmark.neural.resample.reduce_channels`), so full-size maps of many layers are never
held at once. Results are cached as ``.npy`` files under::

    cache_dir("neural", "activations") / <model key> / <images sha256[:16]>-g<grid>-c<max_channels> / <layer>.npy

The model key names the weights (record id, weights sha256, precision); the image fingerprint
covers pixels and image ids, so panels that share images (monkey 1's PL and ML) share the cache and
a changed stimulus set never reads stale features. Writes are atomic; a layer that is cached is
not recomputed, and the forward pass runs only when some layer is missing.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark.neural.resample import reduce_channels, to_grid
from model_zoo.fileio import atomic_write_bytes, cache_dir

log = logging.getLogger(__name__)

#: the paper averages channel groups when a layer has more than 600 channels (paper-notes §5.3 step 2)
MAX_CHANNELS = 600


def _safe(text: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", text)[:80]
    return clean + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def model_key(model: str, weights_sha256: str | None, precision: str = "float32") -> str:
    """Cache folder name of one model's weights."""
    return _safe(f"{model}|{weights_sha256 or 'nosha'}|{precision}")


def cache_folder(key: str, image_fingerprint: str, grid: int, max_channels: int | None,
                 root: str | Path | None = None) -> Path:
    base = Path(root) if root is not None else cache_dir("neural", "activations")
    return base / key / f"{image_fingerprint[:16]}-g{grid}-c{max_channels or 'all'}"


def grid_features(adapter: Any, images: np.ndarray, layers: Sequence[str], grid: int, *,
                  image_fingerprint: str, key: str | None = None, max_channels: int | None = MAX_CHANNELS,
                  cache_root: str | Path | None = None, use_cache: bool = True) -> dict[str, np.ndarray]:
    """``{layer: (N, grid, grid, D) float32}``, D <= ``max_channels``, in the order of ``layers``.

    ``key``: the model's cache key (:func:`model_key`); None disables the cache.
    """
    from model_zoo.activations import activations

    layers = list(dict.fromkeys(layers))
    folder = cache_folder(key, image_fingerprint, grid, max_channels, cache_root) if key and use_cache else None
    out: dict[str, np.ndarray] = {}
    if folder is not None:
        for name in layers:
            path = folder / f"{_safe(name)}.npy"
            if path.is_file():
                try:
                    arr = np.load(path, allow_pickle=False)
                    if arr.ndim == 4 and arr.shape[:3] == (len(images), grid, grid):
                        out[name] = arr
                        continue
                except (OSError, ValueError):
                    pass
                log.warning("ignoring unreadable cached activations %s", path)
    missing = [n for n in layers if n not in out]
    if missing:
        fresh = activations(adapter, images, missing,
                            transform=lambda _n, maps: reduce_channels(to_grid(maps, grid), max_channels))
        for name in missing:
            out[name] = fresh[name]
            if folder is not None:
                buf = io.BytesIO()
                np.save(buf, fresh[name], allow_pickle=False)
                atomic_write_bytes(folder / f"{_safe(name)}.npy", buf.getvalue())
    return {name: out[name] for name in layers}
