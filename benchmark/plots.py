"""The accuracy-versus-alignment figure (the paper's Figures 3 and 4), from result records.

Measured points come from ``results/<dataset>/*.json``; published points (``results/published/``,
read off the paper's figures) are drawn only on request and always as hollow, labelled markers,
so the two are never confused.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


from benchmark import records
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_bytes

# Family colours of the paper's Figure 3 legend (paper-notes §1.1).
FAMILY_STYLE = {
    "cnn": ("CNN", "#1f77b4"),
    "transformer": ("Transformer", "#e377c2"),
    "self_supervised": ("Self-supervised", "#d62728"),
    "robust": ("Robust", "#2ca02c"),
    "cnn_extra_data": ("CNN extra data", "#9467bd"),
    "harmonized": ("Neural harmonizer", "#ff7f0e"),
    None: ("Other", "#7f7f7f"),
}
PUBLISHED_FAMILIES = {"CNN": "cnn", "Transformer": "transformer", "Self-supervised": "self_supervised",
                      "Robust": "robust", "CNN extra data": "cnn_extra_data", "Neural harmonizer": "harmonized"}
PUBLISHED_FILES = {"clickme": "clickme.csv"}


@dataclass
class Point:
    model: str
    label: str
    family: str | None
    top1: float          # ImageNet top-1, percent
    alignment: float     # percent of the ceiling
    sd: float | None     # percent
    harmonized: bool
    base_model: str | None = None
    published: bool = False


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points not dominated by another (higher or equal accuracy and alignment), by accuracy."""
    front: list[Point] = []
    for p in sorted(points, key=lambda q: (-q.top1, -q.alignment)):
        if not front or p.alignment > front[-1].alignment:
            front.append(p)
    return sorted(front, key=lambda q: q.top1)


ACCURACY_CHOICES = ("auto", "published", "measured")


def measured_points(results_dir: str | Path, dataset: str, accuracy: str = "auto",
                    loaded: records.LoadedResults | None = None) -> tuple[list[Point], list[str], str]:
    """Plottable records of ``dataset`` and notes on the skipped ones, with the accuracy axis used.

    ``accuracy``: ``published`` = the ImageNet top-1 published for the weights; ``measured`` = the
    fraction of this dataset's images classified correctly (``top1_measured``); ``auto`` = published
    when any ok record has one, else measured (random-weight controls and users' own weights have
    no published top-1: on a published axis they are skipped with a note). Never mixed on one axis.
    """
    if accuracy not in ACCURACY_CHOICES:
        raise InvalidInputError(f"accuracy={accuracy!r}: expected one of {ACCURACY_CHOICES}")
    loaded = loaded if loaded is not None else records.load_results(results_dir, dataset)
    notes = list(loaded.problems)
    ok = [r for r in loaded.records if r.get("status") == "ok"]
    if accuracy == "auto":
        published = not ok or any(isinstance(r.get("top1_published"), (int, float)) for r in ok)
        accuracy = "published" if published else "measured"
    key = "top1_published" if accuracy == "published" else "top1_measured"
    points = []
    for r in ok:
        top1 = r.get(key)
        value, error = records.headline(r)
        if value is None:
            notes.append(f"{r['model']}: no alignment (dataset has no ceiling); not plotted")
            continue
        if not isinstance(top1, (int, float)):
            what = "published ImageNet top-1" if accuracy == "published" else "measured accuracy"
            notes.append(f"{r['model']}: no {what}; not plotted")
            continue
        scale = _scale(r)
        points.append(Point(model=r["model"], label=r.get("display_name") or r["model"], family=r.get("family"),
                            top1=float(top1) * (1 if accuracy == "published" else 100),
                            alignment=scale * value, sd=scale * error if error is not None else None,
                            harmonized=bool(r.get("harmonized")), base_model=r.get("base_model")))
    return points, notes, accuracy


