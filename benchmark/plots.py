"""The accuracy-versus-alignment figure (the paper's Figures 3 and 4), from result records.

Measured points come from ``results/<dataset>/*.json``; the papers' published points (package
data, :mod:`benchmark.published`, read off the paper's figures) are drawn only on request and
always as hollow diamonds, so the two are never confused. Shared style: :mod:`benchmark.figures`.
"""
from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmark import figures, published, records
from benchmark.figures import FAMILY_STYLE, family_style, save_figure
from model_zoo.errors import InvalidInputError
from model_zoo.explainers import DEFAULT as DEFAULT_EXPLAINER

__all__ = ["FAMILY_STYLE", "Point", "build_pareto", "measured_points", "notable", "pareto_front", "plot_pareto",
           "published_points", "save_figure"]

PUBLISHED_FAMILIES = {"CNN": "cnn", "Transformer": "transformer", "Self-supervised": "self_supervised",
                      "Robust": "robust", "CNN extra data": "cnn_extra_data", "Neural harmonizer": "harmonized"}
PUBLISHED_LABEL = "published (read off the paper's figure)"
ACCURACY_CHOICES = ("auto", "published", "measured")
ACCURACY_RANGE = (0.0, 100.0)  # percent


@dataclass
class Point:
    model: str
    label: str
    family: str | None
    top1: float          # ImageNet top-1, percent
    alignment: float     # percent of the ceiling (maps), the task's score otherwise
    sd: float | None     # same units
    harmonized: bool
    base_model: str | None = None
    published: bool = False
    random: bool = False     # random-weight control
    synthetic: bool = False  # scored on generated data


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """Points not dominated by another (higher or equal accuracy and alignment), by accuracy."""
    front: list[Point] = []
    for p in sorted(points, key=lambda q: (-q.top1, -q.alignment)):
        if not front or p.alignment > front[-1].alignment:
            front.append(p)
    return sorted(front, key=lambda q: q.top1)


def select_explainer(loaded: records.LoadedResults, explainer: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of ``explainer`` (and those of tasks without one), and a note on the others."""
    keep, others = [], {}
    for r in loaded.records:
        name = records.explainer_name(r)
        if name is None or name == explainer:
            keep.append(r)
        else:
            others[name] = others.get(name, 0) + 1
    notes = []
    if others:
        listed = ", ".join(f"{k} ({v})" for k, v in sorted(others.items()))
        notes.append(f"records of other explainers not drawn: {listed} (choose with --explainer)")
    return keep, notes


def measured_points(results_dir: str | Path, dataset: str, accuracy: str = "auto",
                    loaded: records.LoadedResults | None = None, explainer: str = DEFAULT_EXPLAINER
                    ) -> tuple[list[Point], list[str], str]:
    """Plottable records of ``dataset`` and notes on the skipped ones, with the accuracy axis used.

    ``accuracy``: ``published`` = the ImageNet top-1 published for the weights; ``measured`` = the
    fraction of this dataset's images classified correctly (``top1_measured``); ``auto`` = published
    when any ok record has one, else measured (random-weight controls and users' own weights have
    no published top-1: on a published axis they are skipped with a note). Never mixed on one axis.
    Only the records of ``explainer`` are drawn (records of tasks without an explainer always are);
    records of several precisions drawn together are noted.
    """
    if accuracy not in ACCURACY_CHOICES:
        raise InvalidInputError(f"accuracy={accuracy!r}: expected one of {ACCURACY_CHOICES}")
    loaded = loaded if loaded is not None else records.load_results(results_dir, dataset)
    notes = list(loaded.problems)
    chosen, explainer_notes = select_explainer(loaded, explainer)
    notes += explainer_notes
    ok = [r for r in chosen if r.get("status") == "ok"]
    precisions = sorted({str(r.get("precision") or "float32") for r in ok})
    if len(precisions) > 1:
        notes.append(f"records of several precisions are drawn together: {', '.join(precisions)} "
                     "(bfloat16 maps differ from float32 ones; see the README)")
    if accuracy == "auto":
        has_published = not ok or any(isinstance(r.get("top1_published"), (int, float)) for r in ok)
        accuracy = "published" if has_published else "measured"
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
                            harmonized=bool(r.get("harmonized")), base_model=r.get("base_model"),
                            random=figures.is_random(r), synthetic=bool(r.get("dataset_synthetic"))))
    return points, notes, accuracy


def published_points(dataset: str) -> list[Point]:
    """The papers' published points for ``dataset`` (package data; empty when none were published)."""
    import pandas as pd

    key = next((k for k in published.PARETO if dataset.startswith(k)), None)
    if key is None:
        return []
    name, column = published.PARETO[key]
    with published.open_text(name) as fh:
        frame = pd.read_csv(fh)
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
                formats: Sequence[str] = figures.VECTOR_FORMATS, with_published: bool = False,
                label_top: int = 3, accuracy: str = "auto", explainer: str = DEFAULT_EXPLAINER
                ) -> tuple[list[Path], list[str]]:
    """Draw accuracy (x) vs alignment (y) for ``dataset`` (:func:`build_pareto`) and write it to
    ``output`` (default ``RESULTS/<dataset>/pareto.{png,svg,pdf}``); returns (files written, notes)."""
    fig, notes = build_pareto(results_dir, dataset, with_published=with_published, label_top=label_top,
                              accuracy=accuracy, explainer=explainer)
    return save_figure(fig, output or Path(results_dir) / dataset / "pareto", formats), notes


