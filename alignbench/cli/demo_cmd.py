"""``alignbench demo``: the whole pipeline offline on SYNTHETIC data (:func:`alignbench.demo.run_demo`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the whole pipeline offline on SYNTHETIC data, in a few minutes on a CPU (start here)",
        description="Generate a small ClickMe-format dataset with a planted shortcut (SYNTHETIC: shapes on "
        "coloured backgrounds, simulated participants), train a baseline and a harmonized CNN with the project's "
        "trainer, score both on the held-out split exactly as `alignbench run` does, build the leaderboard site, "
        "draw accuracy vs alignment and print a short report. No GPU, no internet, no ClickMe download. "
        "Data and models are cached: a second run reuses them.")
    p.add_argument("--fast", action="store_true", help="a smaller version (what the tests run)")
    p.add_argument("--results", type=Path, default=Path("alignbench-demo"),
                   help="where records, the figure and the site go (default: ./alignbench-demo)")
    p.add_argument("--cache", type=Path, help="generated data and trained models (default: $ALIGNBENCH_CACHE/demo)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    options.add_progress(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import json
    import logging

    from alignbench import demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = demo.run_demo(args.results, fast=args.fast, cache_dir=args.cache, progress=not args.no_progress)
    if args.json:
        print(json.dumps(demo.report_json(report), indent=2))
    else:
        print()
        print(report.text())
    return 0
