"""Figure 5c: accuracy against the fraction of pixels revealed, humans and chosen models, from records."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark import figures, records
from benchmark.figures import save_figure
from model_zoo.errors import InvalidInputError


def plot_curves(results_dir: str | Path, dataset: str, models: Sequence[str], output: str | Path | None = None, *,
                formats: Sequence[str] = ("png",), normalized: bool = False) -> tuple[list[Path], list[str]]:
    """Draw :func:`build_curves` to ``output`` (default ``RESULTS/<dataset>/curves.png``); returns
    (files written, notes)."""
    fig, notes = build_curves(results_dir, dataset, models, normalized=normalized)
    return save_figure(fig, output or Path(results_dir) / dataset / "curves", formats), notes


def build_curves(results_dir: str | Path, dataset: str, models: Sequence[str], *, normalized: bool = False
                 ) -> tuple[Any, list[str]]:
    """The human curve and each model's (``models``: record names; empty = all) against the
    revealed percentage (log x axis), as an open figure, with notes. ``normalized``: the
    min-max-normalised curves the score compares, instead of raw accuracy (both in [0, 1])."""
    from benchmark.psychophysics.scores import minmax

    loaded = records.load_results(results_dir, dataset, kinds=("model",))
    notes = list(loaded.problems)
    by_name = {r["model"]: r for r in loaded.records if r.get("task") == "psychophysics" and r.get("status") == "ok"}
    wanted = list(models) or sorted(by_name)
    missing = [m for m in wanted if m not in by_name]
    if missing:
        raise InvalidInputError(f"no ok psychophysics record for model(s) {missing} in {Path(results_dir) / dataset} "
                                f"(have: {', '.join(sorted(by_name)) or 'none'})")
    if not wanted:
        raise InvalidInputError(f"no psychophysics records in {Path(results_dir) / dataset}; run `alignbench run "
                                f"--dataset {dataset} --model ID` first")
    transform = (lambda c: minmax(c)[0]) if normalized else (lambda c: np.asarray(c, float))
    chosen = [by_name[m] for m in wanted]
    reasons = figures.synthetic_reasons(chosen)
    fig, (ax,) = figures.new_figure(panel_size=(4.8, 3.8), legend_width=2.8, marked=bool(reasons))
    first = chosen[0]
    x = np.asarray(first["levels_percent"])
    ax.plot(x, transform(first["human_accuracy"]), "-o", color="black", lw=2, ms=4, label="Humans", zorder=3,
            clip_on=False)
    for i, (name, r) in enumerate(zip(wanted, chosen)):
        if r["human_accuracy"] != first["human_accuracy"]:
            notes.append(f"{name}: scored against other human data than {wanted[0]}")
        weights = "" if r.get("weights", "pretrained") == "pretrained" else f", {str(r['weights'])[:12]} weights"
        label = f"{r.get('display_name') or name}{weights}\n(score {r['score']:.2f} ± {r['error']:.2f})"
        ax.plot(r["levels_percent"], transform(r["model_accuracy"]), "-", marker=figures.CYCLE_MARKERS[
            i % len(figures.CYCLE_MARKERS)], color=figures.CYCLE_COLOURS[i % len(figures.CYCLE_COLOURS)], ms=4,
            lw=1.2, label=label, clip_on=False)
    if not normalized:
        ax.axhline(0.5, color=figures.GREY, ls=":", lw=1, label="chance (animal vs non-animal)")
    ax.set_xscale("log")
    ax.set_xlim(x.min() / 1.15, x.max() * 1.15)
    ax.set_ylim(0.0, 1.0)  # an accuracy, raw or min-max normalised
    ax.set_xticks(x, [f"{v:.3g}" for v in x], fontsize=7)  # the levels themselves, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("Important pixels revealed (%)")
    ax.set_ylabel("Accuracy (min-max normalised)" if normalized else "Accuracy (animal vs non-animal)")
    ax.set_title(f"{dataset}: decision rule {first.get('decision_rule')}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    figures.add_legend(ax, ax.get_legend_handles_labels()[0])
    figures.mark_synthetic(fig, reasons)
    figures.freeze_layout(fig)
    return fig, notes
