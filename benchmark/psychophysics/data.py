"""The psychophysics data: a stimulus set (:mod:`.stimuli`) and the human responses to it
(:mod:`.humans`), as one dataset object (``alignbench run --dataset psychophysics`` scores it with
:class:`benchmark.tasks.psychophysics.PsychophysicsTask`).

The named dataset ``psychophysics`` generates its stimuli once from the Clicktionary release and
fetches the released human responses; a stimulus FOLDER (``manifest.csv`` from ``alignbench
psychophysics make-stimuli``) is a dataset too, with its human responses beside it.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmark.datasets.clickme import SkipReport
from benchmark.psychophysics import humans, stimuli
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import cache_dir, sha256_file

log = logging.getLogger(__name__)

NAME = "psychophysics"
DEFAULT_SEED = 0


class PsychophysicsData:
    """Stimuli (a folder from :func:`stimuli.make_stimuli`) and human responses.

    ``stimuli`` and ``human_data``: a path, or a function returning one (called on first use, so
    nothing is generated or downloaded before it is needed). ``trust_pickle``: allow the released
    ``.npz``'s pickled object arrays (see :func:`humans.read_responses`)."""

    task = "psychophysics"

    def __init__(self, *, stimuli: str | Path | Callable[[], Path], human_data: str | Path | Callable[[], Path],
                 name: str = NAME, trust_pickle: bool = False) -> None:
        self.name, self.trust_pickle = name, trust_pickle
        self._stimuli_src, self._human_src = stimuli, human_data
        self._stimuli: stimuli.StimulusSet | None = None
        self._frame: Any = None
        self._human_path: Path | None = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"PsychophysicsData({self.name!r})"

    @property
    def stimulus_set(self) -> stimuli.StimulusSet:
        if self._stimuli is None:
            src = self._stimuli_src
            self._stimuli = stimuli.read_stimuli(src() if callable(src) else src)
        return self._stimuli

    @property
    def human_path(self) -> Path:
        if self._human_path is None:
            src = self._human_src
            self._human_path = Path(src() if callable(src) else src)
        return self._human_path

    @property
    def responses(self) -> Any:
        """The per-trial human responses (a pandas frame; :func:`humans.read_responses`)."""
        if self._frame is None:
            self._frame = humans.read_responses(self.human_path, trust_pickle=self.trust_pickle)
        return self._frame

    @property
    def synthetic(self) -> bool:
        return bool((self.stimulus_set.params.get("source") or {}).get("synthetic"))

    def human_curve(self, include_full: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(revelations, accuracy) of the levels compared (partial, plus full when ``include_full``)."""
        hc = humans.human_curve(self.responses)
        rev, acc = hc.revelations, hc.accuracy
        if include_full:
            if hc.full_accuracy is None:
                raise InvalidInputError(f"{self.human_path}: include_full needs full-image trials (Revelation 200)")
            rev, acc = np.append(rev, humans.FULL_REVELATION), np.append(acc, hc.full_accuracy)
        return rev, acc

    def model_levels(self, include_full: bool = False) -> np.ndarray:
        """The stimulus levels compared with the humans' (ascending; the full image only when asked)."""
        levels = sorted({r["level"] for r in self.stimulus_set.rows})
        return np.array([k for k in levels if include_full or k != stimuli.FULL_LEVEL], np.int64)

    def files(self) -> list[Path]:
        folder = self.stimulus_set.folder
        return [folder / stimuli.MANIFEST_CSV, *(folder / r["file"] for r in self.stimulus_set.rows), self.human_path]

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over every stimulus file, the manifest and the human data."""
        if self._fingerprint is None:
            # the prefix keeps fingerprints of records written before the level choice became a task setting
            h = hashlib.sha256(b"include_full=False\n")
            for p in self.files():
                h.update(f"{p.name}\t{sha256_file(p)}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    def num_images(self) -> int:
        return len(self.stimulus_set.image_ids)

    @property
    def skips(self) -> SkipReport:
        """Nothing is skipped: a stimulus that cannot be read is an error naming it."""
        return SkipReport()

    def info(self) -> dict[str, Any]:
        """Summary for ``alignbench data info`` (reads the stimuli and the human responses)."""
        s = self.stimulus_set
        return {"name": self.name, "task": self.task, "synthetic": self.synthetic,
                "files": [str(s.folder / stimuli.MANIFEST_CSV)], "records": len(s.rows),
                "images": self.num_images(), "levels": [int(k) for k in self.model_levels()],
                "human_data": str(self.human_path), "human_trials": int(len(self.responses)),
                "fingerprint": self.fingerprint(), "has_participant_maps": False,
                "stimulus_source": s.params.get("source") or {}}


# --------------------------------------------------------------------------- sources and the named dataset

def clicktionary_source(source: Any = "clicktionary", *, download: bool = True, mirror: str | None = None,
                        limit: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(iterable of (image_id, label, image (256,256,3), map (256,256)), info) from the named
    Clicktionary dataset, a Clicktionary-format release FOLDER, or a ``ClicktionaryDataset``."""
    from benchmark.datasets import clicktionary as ct

    if isinstance(source, ct.ClicktionaryDataset):
        ds = source
    elif source == "clicktionary":
        ds = ct.clicktionary_dataset(download=download, mirror=mirror)
    elif Path(source).is_dir():
        ds = ct.ClicktionaryDataset(Path(source), name=Path(source).resolve().name)
    else:
        raise InvalidInputError(f"--source {source!r}: expected 'clicktionary' or a Clicktionary release folder")
    items = ((it.image_id, it.label, img, m) for it, img, m in ds.raw_items(limit=limit))
    return items, {"dataset": ds.name, "fingerprint": ds.fingerprint(), "synthetic": ds.synthetic}


def make_stimuli_from(source: Any, output: str | Path, *, seed: int, download: bool = True,
                      mirror: str | None = None, limit: int | None = None) -> Path:
    """``alignbench psychophysics make-stimuli``: stimuli of a Clicktionary source into ``output``."""
    items, info = clicktionary_source(source, download=download, mirror=mirror, limit=limit)
    return stimuli.make_stimuli(items, output, seed=seed, source_info=info)


def psychophysics_dataset(*, download: bool = True, mirror: str | None = None, stimuli_dir: str | Path | None = None,
                          human_data: str | Path | None = None, seed: int = DEFAULT_SEED) -> PsychophysicsData:
    """The named dataset ``psychophysics``. Stimuli: ``stimuli_dir``, else generated once (seed 0)
    from the Clicktionary release into ``cache_dir("psychophysics", "stimuli-seed<seed>-<release>")``
    (keyed by the release's fingerprint, so a changed release never reuses stale stimuli). Human
    responses: ``human_data``, else ``data_for_zahra.npz`` from the cache, ``mirror``,
    ``$ALIGNBENCH_PSYCHOPHYSICS_URL`` or the paper's bucket. Nothing is read before first use."""

    def ensure_stimuli() -> Path:
        if stimuli_dir is not None:
            return Path(stimuli_dir)
        from benchmark.datasets import clicktionary as ct

        release = ct.clicktionary_dataset(download=download)
        folder = cache_dir(NAME, f"stimuli-seed{seed}-{release.fingerprint().split(':')[-1][:16]}")
        if not (folder / stimuli.MANIFEST_CSV).is_file():
            log.warning("generating the psychophysics stimuli (seed %d) from %s into %s", seed, release.root, folder)
            make_stimuli_from(release, folder, seed=seed, download=download)
        return folder

    def ensure_humans() -> Path:
        return Path(human_data) if human_data is not None else humans.fetch_human_data(mirror=mirror, download=download)

    return PsychophysicsData(stimuli=ensure_stimuli, human_data=ensure_humans)


def psychophysics_folder(folder: str | Path) -> PsychophysicsData:
    """``alignbench run --dataset FOLDER`` for a stimulus folder (``manifest.csv`` from ``make-stimuli``):
    human responses from ``FOLDER/data_for_zahra.npz`` when present, else as for the named dataset.
    Records go to ``results/<folder name>/``."""
    folder = Path(folder)
    local = folder / humans.HUMAN_FILE
    return PsychophysicsData(stimuli=folder, name=folder.resolve().name,
                             human_data=local if local.is_file() else (lambda: humans.fetch_human_data()))
