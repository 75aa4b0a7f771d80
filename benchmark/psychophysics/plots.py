"""Figure 5c: accuracy against the fraction of pixels revealed, humans and chosen models, from records."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from benchmark import records
from benchmark.plots import save_figure
from model_zoo.errors import InvalidInputError


def plot_curves(results_dir: str | Path, dataset: str, models: Sequence[str], output: str | Path | None = None, *,
                formats: Sequence[str] = ("png",), normalized: bool = False) -> tuple[list[Path], list[str]]:
    """Draw the human curve and each model's (``models``: record names; empty = all) against the
    revealed percentage (log x axis). ``normalized``: the min-max-normalised curves the score
    compares, instead of raw accuracy. Returns (files written, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
                                f"--dataset {dataset}` first")
    transform = (lambda c: minmax(c)[0]) if normalized else (lambda c: np.asarray(c, float))
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=150)
    first = by_name[wanted[0]]
    x = np.asarray(first["levels_percent"])
    ax.plot(x, transform(first["human_accuracy"]), "k-o", lw=2, ms=4, label="Humans", zorder=3)
    for name in wanted:
        r = by_name[name]
        if r["human_accuracy"] != first["human_accuracy"]:
            notes.append(f"{name}: scored against other human data than {wanted[0]}")
        weights = "" if r.get("weights", "pretrained") == "pretrained" else f", {str(r['weights'])[:12]} weights"
        label = f"{r.get('display_name') or name}{weights} ({r['score']:.2f} ± {r['error']:.2f})"
        ax.plot(r["levels_percent"], transform(r["model_accuracy"]), "-s", ms=3, label=label)
    if not normalized:
        ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:.3g}" for v in x], fontsize=7)  # the levels themselves, not powers of ten
    ax.minorticks_off()
    ax.set_xlabel("Important pixels revealed (%)")
    ax.set_ylabel("Accuracy (min-max normalised)" if normalized else "Accuracy (animal vs non-animal)")
    ax.set_title(f"{dataset}: decision rule {first.get('decision_rule')}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, output or Path(results_dir) / dataset / "curves", formats), notes
