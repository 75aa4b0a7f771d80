"""``alignbench leaderboard validate|verify|build``: the maintainers' side of submissions."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    lb = sub.add_parser("leaderboard", help="validate, verify and publish submissions (maintainers)",
                        description="Check submission bundles, re-score a sample of their images, and build the "
                        "static leaderboard site.")
    acts = lb.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)

    v = acts.add_parser("validate", help="check bundles: schema, ranges, counts, fingerprints, clashes",
                        description="Check submission bundles (default: every one under RESULTS/submissions). "
                        "Every problem is printed as 'bundle: field: message'. Exit status 1 if any.")
    v.add_argument("bundles", nargs="*", type=Path, metavar="BUNDLE")
    v.add_argument("--results", type=Path, default=Path("results"))
    v.add_argument("--no-local-data", action="store_true",
                   help="do not look for the datasets locally; use known_datasets.json / the catalog's records")
    v.set_defaults(handler=_validate)

    f = acts.add_parser("verify", help="re-score a seeded random subset of a bundle's images and compare",
                        description="Re-compute the per-image scores of N randomly chosen images (seeded) from the "
                        "submitted model and compare them with the bundle; mismatching images are named. "
                        "Plugin bundles without exported weights are rebuilt in the sandbox: run this in a "
                        "container or VM.")
    f.add_argument("bundle", type=Path, metavar="BUNDLE")
    f.add_argument("--n", "--n-images", dest="n_images", type=int, default=100, help="images to re-score (default 100)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference per score")
    f.add_argument("--model", type=Path, help="the submitted weights / model file when the bundle does not carry it")
    f.add_argument("--dataset-path", action="append", default=[], metavar="NAME=FOLDER",
                   help="use this local folder of shards for dataset NAME (repeatable)")
    f.add_argument("--download", action="store_true", help="download a dataset that is not cached")
    f.add_argument("--device", default="auto")
    f.add_argument("--precision", default="float32", choices=["float32", "bfloat16", "float16"])
    f.add_argument("--batch-size", type=int, default=32)
    f.add_argument("--plugin-timeout", type=float, default=600.0, metavar="S")
    f.add_argument("--plugin-memory-mb", type=int, default=16384, metavar="MB")
    f.set_defaults(handler=_verify)

    b = acts.add_parser("build", help="build the static leaderboard site",
                        description="Turn RESULTS into a static site: OUTPUT/index.html (sortable, filterable table "
                        "and accuracy-vs-alignment plot, offline), a page per model, CSV and Markdown exports. "
                        "Only bundles that pass validation are listed.")
    b.add_argument("--results", type=Path, default=Path("results"))
    b.add_argument("--output", type=Path, required=True, metavar="SITE_DIR")
    b.add_argument("--dataset", nargs="+", help="datasets to list (default: all with results)")
    b.add_argument("--no-published", action="store_true", help="leave out the paper's published points")
    b.set_defaults(handler=_build)


def _validate(args: argparse.Namespace) -> int:
    from leaderboard.validate import validate_bundles

    report = validate_bundles(args.bundles or None, results_dir=args.results, use_local_data=not args.no_local_data)
    print(report.format())
    return 0 if report.ok else 1


def _dataset_paths(items: list[str]) -> dict[str, object]:
    from benchmark.datasets import get_dataset
    from model_zoo.errors import InvalidInputError

    out = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise InvalidInputError(f"--dataset-path {item!r}: expected NAME=FOLDER")
        out[name] = get_dataset(folder, download=False)
    return out


def _verify(args: argparse.Namespace) -> int:
    from leaderboard.sandbox import Limits
    from leaderboard.verify import verify_bundle

    reports = verify_bundle(args.bundle, n_images=args.n_images, seed=args.seed, tolerance=args.tolerance,
                            model=args.model, datasets=_dataset_paths(args.dataset_path) or None,
                            download=args.download, device=args.device, precision=args.precision,
                            batch_size=args.batch_size,
                            limits=Limits(timeout_s=args.plugin_timeout, memory_mb=args.plugin_memory_mb))
    for report in reports:
        print(report.format())
    return 0 if all(r.ok for r in reports) else 1


def _build(args: argparse.Namespace) -> int:
    from leaderboard.site import build

    done = build(args.results, args.output, datasets=args.dataset, with_published=not args.no_published)
    for note in done.notes:
        print(f"note: {note}")
    print(f"site written: {done.index} ({len(done.entries)} rows; open it in a browser, it works offline)")
    return 0
