"""The ``alignbench`` command line: a thin layer over library calls.

Each command group lives in its own module with a ``register(subparsers)`` function; the handlers
import their libraries lazily, so ``alignbench --help`` starts fast and loads no framework.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# module name (in alignbench.cli) for each command group, in --help order
COMMAND_MODULES = (
    "demo_cmd",
    "run_cmd",
    "plot_cmd",
    "plot_maps_cmd",
    "models_cmd",
    "data_cmd",
    "train_cmd",
    "submit_cmd",
    "leaderboard_cmd",
    "psychophysics_cmd",
)


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    from benchmark import __version__

    parser = argparse.ArgumentParser(
        prog="alignbench",
        description="Measure how closely vision models follow human visual strategies "
        "(ClickMe / Clicktionary alignment, psychophysics), and train models that follow them better.",
    )
    parser.add_argument("--version", action="version", version=f"alignbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"alignbench.cli.{name}")
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name == f"alignbench.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from model_zoo.errors import AlignbenchError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except (CLIError, AlignbenchError) as exc:
        print(f"alignbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything written so far is kept; run the same command again to resume.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
