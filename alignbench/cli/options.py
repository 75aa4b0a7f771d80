"""The options several commands share, defined once so that every command spells and explains them
the same way (one vocabulary: ``--precision``, ``--device``, ``--offline``, ``--results``,
``--dataset``, ``--batch-size``, ``--no-progress``)."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from model_zoo.harmonization.config import PRECISION_ALIASES  # the short spellings `train` used to take

PRECISIONS = ("float32", "bfloat16", "float16")

DATASET_HELP = ("a dataset name (`alignbench data info --list`), a folder of ClickMe-format shards, a "
                "Clicktionary release folder, or a .npz neural recording; the same value works for every command")


def precision_type(value: str) -> str:
    """argparse type: a precision name, or one of its deprecated short spellings."""
    if value in PRECISION_ALIASES:
        warnings.warn(f"--precision {value} is deprecated; say {PRECISION_ALIASES[value]}", FutureWarning,
                      stacklevel=2)
        return PRECISION_ALIASES[value]
    return value


def add_precision(p: argparse.ArgumentParser, *, default: str | None = "float32", extra: tuple[str, ...] = ()) -> None:
    choices = (*extra, *PRECISIONS)
    p.add_argument("--precision", default=default, type=precision_type, choices=choices,
                   help=f"numeric precision of the model's forward and backward pass ({', '.join(choices)}; "
                   f"default {default or 'the config'}); recorded in every record")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (a GPU if there is one), cpu, cuda, cuda:1, ...")


def add_offline(p: argparse.ArgumentParser, *, legacy_download: bool = False, legacy_no_download: bool = False) -> None:
    """``--offline``: never download (weights or data); use what is cached. ``legacy_*`` keep the old
    spellings (``--download``: now the default; ``--no-download``: ``--offline``) working, hidden."""
    p.add_argument("--offline", action="store_true",
                   help="never download weights or data; use only what is cached or passed as a path")
    if legacy_download:
        p.add_argument("--download", action="store_true", help=argparse.SUPPRESS)
    if legacy_no_download:
        p.add_argument("--no-download", dest="offline", action="store_true", help=argparse.SUPPRESS)


def add_results(p: argparse.ArgumentParser, *, default: Path = Path("results"), what: str = "result records") -> None:
    p.add_argument("--results", type=Path, default=default,
                   help=f"results folder holding the {what} (default: {default}/)")


def add_batch_size(p: argparse.ArgumentParser, *, default: int | None = 32, what: str = "images per batch") -> None:
    p.add_argument("--batch-size", type=int, default=default,
                   help=f"{what} (default {default})")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in batch job logs)")
