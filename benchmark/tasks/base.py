"""The task protocol: what every benchmark (ClickMe maps, Clicktionary, psychophysics, IT cortex, a
third party's) implements so that one job (:mod:`benchmark.job`) can run it.

A task names its data (a dataset object: ``name``, ``fingerprint()``, ``num_images()``, ``info()``,
``synthetic``, ``skips``), scores one model given an adapter into per-row columns (written to the
record's ``<model>.scores.csv``) plus summary fields (the score shape of
:func:`benchmark.scores.score_fields` and the task's own extras), owns its reference records (the
human ceiling, a baseline) and its figure. It never writes a model's record itself: the job does.

Only the model's own computation may turn into a recorded model failure: a task wraps every call
into the model in :func:`model_call`, which turns any exception into :class:`ModelFailure`; any
other exception is a bug in alignbench and stops the run with a traceback.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from model_zoo.errors import AlignbenchError


class ModelFailure(AlignbenchError):
    """The model could not be loaded or failed while computing (missing weights, out of memory,
    NaN outputs, an architecture error): recorded as the model's failure, and the run goes on."""


@contextlib.contextmanager
def model_call(model: str) -> Iterator[None]:
    """Run the model's own computation: any exception inside becomes a :class:`ModelFailure`
    naming ``model`` and the original error (kept as ``__cause__``)."""
    try:
        yield
    except ModelFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's computation, whatever it raised
        raise ModelFailure(f"{type(exc).__name__}: {exc}") from exc


@dataclass
class References:
    """A dataset's reference records: the human ceiling and a baseline (either may be None)."""

    ceiling: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None

    @property
    def ceiling_value(self) -> float | None:
        value = (self.ceiling or {}).get("value")
        return float(value) if isinstance(value, (int, float)) and value == value else None


@dataclass
class Chunk:
    """Rows of per-image (per-stimulus, per-site) results, as a task yields them while scoring.

    ``columns``: equal-length 1-D arrays named by the task's ``columns``; ``extras``: JSON-able
    summary parts that cannot be recomputed from the rows (merged into the record; tasks whose
    summary follows from the rows leave it empty); ``arrays``: per-row arrays too large for the
    scores file (the maps task's ``"maps"``, (n, 224, 224)), kept only by a run that saves them
    (``--save-maps``)."""

    columns: dict[str, np.ndarray]
    extras: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), None)
        return 0 if first is None else len(first)


@dataclass
class ScoringContext:
    """What a task's :meth:`Task.score` gets besides the model.

    ``start``: rows already scored by an interrupted run (skip them); ``limit``: at most this many
    images (``--limit``); ``progress(n)``: call after n more images; ``shared``: a per-run dict the
    task may use to reuse work across models (e.g. the ranks of the human maps)."""

    model_id: str
    batch_size: int = 32
    limit: int | None = None
    start: int = 0
    progress: Callable[[int], Any] = lambda n: None
    shared: dict[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One benchmark over one dataset. Subclasses set the class attributes and implement the
    abstract methods; ``data`` is the dataset object."""

    #: registry key and the records' ``task`` field
    kind: ClassVar[str]
    #: the records' ``score_name``
    score_name: ClassVar[str]
    #: per-row columns of the scores file, in order
    columns: ClassVar[tuple[str, ...]]
    #: bump when a change of the scoring code changes numbers: records of another revision are recomputed
    revision: ClassVar[str]
    #: whether a distributed executor may split the rows by :meth:`parts` (one worker per part)
    splittable: ClassVar[bool] = False
    #: whether its chunks carry each image's map (``Chunk.arrays["maps"]``), which ``--save-maps`` keeps
    has_maps: ClassVar[bool] = False

    def __init__(self, data: Any) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # -- identity
    @property
    def name(self) -> str:
        """The dataset's name: the results sub-folder."""
        return self.data.name

    @property
    def synthetic(self) -> bool:
        return bool(getattr(self.data, "synthetic", False))

    def fingerprint(self) -> str:
        return self.data.fingerprint()

    def settings(self) -> dict[str, Any]:
        """Everything besides the data and the model that decides a score (part of every record's
        identity): decision rules, bootstrap sizes, layers, ..."""
        return {}

    def num_images(self) -> int:
        return int(self.data.num_images())

    def rows(self, limit: int | None = None) -> int:
        """How many rows (the unit of progress and resume) a full score yields under ``limit``."""
        n = self.num_images()
        return n if limit is None else min(limit, n)

    def parts(self) -> Sequence[str]:
        """Names of the pieces a distributed executor may score separately (``splittable`` tasks)."""
        return []

    # -- scoring
    @abstractmethod
    def ensure_references(self, results_dir: Path, *, force: bool = False, limit: int | None = None,
                          batch_size: int = 64) -> References:
        """The dataset's reference records, computed once and reused (written under
        ``results_dir/<name>/``)."""

    @abstractmethod
    def score(self, adapter: Any, ctx: ScoringContext, *, part: str | None = None) -> Iterator[Chunk]:
        """Score one model: yield chunks of rows in a fixed order, skipping ``ctx.start`` rows
        (``part``: only that piece, for distributed executors). Model calls go through
        :func:`model_call`."""

    @abstractmethod
    def summarize(self, columns: Mapping[str, np.ndarray], extras: Mapping[str, Any],
                  references: References) -> dict[str, Any]:
        """The record's result fields from all rows: :func:`benchmark.scores.score_fields` plus the
        task's own (``top1_measured`` where the task measures accuracy)."""

    def scores_table(self, columns: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        """The columns of the scores file (default: the rows as scored)."""
        return columns

    def model_fields(self, adapter: Any) -> dict[str, Any]:
        """Fields the record takes from the loaded model (e.g. the explainer it ran)."""
        return {}

    # -- figure
    @classmethod
    def plot(cls, results_dir: Path, dataset: str, output: Path | None = None, **options: Any
             ) -> tuple[list[Path], list[str]]:
        """The task's figure from the records of ``dataset`` in ``results_dir`` (no data needed):
        (files written, notes). Default: accuracy vs the headline score (:func:`benchmark.plots.plot_pareto`)."""
        from benchmark.plots import plot_pareto

        return plot_pareto(results_dir, dataset, output, **options)
