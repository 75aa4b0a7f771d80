"""Pictures of the maps (the paper's Figure 2): images, human maps and models' maps side by side.

:func:`draw_map_grid` is a pure drawing function: arrays in, a :class:`matplotlib.figure.Figure`
out (no pyplot state, nothing written). Maps are smoothed with a Gaussian *for display only*, as
the paper does ("We smooth feature importance maps from humans (ClickMe) and DNNs with a Gaussian
kernel for visualization", Figure 2 caption); the Spearman values printed under the maps are the
caller's, computed on the raw maps. The paper gives no kernel width; :data:`DISPLAY_SIGMA` is ours.
"""
from __future__ import annotations

import math
import textwrap
from typing import Any, Mapping, Sequence

import numpy as np

DISPLAY_SIGMA = 4.0
"""Default display smoothing: Gaussian sigma in pixels of a 224-pixel map (scaled with the map size)."""

CELL_INCHES = 1.05  # one image cell: 5 columns fill a 5.5 in paper text width
FONT_SIZE = 7.0  # points, at the figure's real size
MAP_CMAP = "jet"
SYNTHETIC_MARK = "SYNTHETIC: generated data, not human ClickMe maps"


def display_map(saliency: np.ndarray, sigma: float | None) -> np.ndarray:
    """A display copy of one map (H, W): Gaussian-smoothed with ``sigma`` pixels (scaled by H / 224;
    None or 0: no smoothing), then min-max scaled to [0, 1] (a constant map gives zeros). The input
    is never modified."""
    from scipy.ndimage import gaussian_filter

    out = np.array(saliency, dtype=np.float64, copy=True)
    if out.ndim != 2:
        raise ValueError(f"a map must be 2-D (H, W), got shape {out.shape}")
    if sigma:
        out = gaussian_filter(out, sigma=float(sigma) * out.shape[0] / 224.0, mode="nearest")
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)


def display_image(image: np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) in [0, 255] (float or uint8) as float [0, 1] for imshow."""
    return np.clip(np.asarray(image, dtype=np.float64) / 255.0, 0.0, 1.0)


def format_rho(value: Any) -> str:
    """The text printed under a model's map for its per-image Spearman ``value`` (NaN: undefined)."""
    if value is None:
        return ""
    value = float(value)
    return "ρ undefined" if math.isnan(value) else f"ρ = {value:.3f}"


def draw_map_grid(images: np.ndarray, human_maps: np.ndarray, model_maps: Mapping[str, np.ndarray], *,
                  spearman: Mapping[str, Sequence[float]] | None = None,
                  titles: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
                  smooth_sigma: float | None = DISPLAY_SIGMA, synthetic: bool = False,
                  caption: str | None = None) -> Any:
    """The grid of Figure 2 as a matplotlib Figure.

    ``images``: (N, H, W, 3) RGB in [0, 255]; ``human_maps``: (N, H, W); ``model_maps``: display name
    -> (N, H, W) saliency maps (one column each, in the mapping's order). ``spearman``: display name ->
    N per-image Spearman values (printed under each model map, ``ρ = 0.123``; NaN: "ρ undefined").
    ``titles``: column headings (2 + number of models; default "Image", "Human", the model names);
    ``row_labels``: N texts left of each row (e.g. image id and class). ``smooth_sigma``: display
    smoothing (:func:`display_map`); the arrays given are never modified. ``synthetic``: mark the
    figure as drawn from generated data; ``caption``: a sentence added to the footnote (e.g. how the
    images were chosen). Rows are images; the figure is sized for a paper's page
    (:data:`CELL_INCHES` per cell, :data:`FONT_SIZE` pt text).
    """
    from matplotlib.figure import Figure

    images = np.asarray(images)
    human_maps = np.asarray(human_maps)
    n = len(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (N, H, W, 3), got shape {images.shape}")
    if human_maps.shape != images.shape[:3]:
        raise ValueError(f"human maps have shape {human_maps.shape}, expected {images.shape[:3]}")
    names = list(model_maps)
    for name in names:
        if np.shape(model_maps[name]) != human_maps.shape:
            raise ValueError(f"maps of {name!r} have shape {np.shape(model_maps[name])}, expected {human_maps.shape}")
        if spearman is not None and name in spearman and len(spearman[name]) != n:
            raise ValueError(f"spearman of {name!r} has {len(spearman[name])} values for {n} images")
    headings = list(titles) if titles is not None else ["Image", "Human", *names]
    if len(headings) != 2 + len(names):
        raise ValueError(f"titles: {len(headings)} given for {2 + len(names)} columns")
    if row_labels is not None and len(row_labels) != n:
        raise ValueError(f"row_labels: {len(row_labels)} given for {n} images")
    if n == 0:
        raise ValueError("no images to draw")

    cols = 2 + len(names)
    header = 0.45 if synthetic else 0.25
    footer = 0.35
    fig = Figure(figsize=(cols * CELL_INCHES, n * (CELL_INCHES + 0.12) + header + footer), dpi=200,
                 layout="constrained")
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        row = axes[i]
        row[0].imshow(display_image(images[i]), interpolation="lanczos")
        row[1].imshow(display_map(human_maps[i], smooth_sigma), cmap=MAP_CMAP, vmin=0, vmax=1)
        for j, name in enumerate(names):
            ax = row[2 + j]
            ax.imshow(display_map(np.asarray(model_maps[name][i]), smooth_sigma), cmap=MAP_CMAP, vmin=0, vmax=1)
            if spearman is not None and name in spearman:
                ax.set_xlabel(format_rho(spearman[name][i]), fontsize=FONT_SIZE, labelpad=1.5)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if row_labels is not None:
            row[0].set_ylabel(str(row_labels[i]), fontsize=FONT_SIZE, labelpad=2)
    for ax, heading in zip(axes[0], headings):
        # long model names wrap onto a second line instead of running into the next column
        ax.set_title(textwrap.fill(str(heading), 18), fontsize=FONT_SIZE + 0.5, pad=3)
    smoothing = (f"Gaussian-smoothed (σ = {smooth_sigma:g} px at 224 px) for display only"
                 if smooth_sigma else "not smoothed")
    fig.get_layout_engine().set(h_pad=0.02, w_pad=0.02, hspace=0.02, wspace=0.02)
    note = f"Maps scaled to [0, 1] per image, {smoothing}; ρ: Spearman of the raw maps with the human map."
    if caption:
        note = f"{caption} {note}"
    fig.supxlabel(textwrap.fill(note, int(cols * 22)), fontsize=FONT_SIZE - 1, color="0.3")
    if synthetic:
        fig.suptitle(SYNTHETIC_MARK, fontsize=FONT_SIZE + 1, color="#b00000", fontweight="bold")
    return fig
