"""``alignbench plot-pareto``: accuracy vs alignment from result records."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot-pareto", help="draw accuracy vs alignment (the paper's Figure 3/4)",
                       description="Draw ImageNet top-1 (x) against alignment (y) from RESULTS/<dataset>/: "
                       "families coloured, the non-harmonized Pareto front shaded, arrows to harmonized "
                       "versions, the center-bias baseline, bootstrap error bars.")
    p.add_argument("--dataset", default="clickme-val", help=options.DATASET_HELP + " (default clickme-val)")
    options.add_results(p)
    p.add_argument("--output", type=Path, help="output file (its extension picks the format) or stem; "
                   "default RESULTS/<dataset>/pareto.{png,svg,pdf}")
    p.add_argument("--format", default="png,svg,pdf", help="comma-separated formats when --output has none")
    p.add_argument("--with-published", action="store_true",
                   help="also draw the paper's published points (shipped with the package), as hollow diamonds; "
                   "a dataset without published points gets a note")
    p.add_argument("--accuracy", choices=("auto", "published", "measured"), default="auto",
                   help="x axis: published ImageNet top-1 of the weights, or accuracy measured on the dataset's "
                   "images; auto = published when any model has one (random-weight controls do not)")
    p.add_argument("--explainer", default="saliency",
                   help="draw the records scored with this explainer (default saliency; see `alignbench run "
                   "--explainer`)")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark.datasets import results_name
    from benchmark.tasks import plot_dataset

    written, notes = plot_dataset(args.results, results_name(args.dataset), args.output,
                                  formats=[f.strip() for f in args.format.split(",") if f.strip()],
                                  with_published=args.with_published, accuracy=args.accuracy,
                                  explainer=args.explainer)
    for note in notes:
        print(f"note: {note}")
    for path in written:
        print(f"wrote {path}")
    return 0
