"""``alignbench plot-maps``: images, human maps and models' maps side by side (the paper's Figure 2)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot-maps", help="draw images, human maps and models' maps (the paper's Figure 2)",
                       description="For chosen images (--image-id) or the N most and least aligned images of a "
                       "model's run (--most/--least, by the per-image scores in RESULTS/<dataset>/), draw the "
                       "image, the human map and each model's map with its per-image Spearman. Maps come from "
                       "`alignbench run --save-maps` when saved for the same record, else are recomputed for "
                       "those images only. Smoothing is for display only; the printed Spearman is the record's.")
    p.add_argument("--dataset", default="clickme-val", help=options.DATASET_HELP + " (default clickme-val)")
    p.add_argument("--model", nargs="+", required=True, metavar="ID",
                   help="model ids or exported model folders, one column each (named as `run` names them)")
    p.add_argument("--weights", default="pretrained", help="as for `alignbench run` (pretrained, random, a file)")
    options.add_precision(p)
    p.add_argument("--image-id", nargs="+", metavar="ID", help="these images (ids as in the scores files)")
    p.add_argument("--most", type=int, default=0, metavar="N", help="the N images of highest Spearman")
    p.add_argument("--least", type=int, default=0, metavar="N",
                   help="the N images of lowest Spearman (default without --image-id: --most 3 --least 3)")
    p.add_argument("--by", metavar="MODEL", help="rank --most/--least by this model's scores (default: the first)")
    p.add_argument("--maps-from", choices=["auto", "store", "recompute"], default="auto",
                   help="auto: saved maps (run --save-maps) when they match the record, else recompute; "
                   "store: saved maps only; recompute: always load the models")
    p.add_argument("--sigma", type=float, help="display smoothing, Gaussian sigma in pixels of a 224-pixel map "
                   "(0: none; default benchmark.plots_maps.DISPLAY_SIGMA, 4)")
    options.add_results(p)
    p.add_argument("--output", type=Path, help="output file (its extension picks the format) or stem; "
                   "default RESULTS/<dataset>/maps.{png,svg,pdf}")
    p.add_argument("--format", default="png,svg,pdf", help="comma-separated formats when --output has none")
    options.add_device(p)
    options.add_batch_size(p, default=16, what="images per batch of recomputed maps")
    options.add_offline(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from benchmark.maps_figure import MapsFigureConfig, plot_maps
    from benchmark.plots_maps import DISPLAY_SIGMA
    from model_zoo.errors import InvalidInputError
    from model_zoo.weights import offline_mode

    if args.image_id and (args.most or args.least or args.by):
        raise InvalidInputError("--image-id names the images: do not combine it with --most/--least/--by")
    config = MapsFigureConfig(
        dataset=args.dataset, models=args.model, results_dir=args.results, image_ids=args.image_id or (),
        most=args.most, least=args.least, by=args.by, weights=args.weights, precision=args.precision,
        device=args.device, batch_size=args.batch_size, source=args.maps_from, smooth_sigma=DISPLAY_SIGMA if args.sigma is None else (args.sigma or None),
        output=args.output, formats=[f.strip() for f in args.format.split(",") if f.strip()],
        download=not args.offline)
    with offline_mode(args.offline):
        written, notes = plot_maps(config)
    for note in notes:
        print(f"note: {note}")
    for path in written:
        print(f"wrote {path}")
    return 0
