"""What every alignbench figure shares: colour-blind-safe colours, axis limits clamped to what a
quantity can be, labels placed without overlap (``adjustText``), a legend outside the data, the
SYNTHETIC mark, and vector files with embedded fonts.

Figures are laid out once (constrained layout), then frozen, so labels placed in display
coordinates stay where they were placed when the file is written.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from model_zoo.fileio import atomic_write_bytes

#: Okabe & Ito (2008), "Color Universal Design": distinguishable under the common colour-vision deficiencies.
OKABE_ITO = {
    "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73", "yellow": "#F0E442",
    "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7", "black": "#000000",
}
GREY = "#7F7F7F"
#: family key of a record -> (legend name, colour); the family names of the paper's Figure 3 legend
FAMILY_STYLE: dict[str | None, tuple[str, str]] = {
    "cnn": ("CNN", OKABE_ITO["blue"]),
    "transformer": ("Transformer", OKABE_ITO["reddish_purple"]),
    "self_supervised": ("Self-supervised", OKABE_ITO["vermillion"]),
    "robust": ("Robust", OKABE_ITO["bluish_green"]),
    "cnn_extra_data": ("CNN extra data", OKABE_ITO["sky_blue"]),
    "harmonized": ("Neural harmonizer", OKABE_ITO["orange"]),
    None: ("Other", GREY),
}
#: colours and markers cycled over the models of a line plot (humans are black)
CYCLE_COLOURS = [OKABE_ITO[k] for k in ("blue", "orange", "bluish_green", "vermillion", "reddish_purple",
                                        "sky_blue", "yellow")]
CYCLE_MARKERS = ["s", "^", "v", "D", "P", "X", "<", ">"]
#: embedded TrueType fonts in PDF/PS, real text in SVG (editable, searchable)
SAVE_RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}
LABEL_SIZE = 7
SYNTHETIC_GID = "synthetic-mark"
VECTOR_FORMATS = ("png", "svg", "pdf")


def family_style(family: str | None) -> tuple[str, str]:
    return FAMILY_STYLE.get(family, FAMILY_STYLE[None])


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are files, never windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(ncols: int = 1, *, panel_size: tuple[float, float] = (4.6, 4.0), legend_width: float = 2.2,
               marked: bool = False) -> tuple[Any, list[Any]]:
    """A figure of ``ncols`` panels side by side plus room on the right for the legend, laid out
    by constrained layout; ``marked``: keep a band at the top for the SYNTHETIC mark."""
    plt = pyplot()
    width = panel_size[0] * ncols + legend_width
    fig, axes = plt.subplots(1, ncols, figsize=(width, panel_size[1] + (0.3 if marked else 0)), dpi=150,
                             squeeze=False, layout="constrained")
    if marked:
        fig.get_layout_engine().set(rect=(0, 0, 1, 1 - 0.3 / (panel_size[1] + 0.3)))
    return fig, list(axes[0])


def limits(values: Iterable[float], legal: tuple[float, float], *, pad_fraction: float = 0.08,
           min_pad: float = 0.0) -> tuple[float, float]:
    """Axis limits around ``values`` (padded by ``pad_fraction`` of their span, at least ``min_pad``),
    never beyond ``legal`` (what the quantity can be) and never below 0 when no value is negative."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    lo_legal, hi_legal = legal
    if not vals:
        return (lo_legal if math.isfinite(lo_legal) else 0.0, hi_legal if math.isfinite(hi_legal) else 1.0)
    lo, hi = min(vals), max(vals)
    pad = max(min_pad, pad_fraction * (hi - lo)) or max(abs(hi) * 0.05, 1e-3)
    lo, hi = lo - pad, hi + pad
    if min(vals) >= 0:
        lo = max(lo, 0.0)
    return max(lo, lo_legal), min(hi, hi_legal)


