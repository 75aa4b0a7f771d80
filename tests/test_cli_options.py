"""One vocabulary across commands: every option of every command has help, shared options are
spelled and explained the same way, and the rendered help shows no formatting debris."""
from __future__ import annotations

import argparse
import warnings

import pytest

from alignbench.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:  # argparse exposes subcommands only through its actions
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


PARSERS = list(_parsers(build_parser()))


def test_the_walk_reaches_every_command():
    names = {" ".join(p) for p, _ in PARSERS}
    assert {"run", "train", "submit", "plot-pareto", "data download", "leaderboard verify", "demo"} <= names


@pytest.mark.parametrize("path,parser", PARSERS, ids=[" ".join(p) or "alignbench" for p, _ in PARSERS])
def test_every_option_has_help_and_the_help_renders_cleanly(path, parser):
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help.strip(), f"alignbench {' '.join(path)} {action.option_strings[0]}: no help"
    text = parser.format_help()
    assert "%%" not in text and "%(" not in text, text


def _options(name: str):
    return [(p, a) for p, parser in PARSERS for a in parser._actions if name in a.option_strings]


@pytest.mark.parametrize("option", ["--precision", "--device", "--offline", "--results", "--batch-size", "--no-progress"])
def test_shared_options_mean_the_same_everywhere(option):
    found = _options(option)
    assert len(found) >= 2, option
    helps = {a.help.split(" (default")[0] for _, a in found}
    if option == "--precision":  # one set of names (plus `auto` where a command chooses per device)
        assert all({"float32", "bfloat16", "float16"} <= set(a.choices) for _, a in found), found
    if option in ("--offline", "--device", "--no-progress"):
        assert len(helps) == 1, helps


def test_the_old_spellings_still_work_and_say_they_are_old():
    parser = build_parser()
    with pytest.warns(FutureWarning, match="--precision bf16 is deprecated; say bfloat16"):
        args = parser.parse_args(["train", "--data", "d", "--output", "o", "--precision", "bf16"])
    assert args.precision == "bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parser.parse_args(["leaderboard", "pin", "ds", "--download"]).offline is False
        assert parser.parse_args(["psychophysics", "make-stimuli", "--output", "o", "--no-download"]).offline is True


def test_every_command_that_may_download_takes_offline():
    may_download = {"run", "train", "submit", "data download", "data info", "data prepare", "leaderboard verify",
                    "leaderboard pin", "psychophysics make-stimuli"}
    have = {" ".join(p) for p, parser in PARSERS if any("--offline" in a.option_strings for a in parser._actions)}
    assert may_download <= have, may_download - have
