"""The papers' published points, shipped as package data (read through :mod:`importlib.resources`,
so they are found from any working directory). Provenance of every file: ``README.md`` beside them.

Read off the papers' figures, they are drawn and listed as *published*, never mixed with measured points.
"""
from __future__ import annotations

from importlib import resources
from typing import TextIO

CLICKME = "clickme.csv"
FIGURE3_DIGITIZED = "figure3_digitized_clickme.csv"
IT_2023 = "it_2023_harmonized_digitized.csv"
#: dataset-name prefix -> (file, column) of the published alignment drawn on its Pareto figure
PARETO = {"clickme": (CLICKME, "clickme_alignment")}
#: the neural dataset whose published (digitized) points are drawn on its IT figure
NEURAL_DATASET = "it-arcaro2020"


def open_text(name: str) -> TextIO:
    """The shipped file ``name`` opened for reading (text, UTF-8)."""
    return resources.files(__name__).joinpath(name).open("r", encoding="utf-8")


def location(name: str) -> str:
    """Where ``name`` lies (for messages)."""
    return str(resources.files(__name__).joinpath(name))


def datasets_with_points() -> list[str]:
    """Human-readable list of the datasets that have published points (for messages)."""
    return [f"{prefix}-* (ClickMe)" for prefix in PARETO] + [f"{NEURAL_DATASET} (IT)"]