def synthetic_reasons(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why a figure drawn from ``records`` is no result about humans and real models: generated
    data (``dataset_synthetic``) and/or random weights; empty when neither."""
    reasons = []
    recs = list(records)
    if any(r.get("dataset_synthetic") for r in recs):
        reasons.append("generated data, not human measurements")
    if any(is_random(r) for r in recs):
        reasons.append("random-weight models (controls)")
    return reasons


def is_random(record: Mapping[str, Any]) -> bool:
    return record.get("weights") == "random" or str(record.get("model", "")).endswith("+random")


def mark_synthetic(fig: Any, reasons: Sequence[str]) -> Any:
    """The SYNTHETIC mark across the top band of ``fig`` (see :func:`new_figure`), or None."""
    if not reasons:
        return None
    return fig.text(0.5, 0.995, "SYNTHETIC: " + "; ".join(reasons), ha="center", va="top", fontsize=9,
                    fontweight="bold", color=OKABE_ITO["vermillion"], gid=SYNTHETIC_GID)


def freeze_layout(fig: Any) -> Any:
    """Lay ``fig`` out once and keep it (labels are placed in display coordinates); returns the renderer."""
    fig.canvas.draw()
    fig.set_layout_engine("none")
    return fig.canvas.get_renderer()


def place_labels(ax: Any, labels: Sequence[tuple[float, float, str, str]], avoid: Sequence[tuple[float, float]]
                 ) -> tuple[list[Any], list[str]]:
    """Label points without overlap: ``labels`` = (x, y, text, colour) in priority order, ``avoid``
    = every data point. adjustText moves the labels off each other and the points; a label that
    still overlaps a higher-priority one or leaves the axes is dropped. Call after
    :func:`freeze_layout`. Returns (texts kept, texts dropped)."""
    if not labels:
        return [], []
    from adjustText import adjust_text

    from matplotlib.collections import LineCollection

    # the markers and error bars already drawn: labels are pushed off them, not only off the centres
    obstacles = [line for line in ax.lines if line.get_marker() not in (None, "None", "", " ")]
    obstacles += [c for c in ax.collections if isinstance(c, LineCollection)]
    renderer = ax.figure.canvas.get_renderer()
    obstacles = [o for o in obstacles if _finite(o.get_window_extent(renderer))]  # empty ones have none
    texts = [ax.text(x, y, s, fontsize=LABEL_SIZE, color=c, zorder=5) for x, y, s, c in labels]
    xs, ys = [p[0] for p in avoid], [p[1] for p in avoid]
    _, patches = adjust_text(texts, x=xs, y=ys, objects=obstacles, ax=ax, expand=(1.1, 1.3), ensure_inside_axes=True,
                             iter_lim=300, arrowprops={"arrowstyle": "-", "color": GREY, "lw": 0.5})
    inside = ax.get_window_extent(renderer)
    kept, boxes, dropped = [], [], []
    for text in texts:
        box = text.get_window_extent(renderer)
        fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        if fits and not any(box.overlaps(b) for b in boxes):
            kept.append(text)
            boxes.append(box)
        else:
            dropped.append(text.get_text())
            text.remove()
    gone = {id(t) for t in texts} - {id(t) for t in kept}
    for patch in patches:
        if id(getattr(patch, "patchA", None)) in gone:
            patch.remove()
    return kept, dropped


def _finite(box: Any) -> bool:
    return all(math.isfinite(v) for v in (box.x0, box.x1, box.y0, box.y1))


def arrow_handle(colour: str, label: str) -> Any:
    """A legend entry drawn as an arrow (base model -> harmonized version)."""
    from matplotlib.patches import FancyArrow

    return FancyArrow(0, 0, 1, 0, color=colour, label=label)


def add_legend(target: Any, handles: Sequence[Any], *, title: str | None = None) -> Any:
    """The legend of ``handles`` outside the data, right of ``target`` (an axes, or a figure for a
    legend shared by its panels), so it never covers a point."""
    from matplotlib.patches import FancyArrow

    kw = {"handles": list(handles), "fontsize": LABEL_SIZE, "title": title, "title_fontsize": LABEL_SIZE + 1,
          "frameon": False, "handler_map": {FancyArrow: _HandlerArrow()}}
    if hasattr(target, "transAxes"):
        return target.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kw)
    return target.legend(loc="outside right upper", **kw)


class _HandlerArrow:
    """Draws an :func:`arrow_handle` entry as an arrow (matplotlib's legend-handler protocol)."""

    def legend_artist(self, legend: Any, orig_handle: Any, fontsize: float, handlebox: Any) -> Any:
        from matplotlib.patches import FancyArrowPatch

        w, h = handlebox.width, handlebox.height
        arrow = FancyArrowPatch((0, h / 2), (w, h / 2), arrowstyle="->", mutation_scale=10,
                                color=orig_handle.get_facecolor(), lw=1.2, transform=handlebox.get_transform())
        handlebox.add_artist(arrow)
        return arrow


def save_figure(fig: Any, output: str | Path, formats: Sequence[str] = VECTOR_FORMATS) -> list[Path]:
    """Write ``fig`` atomically to ``output`` (its extension, if png/svg/pdf, picks the one format) or
    to ``output.<fmt>`` for each of ``formats``, fonts embedded (TrueType in PDF, text in SVG);
    closes the figure; returns the paths written."""
    plt = pyplot()
    stem = Path(output)
    if stem.suffix.lstrip(".") in VECTOR_FORMATS:
        formats, stem = [stem.suffix.lstrip(".")], stem.with_suffix("")
    written = []
    with plt.rc_context(SAVE_RC):
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt)
            written.append(atomic_write_bytes(stem.with_suffix(f".{fmt}"), buf.getvalue()))
    plt.close(fig)
    return written