def build_pareto(results_dir: str | Path, dataset: str, *, with_published: bool = False, label_top: int = 3,
                 accuracy: str = "auto", explainer: str = DEFAULT_EXPLAINER) -> tuple[Any, list[str]]:
    """The figure (open, not saved) and notes (records skipped, labels dropped, published points
    missing). ``accuracy``, ``explainer``: see :func:`measured_points`; the paper's published points
    are drawn only on the published-ImageNet-top-1 axis. Raises with the reason when nothing can be drawn."""
    loaded = records.load_results(results_dir, dataset)
    points, notes, accuracy = measured_points(results_dir, dataset, accuracy, loaded, explainer)
    present = sorted({n for n in map(records.explainer_name, loaded.records) if n is not None})
    if not points and present and explainer not in present:
        raise InvalidInputError(f"--explainer {explainer}: no records of that explainer for dataset {dataset!r} in "
                                f"{results_dir}; its records are of: {', '.join(present)}")
    pub: list[Point] = []
    if with_published:
        pub = published_points(dataset)
        if not pub:
            notes.append(f"--with-published: no published points for dataset {dataset!r} (the papers "
                         f"published per-model points for {', '.join(published.datasets_with_points())})")
        elif accuracy != "published":
            notes.append("published points not drawn: the x axis is accuracy measured on this dataset, "
                         "not published ImageNet top-1 (use --accuracy published)")
            pub = []
    if not points and not pub:
        raise InvalidInputError(_nothing_to_plot(results_dir, dataset, loaded, accuracy, with_published))
    baselines = _baselines(results_dir, dataset)
    ok = [r for r in loaded.records if r.get("status") == "ok"]
    shown = {p.model for p in points}
    reasons = figures.synthetic_reasons([r for r in ok if r["model"] in shown] + [b[3] for b in baselines])
    fig, (ax,) = figures.new_figure(panel_size=(5.0, 4.2), marked=bool(reasons))
    drawn = [*points, *pub]
    ax.set_xlim(*figures.limits([p.top1 for p in drawn], ACCURACY_RANGE, min_pad=2.0))
    ys = [v for p in drawn for v in (p.alignment, p.alignment - (p.sd or 0), p.alignment + (p.sd or 0))]
    ax.set_ylim(*figures.limits(ys + [b[0] for b in baselines], _alignment_range(ok), min_pad=1.0))
    handles = []
    front_of = [p for p in (points or pub) if not p.harmonized]
    if draw_front(ax, front_of):
        handles.append(_front_handle("measured" if points else "published"))
    for value, label, style, _ in baselines:
        ax.axhline(value, color="black", ls=style, lw=1)
        handles.append(_line_handle(label, style))
    for p in points:
        colour = family_style(p.family)[1]
        ax.errorbar(p.top1, p.alignment, yerr=p.sd, fmt="s" if p.random else "o", color=colour, ms=5.5,
                    capsize=2, lw=1, zorder=3)
    for p in pub:
        ax.plot(p.top1, p.alignment, marker="D", mfc="none", mec=family_style(p.family)[1], mew=1.2, ms=5.5,
                ls="none", zorder=2)
    arrows = draw_arrows(ax, points)
    ax.set_xlabel("ImageNet top-1 accuracy (%, published)" if accuracy == "published"
                  else f"Accuracy on the {dataset} images (%, measured)")
    ax.set_ylabel(_ylabel(loaded.records))
    shown_explainer = f" (explainer {explainer})" if explainer != DEFAULT_EXPLAINER else ""
    ax.set_title(f"{dataset}: accuracy vs alignment{shown_explainer}", fontsize=9)
    ax.grid(alpha=0.3)
    handles = [*family_handles(drawn), *marker_handles(points, pub),
               *([figures.arrow_handle(family_style("harmonized")[1], "base model → harmonized")] if arrows else []),
               *handles]
    figures.add_legend(ax, handles)
    figures.mark_synthetic(fig, reasons)
    figures.freeze_layout(fig)
    chosen = [(p.top1, p.alignment, p.label, "black") for p in notable(points, label_top)]
    chosen += [(p.top1, p.alignment, p.label.split(" (")[0], "#8c4a00") for p in pub if p.harmonized]
    _, dropped = figures.place_labels(ax, chosen,
                                      [(p.top1, p.alignment) for p in drawn])
    if dropped:
        notes.append(f"labels left off (no room without overlap): {', '.join(dropped)}")
    return fig, notes


