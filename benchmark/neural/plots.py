"""IT predictivity against ImageNet top-1, one subplot per panel (the 2023 paper's Figure 3 layout).

Reached through ``alignbench plot-pareto --dataset it-arcaro2020`` (:func:`benchmark.plots.plot_pareto`
dispatches here for neural records). Per panel: measured models coloured by family with their
bootstrap 95% intervals, the Pareto front of the non-harmonized models shaded, arrows from each
base model to its harmonized version, the panel's noise ceiling (dashed), and the paper's published
harmonized points as hollow diamonds labelled as read off the figure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from benchmark import records
from benchmark.plots import FAMILY_STYLE, Point, draw_front, notable, save_figure
from model_zoo.errors import InvalidInputError

PANEL_TITLES = {"monkey1-PL": "Monkey 1, PL", "monkey1-ML": "Monkey 1, ML", "monkey2-ML": "Monkey 2, ML"}


def panel_points(results_dir: str | Path, dataset: str) -> tuple[dict[str, list[tuple[Point, list]]], list[str]]:
    """{panel: [(point, [low, high])]} of every ok neural record with a published top-1; notes."""
    loaded = records.load_results(results_dir, dataset)
    notes = list(loaded.problems)
    out: dict[str, list[tuple[Point, list]]] = {}
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
                          harmonized=bool(r.get("harmonized")), base_model=r.get("base_model"))
            out.setdefault(panel, []).append((point, p.get("predictivity_ci95") or [None, None]))
    return out, notes


def _ceilings(results_dir: str | Path, dataset: str) -> dict[str, dict[str, Any]]:
    loaded = records.load_results(results_dir, dataset, kinds=("ceiling",))
    for r in loaded.records:
        if r.get("task") == "neural":
            return r.get("panels") or {}
    return {}


def plot_pareto_neural(results_dir: str | Path, dataset: str, output: str | Path | None = None, *,
                       formats: Sequence[str] = ("png", "svg", "pdf"), with_published: bool = True
                       ) -> tuple[list[Path], list[str]]:
    """Draw the figure; returns (files written, notes). Published points come from
    ``results_dir/published/`` when the dataset is the paper's (``it-arcaro2020``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmark.neural.published import SOURCE, published_path, read_published

    measured, notes = panel_points(results_dir, dataset)
    published = []
    if with_published and dataset == "it-arcaro2020":
        path = published_path(results_dir)
        if path.is_file():
            published = read_published(path)
        else:
            notes.append(f"{path}: not found; published points not drawn")
    order = [p for p in PANEL_TITLES if p in measured or any(q.panel == p for q in published)]
    order += sorted(p for p in measured if p not in order)
    if not order:
        raise InvalidInputError(f"no plottable neural results for dataset {dataset!r} in {results_dir} "
                                "(run `alignbench run` first)")
    ceilings = _ceilings(results_dir, dataset)
    fig, axes = plt.subplots(1, len(order), figsize=(5.2 * len(order), 4.6), dpi=150, squeeze=False)
    for ax, panel in zip(axes[0], order):
        pts = measured.get(panel, [])
        draw_front(ax, [p for p, _ in pts if not p.harmonized])
        seen: set[str] = set()
        for p, ci in pts:
            name, colour = FAMILY_STYLE.get(p.family, FAMILY_STYLE[None])
            yerr = None
            if ci and ci[0] is not None and ci[1] is not None:
                yerr = [[max(p.alignment - ci[0], 0)], [max(ci[1] - p.alignment, 0)]]
            ax.errorbar(p.top1, p.alignment, yerr=yerr, fmt="o", color=colour, ms=5, capsize=2, lw=1,
                        label=name if name not in seen else None, zorder=3)
            seen.add(name)
        by_id = {p.model.split("+")[0]: p for p, _ in pts}
        for p, _ in pts:
            base = by_id.get(p.base_model or "")
            if p.harmonized and base is not None:
                ax.annotate("", xy=(p.top1, p.alignment), xytext=(base.top1, base.alignment),
                            arrowprops={"arrowstyle": "->", "color": FAMILY_STYLE["harmonized"][1], "lw": 1.2})
        for p in notable([p for p, _ in pts], 3):
            ax.annotate(p.label, (p.top1, p.alignment), textcoords="offset points", xytext=(4, -8), fontsize=6)
        for q in (q for q in published if q.panel == panel):
            ax.plot(q.top1, q.predictivity, marker="D", mfc="none", mec=FAMILY_STYLE["harmonized"][1], ms=6,
                    ls="none", zorder=2, label="Published harmonized (read off the figure)"
                    if "published" not in seen else None)
            ax.annotate(q.model.replace("Harmonized ", "H-").split(" (")[0], (q.top1, q.predictivity),
                        textcoords="offset points", xytext=(3, 3), fontsize=6, color="#8c4a00")
            seen.add("published")
        c = (ceilings.get(panel) or {}).get("value")
        if c is not None:
            ax.axhline(c, color="black", ls="--", lw=1,
                       label=f"noise ceiling ({(ceilings[panel].get('method') or '')}) {c:.2f}")
        ax.set_title(PANEL_TITLES.get(panel, panel))
        ax.set_xlabel("ImageNet top-1 accuracy (%)")
        ax.set_ylabel("IT predictivity (median Pearson r over sites)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    if published:
        fig.text(0.01, 0.005, f"Hollow diamonds: {SOURCE}.", fontsize=6, ha="left", va="bottom")
    fig.suptitle(f"{dataset}: IT predictivity vs accuracy (layer chosen on held-out images)", fontsize=10)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return save_figure(fig, output or Path(results_dir) / dataset / "pareto", formats), notes
