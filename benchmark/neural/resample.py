"""Feature maps onto a recording grid, in numpy (framework-neutral, so Keras and PyTorch agree).

Both functions take channel-last maps ``(N, H, W, C)`` and return float32 ``(N, g, g, C)``:

* :func:`grid_pool` averages over the paper's partition of the map into ``g x g`` blocks, block
  ``k`` spanning ``[floor(k*H/g), floor((k+1)*H/g))`` (neural_benchmark.py ``resizing_activity``).
  When ``H`` is a multiple of ``g`` this equals ``adaptive_avg_pool2d``; otherwise the blocks are
  disjoint where adaptive pooling's overlap by one pixel.
* :func:`bilinear_resize` is TensorFlow/PyTorch bilinear with half-pixel centres and no antialias
  (``tf.image.resize``, ``F.interpolate(align_corners=False)``, ``cv2.resize`` INTER_LINEAR).
"""
from __future__ import annotations

import numpy as np

from model_zoo.errors import InvalidInputError


def _check(maps: np.ndarray, what: str = "maps") -> np.ndarray:
    maps = np.asarray(maps)
    if maps.ndim != 4:
        raise InvalidInputError(f"{what}: expected (N, H, W, C), got shape {maps.shape}")
    return maps


def grid_pool(maps: np.ndarray, grid: int) -> np.ndarray:
    """Block-average ``(N, H, W, C)`` maps with ``H, W >= grid`` to ``(N, grid, grid, C)``."""
    maps = _check(maps)
    n, h, w, c = maps.shape
    if h < grid or w < grid:
        raise InvalidInputError(f"grid_pool: a {h}x{w} map cannot be pooled to {grid}x{grid}; resize it up instead")
    rows = [(k * h) // grid for k in range(grid + 1)]
    cols = [(k * w) // grid for k in range(grid + 1)]
    # cumulative sums make every block mean O(1) regardless of block size
    csum = np.zeros((n, h + 1, w + 1, c), np.float64)
    csum[:, 1:, 1:] = maps.astype(np.float64).cumsum(1).cumsum(2)
    r0, r1 = np.array(rows[:-1]), np.array(rows[1:])
    c0, c1 = np.array(cols[:-1]), np.array(cols[1:])
    total = (csum[:, r1][:, :, c1] - csum[:, r0][:, :, c1] - csum[:, r1][:, :, c0] + csum[:, r0][:, :, c0])
    area = ((r1 - r0)[:, None] * (c1 - c0)[None, :])[None, :, :, None]
    return (total / area).astype(np.float32)


def _axis_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation matrix, half-pixel centres, edge-clamped."""
    scale = n_in / n_out
    centres = (np.arange(n_out) + 0.5) * scale - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centres - lo
    weights = np.zeros((n_out, n_in))
    np.add.at(weights, (np.arange(n_out), lo), 1 - frac)
    np.add.at(weights, (np.arange(n_out), hi), frac)
    return weights


def bilinear_resize(maps: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(N, H, W, C)`` maps to ``(N, size, size, C)`` (no antialias)."""
    maps = _check(maps)
    oh, ow = (size, size) if isinstance(size, int) else size
    wy = _axis_weights(maps.shape[1], oh)
    wx = _axis_weights(maps.shape[2], ow)
    out = np.einsum("yh,nhwc->nywc", wy, maps.astype(np.float64))
    return np.einsum("xw,nywc->nyxc", wx, out).astype(np.float32)


def to_grid(maps: np.ndarray, grid: int) -> np.ndarray:
    """The paper's rule: block-average maps larger than the grid, bilinearly resize smaller ones
    (a map already at the grid is returned unchanged)."""
    maps = _check(maps)
    h, w = maps.shape[1:3]
    if h == grid and w == grid:
        return maps.astype(np.float32, copy=False)
    if h >= grid and w >= grid:
        return grid_pool(maps, grid)
    return bilinear_resize(maps, grid)


def reduce_channels(maps: np.ndarray, max_channels: int | None) -> np.ndarray:
    """Average consecutive groups of ``ceil(C / max_channels)`` channels (the last group may be
    smaller) so that at most ``max_channels`` remain; ``None`` keeps every channel.

    The paper averages groups of 3 (or 4) whenever C > 600, by reshaping the flattened array,
    which mixes locations when C is not a multiple of the group; here groups never cross locations.
    """
    maps = _check(maps)
    c = maps.shape[-1]
    if max_channels is None or c <= max_channels:
        return maps
    group = -(-c // max_channels)
    starts = np.arange(0, c, group)
    sums = np.add.reduceat(maps.astype(np.float64), starts, axis=-1)
    counts = np.diff(np.append(starts, c))
    return (sums / counts).astype(np.float32)