def draw_front(ax: Any, points: Sequence[Point]) -> bool:
    """Shade what the Pareto front of ``points`` dominates, between its first and last point only
    (down to the bottom of the axes); False when there is no span to draw (under two front points)."""
    front = pareto_front(points)
    if len(front) < 2:
        return False
    xs, ys = [p.top1 for p in front], [p.alignment for p in front]
    # a point dominates everything left of and below it: over (x[i-1], x[i]] the front is at y[i]
    ax.fill_between(xs, ys, ax.get_ylim()[0], step="pre", color=figures.GREY, alpha=0.15, lw=0, zorder=1)
    ax.step(xs, ys, where="pre", color=figures.GREY, lw=0.8, alpha=0.7, zorder=1)
    return True


def draw_arrows(ax: Any, points: Sequence[Point]) -> int:
    """Arrows from each base model to its harmonized version (both measured); returns how many."""
    by_id = {p.model.split("+")[0]: p for p in points}
    n = 0
    for p in points:
        base = by_id.get(p.base_model or "")
        if p.harmonized and base is not None:
            ax.annotate("", xy=(p.top1, p.alignment), xytext=(base.top1, base.alignment), zorder=2,
                        arrowprops={"arrowstyle": "->", "color": family_style("harmonized")[1], "lw": 1.2})
            n += 1
    return n


def family_handles(points: Sequence[Point]) -> list[Any]:
    """One legend entry per family drawn: its colour (whatever the marker)."""
    from matplotlib.patches import Patch

    families = sorted({p.family if p.family in FAMILY_STYLE else None for p in points},
                      key=lambda f: list(FAMILY_STYLE).index(f))
    return [Patch(color=family_style(f)[1], label=family_style(f)[0]) for f in families]


def marker_handles(points: Sequence[Point], pub: Sequence[Point], *, error: str = "±1 bootstrap SD") -> list[Any]:
    """Legend entries explaining the markers: measured (error bars), random-weight controls, published."""
    from matplotlib.lines import Line2D

    out = []
    if any(not p.random for p in points):
        out.append(Line2D([], [], marker="o", color="black", ls="none", ms=5, label=f"measured (bar: {error})"))
    if any(p.random for p in points):
        out.append(Line2D([], [], marker="s", color="black", ls="none", ms=5, label="measured, random weights"))
    if pub:
        out.append(Line2D([], [], marker="D", mfc="none", mec="black", ls="none", ms=5, label=PUBLISHED_LABEL))
    return out


def _front_handle(which: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=figures.GREY, alpha=0.3, label=f"dominated by the Pareto front\nof non-harmonized models ({which})")


def _line_handle(label: str, style: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], color="black", ls=style, lw=1, label=label)


