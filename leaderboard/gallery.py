"""The gallery of a model page: the dataset's fixed gallery images (:mod:`benchmark.gallery`), the
human map beside the model's map, with the model's per-image Spearman from its scores file.

The model's maps come from a submission's ``<dataset>/<id>.gallery.npz`` (checked like every bundle
file) or, for a maintainers' run, from its ``--save-maps`` store when the store's identity is the
record's. The images and human maps come only from the maintainers' ``results/<dataset>/_gallery.npz``.
Every picture is a small PNG inlined as a ``data:`` URI (the site's CSP allows images from ``data:``
only), so the page stays one offline file; every text is escaped.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark import gallery, maps_store, records
from benchmark.plots_maps import DISPLAY_SIGMA, MAP_CMAP, display_map, format_rho
from leaderboard.bounds import read_bounded
from model_zoo.errors import InvalidInputError

CSS = """
.gallery{display:flex;flex-wrap:wrap;gap:.9rem;margin:.6rem 0}
figure.gal{margin:0;font-size:.8rem}figure.gal img{width:112px;height:112px;image-rendering:auto;margin-right:2px}
figure.gal figcaption{color:#333;overflow-wrap:anywhere;max-width:350px}
.gal-missing{display:inline-block;width:112px;height:112px;background:#f1f1f1;color:#666;font-size:.7rem;
text-align:center;vertical-align:top;margin-right:2px}
"""


@dataclass
class Gallery:
    """One model's gallery on one dataset. ``maps``/``human``: (k, px, px) float; ``images``: (k, px, px, 3)
    uint8 (human and images None when the reference is missing); ``rho``: per image, NaN when unknown."""

    dataset: str
    image_ids: list[str]
    maps: np.ndarray
    rho: list[float]
    human: np.ndarray | None = None
    images: np.ndarray | None = None
    why_no_human: str = ""


def esc(value: Any) -> str:
    return "" if value is None else html.escape(str(value), quote=True)


def png_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 image as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def map_rgb(saliency: np.ndarray, sigma: float | None = DISPLAY_SIGMA) -> np.ndarray:
    """A map (H, W) as the figure draws it (display smoothing, [0, 1] scaling, the colormap), uint8 RGB."""
    import matplotlib

    rgba = matplotlib.colormaps[MAP_CMAP](display_map(np.asarray(saliency, dtype=np.float64), sigma))
    return np.rint(rgba[..., :3] * 255).astype(np.uint8)


def _rho(scores_file: Path | None, ids: Sequence[str]) -> list[float]:
    if scores_file is None:
        return [float("nan")] * len(ids)
    cols = records.read_scores(scores_file)
    by_id = {str(i): float(r) for i, r in zip(cols["image_id"], cols["spearman"])}
    return [by_id.get(i, float("nan")) for i in ids]


def model_gallery(entry: Any, results_dir: Path, notes: list[str]) -> Gallery | None:
    """The gallery of one leaderboard row (``entry``: a :class:`leaderboard.site.Entry`), or None
    when it has no gallery maps; problems with a file become a note, never a broken page."""
    try:
        found = _model_maps(entry)
        if found is None:
            return None
        ids, maps = found
        g = Gallery(entry.dataset, ids, maps, _rho(entry.scores_file, ids))
        _add_reference(g, results_dir)
        return g
    except InvalidInputError as exc:
        notes.append(f"{entry.model_id} on {entry.dataset}: no gallery: {exc}")
        return None


def _model_maps(entry: Any) -> tuple[list[str], np.ndarray] | None:
    if entry.scores_file is None:
        return None
    if entry.origin == "submission":
        path = entry.scores_file.with_name(f"{entry.model_id}{gallery.SUFFIX}")
        if not path.is_file() or path.is_symlink():
            return None
        arrays = gallery.read_gallery(read_bounded(path, "gallery"), where=f"{entry.dataset}/{path.name}")
        return arrays["image_id"], np.asarray(arrays["maps"], dtype=np.float32)
    if entry.origin != "catalog":
        return None
    store_file = entry.scores_file.with_name(f"{entry.model_id}{maps_store.SUFFIX}")
    if not store_file.is_file():
        return None
    with maps_store.MapsStore(store_file) as store:
        identity = (entry.record or {}).get("identity")
        if identity is None or not store.matches(identity):
            raise InvalidInputError(f"{store_file.name} was saved under another identity than the record")
        ids = gallery.gallery_ids(entry.dataset, store.image_ids)
        return ids, gallery.shrink(store.get(ids))


def _add_reference(g: Gallery, results_dir: Path) -> None:
    path = Path(results_dir) / records.safe_name(g.dataset, "dataset") / gallery.REFERENCE_FILE
    if not path.is_file():
        g.why_no_human = (f"human maps not shown: the maintainers' results/{g.dataset}/{gallery.REFERENCE_FILE} "
                          "(written by `alignbench run --save-maps`) is missing")
        return
    ref = gallery.read_gallery(read_bounded(path, "gallery"), reference=True, where=f"{g.dataset}/{path.name}")
    if ref["image_id"] != g.image_ids:
        g.why_no_human = f"human maps not shown: {gallery.REFERENCE_FILE} holds other images than this gallery"
        return
    g.human = np.asarray(ref["human"], dtype=np.float32)
    g.images = np.asarray(ref["images"])


def section_html(g: Gallery, model: str) -> str:
    """The gallery's HTML (escaped; images as inline PNGs)."""
    figures = []
    for k, image_id in enumerate(g.image_ids):
        cells = []
        if g.images is not None:
            cells.append(f'<img class="image" src="{png_uri(g.images[k])}" alt="image {esc(image_id)}">')
        if g.human is not None:
            cells.append(f'<img class="human" src="{png_uri(map_rgb(g.human[k]))}" alt="human map of {esc(image_id)}">')
        else:
            cells.append('<span class="gal-missing">no human map</span>')
        cells.append(f'<img class="model" src="{png_uri(map_rgb(g.maps[k]))}" alt="{esc(model)} map of {esc(image_id)}">')
        rho = format_rho(g.rho[k]) if g.rho[k] == g.rho[k] else "ρ not in the scores file"
        figures.append(f'<figure class="gal" data-image-id="{esc(image_id)}">{"".join(cells)}'
                       f'<figcaption><code>{esc(image_id)}</code> · <span class="rho">{esc(rho)}</span></figcaption></figure>')
    columns = ("image, " if g.images is not None else "") + "human map, model map"
    text = (f"The same {len(g.image_ids)} images of {esc(g.dataset)} for every model ({columns}). Maps scaled to "
            f"[0, 1] per image and Gaussian-smoothed (σ = {DISPLAY_SIGMA:g} px at 224 px) for display only; "
            "ρ: this model's per-image Spearman from its scores file.")
    missing = f' <span class="note">{esc(g.why_no_human)}.</span>' if g.why_no_human else ""
    return (f'<h2>Gallery: {esc(g.dataset)}</h2><p class="sub">{text}{missing}</p>'
            f'<div class="gallery" data-dataset="{esc(g.dataset)}">{"".join(figures)}</div>')
