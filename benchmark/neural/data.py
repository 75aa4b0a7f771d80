"""IT recordings as one dataset object: the panels (monkey x region) of a release, loaded on first use
(``alignbench run --dataset it-arcaro2020`` scores them with :class:`benchmark.tasks.neural.NeuralTask`).

The named dataset ``it-arcaro2020`` holds the three panels of the 2023 paper (monkey 1 PL and ML,
monkey 2 ML) from the Arcaro 2020 release; a user's ``.npz`` recordings are a dataset too
(:func:`recordings_dataset`, format in :mod:`benchmark.neural.recordings`).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmark.datasets.clickme import SkipReport
from benchmark.neural.recordings import NeuralRecording
from model_zoo.errors import InvalidInputError

NAME = "it-arcaro2020"


class NeuralData:
    """Recordings (panels). ``recordings``: a list of :class:`NeuralRecording` or a function returning
    one (called on first use, so nothing is downloaded before it is needed)."""

    task = "neural"

    def __init__(self, recordings: Sequence[NeuralRecording] | Callable[[], Sequence[NeuralRecording]], *,
                 name: str = NAME, description: str = "") -> None:
        self.name, self.description = name, description
        self._source = recordings
        self._panels: list[NeuralRecording] | None = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"NeuralData({self.name!r})"

    @property
    def panels(self) -> list[NeuralRecording]:
        if self._panels is None:
            src = self._source
            panels = list(src() if callable(src) else src)
            if not panels:
                raise InvalidInputError(f"{self.name}: no recordings")
            names = [p.panel for p in panels]
            if len(set(names)) != len(names):
                raise InvalidInputError(f"{self.name}: duplicate panel names {names}")
            self._panels = panels
        return self._panels

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over every panel's images, responses, trials and window."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for p in self.panels:
                h.update(f"{p.panel}\t{p.fingerprint()}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    @property
    def synthetic(self) -> bool:
        return any("synthetic" in n.lower() for p in self.panels for n in p.notes)

    def num_images(self) -> int:
        """Distinct images over all panels (panels sharing a stimulus set count it once)."""
        return len({(p.image_fingerprint(), i) for p in self.panels for i in p.image_ids})

    def files(self) -> list[Path]:
        """The recording files the panels were read from (``alignbench data download``)."""
        return [Path(f) for f in dict.fromkeys(p.source for p in self.panels if p.source)]

    @property
    def skips(self) -> SkipReport:
        """Nothing is skipped: a recording that cannot be read is an error naming it."""
        return SkipReport()

    def info(self) -> dict[str, Any]:
        """The summary ``alignbench data info`` prints."""
        return {"name": self.name, "task": self.task, "synthetic": self.synthetic,
                "files": [str(f) for f in self.files()], "images": self.num_images(),
                "records": sum(p.n_images for p in self.panels), "fingerprint": self.fingerprint(),
                "has_participant_maps": False, "description": self.description,
                "panels": {p.panel: {"subject": p.subject, "region": p.region, "images": p.n_images,
                                     "grid": p.grid, "sites": p.n_sites, "window_ms": p.window_ms,
                                     "single_trials": p.trials is not None} for p in self.panels}}

    def selected(self, limit: int | None) -> list[NeuralRecording]:
        """The panels, each cut to its first ``limit`` images (``--limit``; at least 3)."""
        if limit is None:
            return self.panels
        if limit < 3:
            raise InvalidInputError(f"--limit {limit}: leave-one-image-out needs at least 3 images per panel")
        return [p.subset(limit) if limit < p.n_images else p for p in self.panels]


# --------------------------------------------------------------------------- the named dataset
def _source(mirror: str | None) -> tuple[str | None, str | None]:
    """(root, url) from ``--mirror``: a URL of the zip or of a folder holding it, or a local path."""
    if mirror is None:
        return None, None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", mirror):
        from benchmark.neural.arcaro import ZIP_NAME

        return None, mirror if mirror.endswith(".zip") else f"{mirror.rstrip('/')}/{ZIP_NAME}"
    return mirror, None


def neural_dataset(*, download: bool = True, mirror: str | None = None, root: str | Path | None = None,
                   panels: Sequence[str] | None = None, window: str | tuple[int, int] = "docstring",
                   channel_split: str = "docstring") -> NeuralData:
    """The named dataset ``it-arcaro2020``: the three panels of the 2023 paper (monkey 1 PL and ML,
    monkey 2 ML) from the Arcaro 2020 release, fetched on first use. ``mirror``: a URL (of the zip,
    or of a folder holding ``Arcaro2020.zip``) or a local zip/extracted folder, copied into the cache
    as a download would be; ``root``: a local zip/extracted folder read in place (nothing copied)."""
    from benchmark.neural.arcaro import install_arcaro2020, load_arcaro2020

    local, url = _source(mirror)

    def load() -> list[NeuralRecording]:
        if root is None and local is not None:  # a local mirror is fetched from like a remote one: into the cache
            install_arcaro2020(local)
        return load_arcaro2020(root, panels=panels, window=window, channel_split=channel_split,
                               download=download, url=url)

    return NeuralData(load, description="Arcaro, Ponce & Livingstone 2020 IT recordings (2023 paper's panels)")


def recordings_dataset(path: str | Path, *, name: str | None = None,
                       regions: Sequence[str] | None = None) -> NeuralData:
    """A user's ``.npz`` recordings (format: :mod:`benchmark.neural.recordings`) as a dataset."""
    from benchmark.neural.recordings import load_recordings_npz

    path = Path(path)
    return NeuralData(lambda: load_recordings_npz(path, regions=regions), name=name or path.stem,
                      description=f"recordings in {path}")