def _scale(record: dict[str, Any]) -> float:
    """Plot units: maps alignments are fractions of the ceiling, drawn as percent; the psychophysics
    score (-log MSE of normalised accuracy curves, Figure 5b) has no ceiling and is drawn as is."""
    return 1.0 if record.get("task") == "psychophysics" else 100.0


def _alignment_range(recs: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """What the y quantity of ``recs`` can be: Spearman's rho is in [-1, 1], so % of a ceiling c is
    in [-100/c, 100/c]; the psychophysics score, -log MSE of [0, 1] curves, in [0, -log(MSE floor)]."""
    if recs and {r.get("task", "maps") for r in recs} == {"psychophysics"}:
        from benchmark.psychophysics.scores import MSE_FLOOR

        return 0.0, -math.log(MSE_FLOOR)
    ceilings = [r["ceiling"] for r in recs if isinstance(r.get("ceiling"), (int, float)) and r["ceiling"] > 0]
    if not ceilings:
        return -math.inf, math.inf
    return -100 / min(ceilings), 100 / min(ceilings)


def _ylabel(recs: Sequence[dict[str, Any]]) -> str:
    tasks = {r.get("task", "maps") for r in recs}
    if tasks == {"psychophysics"}:
        names = {r.get("score_name") for r in recs} - {None}
        return textwrap.fill(names.pop(), 48) if len(names) == 1 else "Decision alignment"
    return "Human feature alignment\n(Spearman ρ, % of the human ceiling)"


def _nothing_to_plot(results_dir: str | Path, dataset: str, loaded: records.LoadedResults, accuracy: str,
                     with_published: bool) -> str:
    folder = Path(results_dir) / dataset
    head = f"nothing to plot for dataset {dataset!r}: "
    ok = [r for r in loaded.records if r.get("status") == "ok"]
    if not loaded.records:
        where = "no model records in" if folder.is_dir() else "no folder"
        return (head + f"{where} {folder}; score models first (`alignbench run --dataset {dataset} --model ID`)"
                + ("; --with-published: the papers published no points for this dataset" if with_published
                   else ", or pass --with-published to draw the paper's published points alone"))
    if not ok:
        return head + (f"all {len(loaded.records)} records in {folder} are failures (each record's `failure` "
                       "says why); fix the cause and run again")
    if all(records.headline(r)[0] is None for r in ok):
        return head + "no record has an alignment (the dataset has no human ceiling)"
    if accuracy == "published":
        return head + ("no model has a published ImageNet top-1 (random-weight controls and your own weights "
                       "have none); pass --accuracy measured to use the accuracy measured on the dataset")
    return head + "no model has an accuracy measured on this dataset (records of an older revision?)"


def _baselines(results_dir: str | Path, dataset: str) -> list[tuple[float, str, str, dict[str, Any]]]:
    """(y value, legend label, line style, record) of the dataset's reference lines: the center-bias
    baseline (maps), or the humans' split-half agreement and a flat curve's score (psychophysics)."""
    loaded = records.load_results(results_dir, dataset, kinds=("baseline",))
    out = []
    for r in loaded.records:
        value, _ = records.headline(r)
        if value is None:
            continue
        if r.get("model") == "center-bias":
            out.append((100 * value, f"center-bias baseline ({100 * value:.1f}%)", "--", r))
        elif r.get("model") == "humans" and r.get("task") == "psychophysics":
            out.append((value, f"humans, split-half of trials ({value:.2f})", "--", r))
            if r.get("flat_model_alignment") is not None:
                flat = r["flat_model_alignment"]
                out.append((flat, f"flat curve, ignores the stimulus ({flat:.2f})", ":", r))
    return out


def notable(points: Sequence[Point], k: int) -> list[Point]:
    """The points worth a label, in priority order: harmonized, then the ``k`` most aligned, most
    accurate and least aligned."""
    if not points:
        return []
    chosen = {p.model: p for p in points if p.harmonized}
    for key in (lambda p: p.alignment, lambda p: p.top1, lambda p: -p.alignment):
        for p in sorted(points, key=key, reverse=True)[:k]:
            chosen.setdefault(p.model, p)
    return list(chosen.values())
