"""IT predictivity against ImageNet top-1, one subplot per panel (the 2023 paper's Figure 3 layout).

Reached through ``alignbench plot-pareto --dataset it-arcaro2020`` (``NeuralTask.plot``). Per
panel: measured models coloured by family with their bootstrap 95% intervals, the Pareto front of
the non-harmonized models shaded, arrows from each base model to its harmonized version, the
panel's noise ceiling (dashed), and the paper's published harmonized points as hollow diamonds
labelled as read off the figure; one legend, right of the panels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from benchmark import figures, published, records
from benchmark.plots import (ACCURACY_RANGE, Point, draw_arrows, draw_front, family_handles,
                             marker_handles, notable, save_figure)
from model_zoo.errors import InvalidInputError

PANEL_TITLES = {"monkey1-PL": "Monkey 1, PL", "monkey1-ML": "Monkey 1, ML", "monkey2-ML": "Monkey 2, ML"}
PEARSON_RANGE = (-1.0, 1.0)


def panel_points(results_dir: str | Path, dataset: str) -> tuple[dict[str, list[tuple[Point, list]]], list[str]]:
    """{panel: [(point, [low, high])]} of every ok neural record with a published top-1; notes."""
    out, notes, _ = _panel_points(records.load_results(results_dir, dataset))
    return out, notes


def _panel_points(loaded: records.LoadedResults) -> tuple[dict[str, list[tuple[Point, list]]], list[str], list[dict]]:
    notes = list(loaded.problems)
    out: dict[str, list[tuple[Point, list]]] = {}
    drawn = []
    for r in loaded.records:
        if r.get("status") != "ok" or r.get("task") != "neural":
            continue
        top1 = r.get("top1_published")
        if not isinstance(top1, (int, float)):
            # random-weight controls and own weights have none (and this task measures no accuracy)
            notes.append(f"{r['model']}: no published ImageNet top-1 (weights: {r.get('weights')}); not plotted")
            continue
        for panel, p in (r.get("panels") or {}).items():
            if p.get("predictivity") is None:
                continue
            point = Point(model=r["model"], label=r.get("display_name") or r["model"], family=r.get("family"),
                          top1=float(top1), alignment=float(p["predictivity"]), sd=None,
                          harmonized=bool(r.get("harmonized")), base_model=r.get("base_model"),
                          random=figures.is_random(r), synthetic=bool(r.get("dataset_synthetic")))
            out.setdefault(panel, []).append((point, p.get("predictivity_ci95") or [None, None]))
            drawn.append(r)
    return out, notes, drawn


def _ceilings(results_dir: str | Path, dataset: str) -> tuple[dict[str, dict[str, Any]], list[dict]]:
    loaded = records.load_results(results_dir, dataset, kinds=("ceiling",))
    for r in loaded.records:
        if r.get("task") == "neural":
            return r.get("panels") or {}, [r]
    return {}, []


def plot_pareto_neural(results_dir: str | Path, dataset: str, output: str | Path | None = None, *,
                       formats: Sequence[str] = figures.VECTOR_FORMATS, with_published: bool = False
                       ) -> tuple[list[Path], list[str]]:
    """Draw the figure (:func:`build_neural`) to ``output`` (default ``RESULTS/<dataset>/pareto.*``);
    returns (files written, notes)."""
    fig, notes = build_neural(results_dir, dataset, with_published=with_published)
    return save_figure(fig, output or Path(results_dir) / dataset / "pareto", formats), notes


def build_neural(results_dir: str | Path, dataset: str, *, with_published: bool = False) -> tuple[Any, list[str]]:
    """The figure (open) and notes. The paper's published points are drawn for the paper's dataset
    (:data:`benchmark.published.NEURAL_DATASET`) always; ``with_published`` on another dataset is
    answered by a note. Raises with the reason when no panel has a point."""
    from benchmark.neural.published import SOURCE, read_published

    loaded = records.load_results(results_dir, dataset)
    measured, notes, drawn = _panel_points(loaded)
    pub = read_published() if dataset == published.NEURAL_DATASET else []
    if with_published and not pub:
        notes.append(f"--with-published: no published points for dataset {dataset!r} (the papers published "
                     f"per-model points for {', '.join(published.datasets_with_points())})")
    order = [p for p in PANEL_TITLES if p in measured or any(q.panel == p for q in pub)]
    order += sorted(p for p in measured if p not in order)
    if not order:
        raise InvalidInputError(_nothing_to_plot(results_dir, dataset, loaded))
    ceilings, ceiling_recs = _ceilings(results_dir, dataset)
    reasons = figures.synthetic_reasons(drawn + ceiling_recs)
    fig, axes = figures.new_figure(len(order), panel_size=(4.0, 3.8), legend_width=2.4, marked=bool(reasons))
    all_measured = [p for pts in measured.values() for p, _ in pts]
    labels: dict[str, list] = {}
    for ax, panel in zip(axes, order):
        pts = measured.get(panel, [])
        pub_here = [q for q in pub if q.panel == panel]
        c = (ceilings.get(panel) or {}).get("value")
        ax.set_xlim(*figures.limits([p.top1 for p, _ in pts] + [q.top1 for q in pub_here], ACCURACY_RANGE,
                                    min_pad=1.5))
        ys = [v for p, ci in pts for v in (p.alignment, *(x for x in ci if x is not None))]
        ax.set_ylim(*figures.limits(ys + [q.predictivity for q in pub_here] + ([c] if c is not None else []),
                                    PEARSON_RANGE, min_pad=0.03))
        draw_front(ax, [p for p, _ in pts if not p.harmonized])
        for p, ci in pts:
            colour = figures.family_style(p.family)[1]
            yerr = None
            if ci and ci[0] is not None and ci[1] is not None:
                yerr = [[max(p.alignment - ci[0], 0)], [max(ci[1] - p.alignment, 0)]]
            ax.errorbar(p.top1, p.alignment, yerr=yerr, fmt="o", color=colour, ms=5, capsize=2, lw=1, zorder=3)
        draw_arrows(ax, [p for p, _ in pts])
        for q in pub_here:
            ax.plot(q.top1, q.predictivity, marker="D", mfc="none", mec=figures.family_style("harmonized")[1],
                    mew=1.2, ms=5.5, ls="none", zorder=2)
        title = PANEL_TITLES.get(panel, panel)
        if c is not None:
            ax.axhline(c, color="black", ls="--", lw=1)
            title += f" (ceiling r = {c:.2f})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("ImageNet top-1 accuracy (%, published)")
        ax.grid(alpha=0.3)
        labels[panel] = ([(p.top1, p.alignment, p.label, "black") for p in notable([p for p, _ in pts], 2)]
                         + [(q.top1, q.predictivity, _short(q.model), "#8c4a00") for q in pub_here])
    axes[0].set_ylabel("IT predictivity\n(median Pearson r over sites)")
    fig.suptitle(f"{dataset}: IT predictivity vs accuracy", fontsize=10)
    handles = [*family_handles(all_measured + ([Point("", "", "harmonized", 0, 0, None, True)] if pub else [])),
               *marker_handles(all_measured, [], error="bootstrap 95% interval")]
    if pub:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="D", mfc="none", mec="black", ls="none", ms=5,
                              label=f"harmonized, published:\n{SOURCE}"))
    if any(p.harmonized for p in all_measured) and any(not p.harmonized for p in all_measured):
        handles.append(figures.arrow_handle(figures.family_style("harmonized")[1], "base model → harmonized"))
    if ceilings:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", ls="--", lw=1, label="noise ceiling of the panel"))
    figures.add_legend(fig, handles)
    figures.mark_synthetic(fig, reasons)
    figures.freeze_layout(fig)
    for ax, panel in zip(axes, order):
        avoid = [(p.top1, p.alignment) for p, _ in measured.get(panel, [])]
        avoid += [(q.top1, q.predictivity) for q in pub if q.panel == panel]
        _, dropped = figures.place_labels(ax, labels[panel], avoid)
        if dropped:
            notes.append(f"{panel}: labels left off (no room without overlap): {', '.join(dropped)}")
    return fig, notes


def _short(model: str) -> str:
    return model.replace("Harmonized ", "H-").split(" (")[0]


def _nothing_to_plot(results_dir: str | Path, dataset: str, loaded: records.LoadedResults) -> str:
    folder = Path(results_dir) / dataset
    head = f"nothing to plot for dataset {dataset!r}: "
    neural = [r for r in loaded.records if r.get("task") == "neural"]
    ok = [r for r in neural if r.get("status") == "ok"]
    if not neural:
        return head + (f"no neural records in {folder}; score models first "
                       f"(`alignbench run --dataset {dataset} --model ID`)")
    if not ok:
        return head + f"all {len(neural)} records in {folder} are failures (each record's `failure` says why)"
    weights = sorted({str(r.get("weights")) for r in ok})
    return head + (f"no model has a published ImageNet top-1, the x axis of this figure ({len(ok)} record(s), "
                   f"weights: {', '.join(weights)}; random-weight controls and your own weights have none, and "
                   "this task measures no accuracy); score catalog models with their pretrained weights "
                   f"(`alignbench run --dataset {dataset} --model ID`, ids from `alignbench models list`)")