def published_points(results_dir: str | Path, dataset: str) -> list[Point]:
    import pandas as pd

    key = next((k for k in PUBLISHED_FILES if dataset.startswith(k)), None)
    if key is None:
        return []
    path = Path(results_dir) / "published" / PUBLISHED_FILES[key]
    if not path.exists():
        raise InvalidInputError(f"--with-published: {path} not found (the published reference points)")
    frame = pd.read_csv(path)
    column = f"{key}_alignment"
    out = []
    for row in frame.itertuples(index=False):
        value = getattr(row, column)
        if value != value:  # NaN: no published value for this dataset
            continue
        out.append(Point(model=row.model, label=row.model, family=PUBLISHED_FAMILIES.get(row.family),
                         top1=float(row.top1), alignment=float(value), sd=None,
                         harmonized=str(row.harmonized).lower() == "yes", published=True))
    return out


def plot_pareto(results_dir: str | Path, dataset: str, output: str | Path | None = None, *,
                formats: Sequence[str] = ("png", "svg", "pdf"), with_published: bool = False,
                label_top: int = 3, accuracy: str = "auto") -> tuple[list[Path], list[str]]:
    """Draw accuracy (x) vs alignment (y) for ``dataset``; returns the files written and notes
    (skipped records, models without the chosen accuracy). ``accuracy``: see :func:`measured_points`;
    the paper's published points are drawn only on the published-ImageNet-top-1 axis."""
    loaded = records.load_results(results_dir, dataset)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, notes, accuracy = measured_points(results_dir, dataset, accuracy, loaded)
    published = published_points(results_dir, dataset) if with_published else []
    if published and accuracy != "published":
        notes.append("published points not drawn: the x axis is accuracy measured on this dataset, "
                     "not published ImageNet top-1 (use --accuracy published)")
        published = []
    if not points and not published:
        raise InvalidInputError(f"no plottable results for dataset {dataset!r} in {results_dir} "
                                "(run `alignbench run` first, or pass --with-published)")
    fig, ax = plt.subplots(figsize=(8, 6), dpi=150)
    draw_front(ax, [p for p in points if not p.harmonized])
    for value, label, style in _baselines(results_dir, dataset):
        ax.axhline(value, color="black", ls=style, lw=1, label=label)
    seen = set()
    for p in points:
        name, colour = FAMILY_STYLE.get(p.family, FAMILY_STYLE[None])
        ax.errorbar(p.top1, p.alignment, yerr=p.sd, fmt="o", color=colour, ms=6, capsize=2, lw=1,
                    label=name if name not in seen else None, zorder=3)
        seen.add(name)
    for p in published:
        _, colour = FAMILY_STYLE.get(p.family, FAMILY_STYLE[None])
        ax.plot(p.top1, p.alignment, marker="D", mfc="none", mec=colour, ms=6, ls="none", zorder=2,
                label="Published (read off the paper's figure)" if "published" not in seen else None)
        seen.add("published")
    by_id = {p.model.split("+")[0]: p for p in points}
    for p in points:
        base = by_id.get(p.base_model or "")
        if p.harmonized and base is not None:
            ax.annotate("", xy=(p.top1, p.alignment), xytext=(base.top1, base.alignment),
                        arrowprops={"arrowstyle": "->", "color": FAMILY_STYLE["harmonized"][1], "lw": 1.2})
    xs = [p.top1 for p in [*points, *published]]
    pad = max(2.0, 0.08 * (max(xs) - min(xs)))  # a few points of room even when all models tie
    # accuracies are percentages: the padding never takes the axis below 0 or above 100
    lo, hi = max(0.0, min(xs) - pad), min(100.0, max(xs) + pad)
    ax.set_xlim(lo, hi)
    for p in notable(points, label_top):
        right = p.top1 > lo + 0.7 * (hi - lo)  # labels of points near the right edge go to their left
        ax.annotate(p.label, (p.top1, p.alignment), textcoords="offset points", xytext=(-4 if right else 4, 4),
                    ha="right" if right else "left", fontsize=7)
    ax.set_xlabel("ImageNet top-1 accuracy (%, published)" if accuracy == "published"
                  else f"Accuracy on the {dataset} images (%, measured)")
    names = {r.get("score_name") for r in loaded.records} - {None}
    import textwrap

    ax.set_ylabel(textwrap.fill(names.pop(), 48) if len(names) == 1 else "Human feature alignment (% of human ceiling)")
    if any(r.get("dataset_synthetic") for r in loaded.records):
        ax.set_title(f"SYNTHETIC data ({dataset}): accuracy vs alignment")
        ax.text(0.99, 0.01, "SYNTHETIC: generated data, not human ClickMe maps", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="grey")
    else:
        ax.set_title(f"{dataset}: accuracy vs alignment")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, output or Path(results_dir) / dataset / "pareto", formats), notes


