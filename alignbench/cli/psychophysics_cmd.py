"""``alignbench psychophysics make-stimuli`` and ``alignbench plot-curves`` (Figure 5c)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("psychophysics", help="the 'how' benchmark: make stimuli",
                       description="Tools of the psychophysics benchmark. Score models with "
                       "`alignbench run --dataset psychophysics`.")
    psub = p.add_subparsers(dest="psychophysics_command", metavar="SUBCOMMAND")
    m = psub.add_parser("make-stimuli", help="write the revealed-pixel stimuli (PNG + manifest)",
                        description="Reveal the top 10^(k/5) % (k=0..10) of each image's importance map over "
                        "phase-scrambled noise of the image, centred, greyscale; PNGs plus manifest.csv/json.")
    m.add_argument("--output", type=Path, required=True, help="folder to write the stimuli to")
    m.add_argument("--seed", type=int, default=0, help="noise seed (the same seed reproduces every file)")
    m.add_argument("--source", default="clicktionary",
                   help="'clicktionary' (the named dataset) or a Clicktionary-format release folder")
    m.add_argument("--mirror", help="Clicktionary archive URL or local folder (with --source clicktionary)")
    m.add_argument("--limit", type=int, help="only the first N images")
    options.add_offline(m, legacy_no_download=True)
    m.set_defaults(handler=handle_make_stimuli)

    c = sub.add_parser("plot-curves", help="accuracy vs revealed pixels, humans and models (Figure 5c)",
                       description="Draw human and model accuracy against the percentage of important pixels "
                       "revealed, from RESULTS/<dataset>/ psychophysics records.")
    c.add_argument("--dataset", default="psychophysics", help=options.DATASET_HELP + " (default psychophysics)")
    c.add_argument("--model", action="append", default=[], help="record name (repeat; default: all)")
    options.add_results(c)
    c.add_argument("--output", type=Path, help="output file or stem (default RESULTS/<dataset>/curves.png)")
    c.add_argument("--format", default="png", help="comma-separated formats when --output has no extension")
    c.add_argument("--normalized", action="store_true", help="plot the min-max-normalised curves the score compares")
    c.set_defaults(handler=handle_plot_curves)


def handle_make_stimuli(args: argparse.Namespace) -> int:
    from benchmark.psychophysics.data import make_stimuli_from

    manifest = make_stimuli_from(args.source, args.output, seed=args.seed, download=not args.offline,
                                 mirror=args.mirror, limit=args.limit)
    with open(manifest, encoding="utf-8") as fh:
        n = sum(1 for _ in fh) - 1
    print(f"wrote {n} stimuli to {args.output} (manifest {manifest.name}, seed {args.seed})")
    return 0


def handle_plot_curves(args: argparse.Namespace) -> int:
    from benchmark.psychophysics.plots import plot_curves

    written, notes = plot_curves(args.results, args.dataset, args.model, args.output,
                                 formats=[f.strip() for f in args.format.split(",") if f.strip()],
                                 normalized=args.normalized)
    for note in notes:
        print(f"note: {note}")
    for path in written:
        print(f"wrote {path}")
    return 0
