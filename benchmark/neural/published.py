"""The 2023 paper's published neural predictivity of its harmonized models, read off its figure.

``it_2023_harmonized_digitized.csv`` (package data, :mod:`benchmark.published`; copied unchanged
from ``shared/reference/``; paper-notes §5.4): ImageNet top-1 (%) and uncorrected predictivity per panel
for the six harmonized models, **digitized from the figure** (not tabulated anywhere), so they
carry the reading error of a plot (about +-0.01 r, +-0.3 % top-1). They are drawn as hollow markers
labelled as read off the figure, never mixed with measured points.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark import published
from model_zoo.errors import InvalidInputError

PUBLISHED_FILE = published.IT_2023
#: panel id (arcaro.PANELS) -> column of the digitized file
PANEL_COLUMNS = {
    "monkey1-PL": "neural_predictivity_monkey1_PL",
    "monkey1-ML": "neural_predictivity_monkey1_ML",
    "monkey2-ML": "neural_predictivity_monkey2_ML",
}
SOURCE = "read off the 2023 paper's figure\n(Linsley*, Rodriguez* et al., NeurIPS 2023)"


@dataclass(frozen=True)
class PublishedPoint:
    model: str
    panel: str
    top1: float          # percent
    predictivity: float  # uncorrected median Pearson r


def read_published(path: str | Path | None = None) -> list[PublishedPoint]:
    """Every (model, panel) value of the digitized file (default: the one shipped with the package);
    raises naming the file and column."""
    import pandas as pd

    if path is None:
        path = published.location(PUBLISHED_FILE)
        opener = lambda: published.open_text(PUBLISHED_FILE)  # noqa: E731
    else:
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"{path}: the published (digitized) IT points are missing")
        opener = lambda: open(path, encoding="utf-8")  # noqa: E731
    try:
        with opener() as fh:
            frame = pd.read_csv(fh)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable CSV ({exc})") from exc
    needed = ["model", "top1_digitized", *PANEL_COLUMNS.values()]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"{path}: missing columns {missing}")
    out = []
    for row in frame.itertuples(index=False):
        for panel, column in PANEL_COLUMNS.items():
            value = float(getattr(row, column))
            if value == value:  # NaN: not read for this panel
                out.append(PublishedPoint(str(row.model), panel, float(row.top1_digitized), value))
    return out
