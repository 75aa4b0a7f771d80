"""``alignbench leaderboard validate|verify|build|pin``: the maintainers' side of submissions."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    lb = sub.add_parser("leaderboard", help="validate, verify and publish submissions (maintainers)",
                        description="Check submission bundles, re-score a sample of their images, build the "
                        "static leaderboard site, and pin the facts of the datasets it ranks.")
    acts = lb.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)

    v = acts.add_parser("validate", help="check bundles: schema, ranges, counts, fingerprints, clashes",
                        description="Check submission bundles (default: every one under RESULTS/submissions). "
                        "Every problem is printed as 'bundle: field: message'. Exit status 1 if any.")
    v.add_argument("bundles", nargs="*", type=Path, metavar="BUNDLE")
    options.add_results(v, what="submissions/ folder")
    v.add_argument("--no-local-data", action="store_true",
                   help="do not look for the datasets locally; use known_datasets.json / the catalog's records")
    v.add_argument("--pins", type=Path, metavar="FILE", help="the known-datasets table (default: the package's)")
    v.set_defaults(handler=_validate)

    f = acts.add_parser("verify", help="re-score a seeded random subset of a bundle's images and compare",
                        description="Check that the bundle covers exactly the dataset's images (count and id set, "
                        "against the local data and the pins), then re-compute the per-image scores of N randomly "
                        "chosen images (seeded) from the submitted model and compare them with the bundle; "
                        "mismatching images are named. Plugin bundles without exported weights are rebuilt in the "
                        "bubblewrap sandbox (refused where none can be set up, unless --trust-plugin).")
    f.add_argument("bundle", type=Path, metavar="BUNDLE")
    f.add_argument("--n", "--n-images", dest="n_images", type=int, default=100, help="images to re-score (default 100)")
    f.add_argument("--seed", type=int, default=0, help="seed of the random choice of images (default 0)")
    f.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference per score")
    f.add_argument("--model", type=Path, help="the submitted weights / model file when the bundle does not carry it")
    f.add_argument("--dataset-path", action="append", default=[], metavar="NAME=FOLDER",
                   help="use this local folder of shards for dataset NAME (repeatable)")
    options.add_offline(f, legacy_download=True)
    options.add_device(f)
    options.add_precision(f)
    options.add_batch_size(f)
    f.add_argument("--plugin-timeout", type=float, default=600.0, metavar="S",
                   help="wall-clock limit for building a plugin model in the sandbox (default 600 s)")
    f.add_argument("--plugin-memory-mb", type=int, default=16384, metavar="MB",
                   help="memory limit of the sandboxed plugin build (default 16384 MB)")
    f.add_argument("--trust-plugin", action="store_true",
                   help="where no sandbox can be set up (no bubblewrap), run the plugin anyway, WITHOUT isolation")
    f.add_argument("--pins", type=Path, metavar="FILE", help="the known-datasets table (default: the package's)")
    f.set_defaults(handler=_verify)

    b = acts.add_parser("build", help="build the static leaderboard site",
                        description="Turn RESULTS into a static site: OUTPUT/index.html (sortable, filterable table "
                        "and accuracy-vs-alignment plot, offline), a page per model, CSV and Markdown exports. "
                        "Only bundles that pass validation are listed.")
    options.add_results(b, what="records and submissions/")
    b.add_argument("--output", type=Path, required=True, metavar="SITE_DIR", help="folder to write the site into")
    b.add_argument("--dataset", nargs="+", help="datasets to list (default: all with results)")
    b.add_argument("--no-published", action="store_true", help="leave out the paper's published points")
    b.add_argument("--pins", type=Path, metavar="FILE", help="the known-datasets table (default: the package's)")
    b.set_defaults(handler=_build)

    p = acts.add_parser("pin", help="measure a dataset's pinned facts for known_datasets.json",
                        description="Measure what the leaderboard checks bundles against, from the data itself: "
                        "valid-image count, fingerprint, image-id set and the ceiling record (computed into RESULTS "
                        "as `alignbench run` does), and print the known_datasets.json entry; --write puts it in the "
                        "table. Run it on the maintainers' copy of each dataset; --demo pins the generated demo data.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("dataset", nargs="?", metavar="DATASET", help="a dataset name or folder")
    which.add_argument("--demo", choices=("fast", "full"), help="generate (or reuse) the demo's test split and pin it")
    p.add_argument("--name", help="the name to pin it under (default: the dataset's own name)")
    options.add_results(p, what="dataset's ceiling record")
    options.add_offline(p, legacy_download=True)
    p.add_argument("--pins", type=Path, metavar="FILE", help="the table to update (default: the package's)")
    p.add_argument("--write", action="store_true", help="write the entry into the table (otherwise only print it)")
    p.set_defaults(handler=_pin)


def _validate(args: argparse.Namespace) -> int:
    from leaderboard.validate import validate_bundles

    report = validate_bundles(args.bundles or None, results_dir=args.results, use_local_data=not args.no_local_data,
                              pins=args.pins)
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
                            download=not args.offline, device=args.device, precision=args.precision,
                            batch_size=args.batch_size, trust_plugin=args.trust_plugin, pins=args.pins,
                            limits=Limits(timeout_s=args.plugin_timeout, memory_mb=args.plugin_memory_mb))
    for report in reports:
        print(report.format())
    return 0 if all(r.ok for r in reports) else 1


def _build(args: argparse.Namespace) -> int:
    from leaderboard.site import build

    done = build(args.results, args.output, datasets=args.dataset, with_published=not args.no_published,
                 pins=args.pins)
    for note in done.notes:
        print(f"note: {note}")
    print(f"site written: {done.index} ({len(done.entries)} rows; open it in a browser, it works offline)")
    return 0


def _pin(args: argparse.Namespace) -> int:
    import json
    import shlex
    import sys

    from leaderboard.pins import LEADERBOARD_DATASETS, load_table, measure_pin, package_table_path, unmeasured_pin

    command = "alignbench " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "alignbench leaderboard pin"
    extra = {}
    if args.demo:
        from alignbench import demo
        from benchmark.datasets import get_dataset
        from model_zoo.fileio import cache_dir

        plan = demo.PLANS[args.demo]
        _, test_dir, _ = demo.make_datasets(plan, cache_dir("demo"), progress=True)
        dataset = get_dataset(str(test_dir), download=False)
        extra = {"demo": {"plan": plan.name, "data_key": plan.data_key(), "demo_version": demo.DEMO_VERSION,
                          "regenerate": f"alignbench leaderboard pin --demo {plan.name} --write"}}
    else:
        from benchmark.datasets import get_dataset

        dataset = get_dataset(args.dataset, download=not args.offline)
    pin = measure_pin(dataset, args.results, command=command, extra_how=extra, name=args.name)
    table_path = args.pins or package_table_path()
    table = load_table(table_path)
    old = table.get(pin.name)
    print(json.dumps({pin.name: pin.to_json()}, indent=1))
    if old is not None and old.pinned and (old.n_images, old.fingerprint, old.image_ids_sha256, old.ceiling) != \
            (pin.n_images, pin.fingerprint, pin.image_ids_sha256, pin.ceiling):
        print(f"note: this differs from the entry in {table_path} (n_images {old.n_images}, fingerprint "
              f"{old.fingerprint}, ceiling {old.ceiling})")
    if args.write:
        table = table.with_pin(pin)
        for name in LEADERBOARD_DATASETS:
            if name not in table:
                table = table.with_pin(unmeasured_pin(name))
        table.write(table_path)
        print(f"written: {table_path}")
    return 0
