"""The released per-trial human responses (``data_for_zahra.npz``) and the human accuracy curve.

Layout read (paper-notes §3.4; the published code builds a DataFrame from it): ``data_human`` a
2-D array, one row per trial; ``columns`` its column names, which include ``Revelation`` (the
level; 200 means the full image) and ``correct`` (1 or 0); ``ims`` the image of each trial (kept as
column ``image`` when it has one entry per trial). The human curve is the mean of ``correct``
per ``Revelation``; the full-image level is reported separately.

The file is fetched from the paper's bucket into ``cache_dir("psychophysics")``; where it is not at
hand (offline, no network), one :class:`~model_zoo.errors.DataUnavailableError` says where to put
it. It is read with ``allow_pickle=False``; a file that needs pickle (object arrays) is refused
unless the caller trusts it (``trust_pickle=True``), since unpickling runs code.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from model_zoo.errors import DataUnavailableError, InvalidInputError
from model_zoo.fileio import atomic_write_bytes, cache_dir

HUMAN_FILE = "data_for_zahra.npz"
URL_ENV = "ALIGNBENCH_PSYCHOPHYSICS_URL"  # default mirror: a base URL, a local folder or the .npz itself
BASE_URL = "https://storage.googleapis.com/serrelab/prj_harmonization/dataset/psychophysics/clicktionary/"
FULL_REVELATION = 200
REQUIRED_COLUMNS = ("Revelation", "correct")


@dataclass(frozen=True)
class HumanCurve:
    """Human accuracy per revelation level, full image excluded (``full_accuracy`` holds it)."""

    revelations: np.ndarray  # float64 (L,), ascending, as stored in the file
    accuracy: np.ndarray  # float64 (L,) in [0, 1]
    n_trials: np.ndarray  # int64 (L,)
    full_accuracy: float | None
    n_full: int


def read_responses(path: str | Path, *, trust_pickle: bool = False) -> Any:
    """The per-trial responses as a pandas DataFrame (columns from the file, plus ``image``)."""
    import pandas as pd

    path = Path(path)
    try:
        with np.load(path, allow_pickle=trust_pickle) as data:
            missing = [k for k in ("data_human", "columns") if k not in data.files]
            if missing:
                raise InvalidInputError(f"{path}: missing key(s) {missing}; expected ims, data_human, columns")
            table, columns = np.asarray(data["data_human"]), [str(c) for c in data["columns"]]
            ims = data["ims"] if "ims" in data.files else None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InvalidInputError(f"{path}: holds pickled objects; loading it runs code. If you trust the file, "
                                    "pass trust_pickle=True (CLI: --trust-pickle)") from None
        raise InvalidInputError(f"{path}: not a readable .npz file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npz file ({exc})") from None
    if table.ndim != 2 or table.shape[1] != len(columns):
        raise InvalidInputError(f"{path}: data_human has shape {table.shape} but columns lists {len(columns)} names")
    absent = [c for c in REQUIRED_COLUMNS if c not in columns]
    if absent:
        raise InvalidInputError(f"{path}: columns {absent} not found (has {columns})")
    frame = pd.DataFrame(table, columns=columns)
    if ims is not None and len(ims) == len(frame):
        frame["image"] = [str(x) for x in ims]
    for c in REQUIRED_COLUMNS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    bad = frame[list(REQUIRED_COLUMNS)].isna().any(axis=1)
    if bad.any():
        raise InvalidInputError(f"{path}: {int(bad.sum())} trial(s) with a non-numeric Revelation or correct")
    if not frame["correct"].isin([0, 1]).all():
        raise InvalidInputError(f"{path}: column 'correct' must hold 0 or 1")
    return frame


def human_curve(frame: Any) -> HumanCurve:
    """Mean ``correct`` per ``Revelation`` (the published code's grouping), full image apart."""
    grouped = frame.groupby("Revelation")["correct"].agg(["mean", "count"]).sort_index()
    full = grouped.index == FULL_REVELATION
    partial = grouped[~full]
    if not len(partial):
        raise InvalidInputError("human responses have no partial-revelation trials")
    return HumanCurve(partial.index.to_numpy(np.float64), partial["mean"].to_numpy(np.float64),
                      partial["count"].to_numpy(np.int64),
                      float(grouped[full]["mean"].iloc[0]) if full.any() else None,
                      int(grouped[full]["count"].iloc[0]) if full.any() else 0)


def split_half_curves(frame: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy curves (partial levels) of two random halves of the trials of each level."""
    a, b = [], []
    for rev, group in sorted(frame.groupby("Revelation"), key=lambda kv: kv[0]):
        if rev == FULL_REVELATION:
            continue
        c = group["correct"].to_numpy(np.float64)
        perm = rng.permutation(len(c))
        half = len(c) // 2
        if half == 0:
            raise InvalidInputError(f"human responses: level {rev} has fewer than 2 trials; no split-half")
        a.append(c[perm[:half]].mean())
        b.append(c[perm[half:2 * half]].mean())
    return np.array(a), np.array(b)


def fetch_human_data(*, mirror: str | None = None, download: bool = True, dest_dir: str | Path | None = None) -> Path:
    """Local path of ``data_for_zahra.npz``: the cache, a local ``mirror`` folder/file, or a download
    from ``mirror`` (a base URL) or the paper's bucket. ``mirror`` defaults to ``$ALIGNBENCH_PSYCHOPHYSICS_URL``.
    Raises :class:`DataUnavailableError` (one line: where to put the file, where it comes from)."""
    import os

    from benchmark.datasets.download import download_file, is_offline

    mirror = mirror or os.environ.get(URL_ENV) or None
    if mirror and "://" not in mirror:
        local = Path(mirror).expanduser()
        local = local / HUMAN_FILE if local.is_dir() else local
        if not local.is_file():
            raise DataUnavailableError(f"human psychophysics responses not found at {local}")
        return local
    folder = Path(dest_dir) if dest_dir is not None else cache_dir("psychophysics")
    path = folder / HUMAN_FILE
    if path.is_file():
        return path
    url = (mirror or BASE_URL).rstrip("/") + "/" + HUMAN_FILE
    if not download or is_offline():
        why = "downloads are off" if not download else "offline mode"
        raise DataUnavailableError(f"human psychophysics responses ({HUMAN_FILE}) are not in {folder} and cannot be "
                                   f"downloaded ({why}): put the file there (it comes from {url}), or set "
                                   f"{URL_ENV} to a folder or URL holding it.")
    try:
        return download_file(url, path)
    except OSError as exc:
        raise DataUnavailableError(f"human psychophysics responses ({HUMAN_FILE}) are not in {folder} and the "
                                   f"download from {url} failed ({exc}): put the file there, or set "
                                   f"{URL_ENV} to a folder or URL holding it.") from exc


def write_synthetic_responses(path: str | Path, accuracy: Sequence[float], *, revelations: Sequence[float],
                              trials_per_level: int = 200, full_accuracy: float | None = 0.95,
                              n_images: int = 20, seed: int = 0) -> Path:
    """Write generated per-trial responses in the release's npz layout (tests, demo): at each
    revelation, ``trials_per_level`` Bernoulli trials with the given accuracy, plus full-image trials
    (``Revelation`` 200) when ``full_accuracy`` is not None. Columns: Revelation, correct, subject."""
    if len(accuracy) != len(revelations):
        raise InvalidInputError(f"{len(accuracy)} accuracies for {len(revelations)} revelations")
    rng = np.random.default_rng(seed)
    levels = list(zip(revelations, accuracy)) + ([(FULL_REVELATION, full_accuracy)] if full_accuracy is not None else [])
    rows, ims = [], []
    for rev, acc in levels:
        correct = rng.random(trials_per_level) < acc
        for t, c in enumerate(correct):
            rows.append((float(rev), float(c), float(t % 50)))
            ims.append(f"ct{rng.integers(n_images):04d}")
    buf = io.BytesIO()
    np.savez(buf, ims=np.array(ims), data_human=np.array(rows, np.float64),
             columns=np.array(["Revelation", "correct", "subject"]))
    return atomic_write_bytes(Path(path), buf.getvalue())