def save_figure(fig: Any, output: str | Path, formats: Sequence[str] = ("png", "svg", "pdf")) -> list[Path]:
    """Write ``fig`` atomically to ``output`` (its extension, if png/svg/pdf, picks the one format) or
    to ``output.<fmt>`` for each of ``formats``; closes the figure; returns the paths written."""
    import matplotlib.pyplot as plt

    stem = Path(output)
    if stem.suffix.lstrip(".") in ("png", "svg", "pdf"):
        formats, stem = [stem.suffix.lstrip(".")], stem.with_suffix("")
    written = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        written.append(atomic_write_bytes(stem.with_suffix(f".{fmt}"), buf.getvalue()))
    plt.close(fig)
    return written


def draw_front(ax, points: Sequence[Point]) -> None:
    front = pareto_front(points)
    if len(front) < 1:
        return
    xs = [p.top1 for p in front]
    ys = [p.alignment for p in front]
    # staircase: everything below and to the left of a front point is dominated
    sx, sy = [min(xs) - 1], [ys[0]]
    for i, (x, y) in enumerate(zip(xs, ys)):
        sx += [x, x]
        sy += [y, ys[i + 1] if i + 1 < len(ys) else 0]
    ax.fill_between(sx, sy, 0, step=None, color="grey", alpha=0.12, lw=0, label="Pareto front (non-harmonized)")
    ax.plot(sx[:-1], sy[:-1], color="grey", lw=0.8, alpha=0.6)


def _scale(record: dict[str, Any]) -> float:
    """Plot units: maps alignments are fractions of the ceiling, drawn as percent; the psychophysics
    score (-log MSE of normalised accuracy curves, Figure 5b) has no ceiling and is drawn as is."""
    return 1.0 if record.get("task") == "psychophysics" else 100.0


def _baselines(results_dir, dataset) -> list[tuple[float, str, str]]:
    """(y value, legend label, line style) of the dataset's reference lines: the center-bias baseline
    (maps), or the humans' split-half agreement and a flat curve's score (psychophysics)."""
    loaded = records.load_results(results_dir, dataset, kinds=("baseline",))
    out = []
    for r in loaded.records:
        value, _ = records.headline(r)
        if value is None:
            continue
        if r.get("model") == "center-bias":
            out.append((100 * value, f"Center-bias baseline ({100 * value:.1f}%)", "--"))
        elif r.get("model") == "humans" and r.get("task") == "psychophysics":
            out.append((value, f"Humans, split-half of trials ({value:.2f})", "--"))
            if r.get("flat_model_alignment") is not None:
                flat = r["flat_model_alignment"]
                out.append((flat, f"Flat curve, ignores the stimulus ({flat:.2f})", ":"))
    return out


def notable(points: Sequence[Point], k: int) -> list[Point]:
    if not points:
        return []
    chosen = {p.model: p for p in points if p.harmonized}
    for key in (lambda p: p.alignment, lambda p: p.top1, lambda p: -p.alignment):
        for p in sorted(points, key=key, reverse=True)[:k]:
            chosen.setdefault(p.model, p)
    return list(chosen.values())


