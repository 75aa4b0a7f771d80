"""The released IT recordings of Arcaro, Ponce & Livingstone 2020 (eLife), as the 2023 paper used them.

Release (paper-notes §5.2, serre-lab/neural_harmonizer ``data/dataset.py``): ``Arcaro2020.zip`` at
:data:`ARCARO_URL`, holding ``George/george_060118_data.mat`` and ``Red/red_062419_data.mat`` and the
images in ``George/natural_test/`` and ``Red/red_naturalface/``, named by each file's ``UniqueNames``
(Windows paths; the base name is used). ``imageRF`` has axes (X, Y, time in ms, channel, image);
the code moves images first, giving (image, X, Y, time, channel), and flips both spatial axes
(``[:, ::-1, ::-1]``); so does :func:`read_panels`. Index ``t`` of the time axis is taken as ``t`` ms
after stimulus onset, as the release code slices it; the response is the mean over the window.

Choices the release leaves open, each one switch away (see :data:`WINDOWS`, :data:`CHANNEL_SPLITS`):

* **Regions.** Monkey 1 ("George"): the docstring says channels 1-32 are posterior-lateral IT (PL)
  and 33-63 medial-lateral IT (ML); the code splits at index 33 (``[:33]`` / ``[33:]``), putting
  channel 33 in PL. Default here: the docstring (``channel_split="docstring"``: PL = 0..31);
  ``"code"`` reproduces the paper's split. Monkey 2 ("Red"): ML only.
* **Time window.** Three defaults disagree: the docstring says George 100-150 ms and Red 150-300 ms,
  ``load_data`` defaults to 50-90 ms and ``neural_benchmark_score`` to 130-170 ms. Default here:
  the docstring's (``window="docstring"``), the only one stated as a property of the data.
* **Stimuli.** Images are resized to 224x224 (bilinear, like ``cv2.resize``) and handed to each
  model's own preprocessing; the release's normalisation (divided by the ImageNet *mean*) is a bug
  and is not reproduced.

Download, cache and offline rules are ClickMe's (:mod:`benchmark.datasets.download`): the zip goes
to ``cache_dir("neural", "arcaro2020")``, is resumed with ``Range`` requests, checked against
:data:`ARCARO_SHA256` when known, and ``ALIGNBENCH_OFFLINE=1`` raises one message naming the folder.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.error
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmark.neural.recordings import NeuralRecording, images_to_boundary
from model_zoo.errors import DataUnavailableError, InvalidInputError
from model_zoo.fileio import atomic_copy_file, cache_dir, create_temp_folder

ARCARO_URL = "https://storage.googleapis.com/serrelab-public/neural_recordings/Arcaro2020.zip"
ZIP_NAME = "Arcaro2020.zip"
#: Not published anywhere accessible (paper-notes §6: "No file sizes are recorded"); when None the
#: archive's sha256 is still computed and recorded in every result's dataset fingerprint.
ARCARO_SHA256: str | None = None
ARCARO_SIZE: int | None = None


@dataclass(frozen=True)
class Monkey:
    name: str
    mat: str          # path inside the release
    image_dir: str    # path inside the release


MONKEYS = {
    "George": Monkey("George", "George/george_060118_data.mat", "George/natural_test"),
    "Red": Monkey("Red", "Red/red_062419_data.mat", "Red/red_naturalface"),
}
#: panel id -> (monkey, region); the three panels of the paper's figure
PANELS = {"monkey1-PL": ("George", "PL"), "monkey1-ML": ("George", "ML"), "monkey2-ML": ("Red", "ML")}
#: named time windows (ms after onset, [start, end)) per monkey; see the module docstring
WINDOWS = {
    "docstring": {"George": (100, 150), "Red": (150, 300)},
    "load_data": {"George": (50, 90), "Red": (50, 90)},
    "benchmark": {"George": (130, 170), "Red": (130, 170)},
}
#: George's first ML channel index (0-based) under each reading
CHANNEL_SPLITS = {"docstring": 32, "code": 33}
#: a file that generated releases (benchmark.neural.synthetic) carry at their root
SYNTHETIC_MARKER = "SYNTHETIC.txt"


# ------------------------------------------------------------------------------------ fetching
def _release_root(folder: Path) -> Path | None:
    """The folder holding George/ and Red/ (the archive may wrap them in a top-level folder)."""
    for cand in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []:
        if all((cand / m.mat).is_file() for m in MONKEYS.values()):
            return cand
    return None


def _extract(zip_path: Path, dest: Path) -> Path:
    """Extract ``zip_path`` into ``dest`` atomically (temp folder + rename); refuses unsafe names."""
    tmp = create_temp_folder(dest)  # mode from the umask, unlike mkdtemp's 0700
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if not str(target).startswith(str(tmp.resolve()) + os.sep) and target != tmp.resolve():
                    raise InvalidInputError(f"{zip_path}: refusing unsafe member name {member!r}")
            zf.extractall(tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InvalidInputError(f"{zip_path}: not a valid zip archive ({exc}); delete it to download it again") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def install_arcaro2020(source: str | Path) -> Path:
    """Copy a local mirror into the cache, as a download from it would: ``source`` is a copy of the
    zip, a folder holding ``Arcaro2020.zip``, or an extracted release folder. Returns the cached
    release folder; a cache that already holds the release is kept as it is."""
    source = Path(source).expanduser()
    folder = cache_dir("neural", "arcaro2020")
    extracted = folder / "extracted"
    if extracted.is_dir() and (found := _release_root(extracted)):
        return found
    if source.is_dir() and (source / ZIP_NAME).is_file():
        source = source / ZIP_NAME
    if source.is_file():
        atomic_copy_file(source, folder / ZIP_NAME)
        return fetch_arcaro2020(download=False)
    release = _release_root(source) if source.is_dir() else None
    if release is None:
        if not source.exists():
            raise DataUnavailableError(f"Arcaro 2020 recordings: mirror {source} does not exist")
        _not_release(source)
    tmp = create_temp_folder(_mkparent(extracted))
    try:
        for monkey in MONKEYS:  # each monkey's folder: its .mat file and its image folder
            shutil.copytree(release / monkey, tmp / monkey)
        os.replace(tmp, extracted)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _release_root(extracted) or _not_release(extracted)


def fetch_arcaro2020(root: str | Path | None = None, *, url: str | None = None, download: bool = True,
                     progress: bool | None = None) -> Path:
    """The release folder (holding ``George/`` and ``Red/``), downloading and extracting it if needed.

    ``root``: an extracted release folder or a local copy of the zip (used in place, not copied;
    :func:`install_arcaro2020` copies one into the cache). ``url``: a mirror of the zip. Raises :class:`DataUnavailableError` when the data are missing and
    cannot be downloaded (``download=False``, offline mode, or no connection).
    """
    from benchmark.datasets.download import OFFLINE_ENVS, download_file, is_offline

    if root is not None:
        root = Path(root).expanduser()
        if root.is_file():
            # one extraction per zip file (path, size, mtime): another zip of the same name never
            # reads a stale extraction
            st = root.stat()
            tag = hashlib.sha256(f"{root.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
            dest = cache_dir("neural", "arcaro2020", f"extracted-{root.stem}-{tag}")
            found = _release_root(dest) if dest.exists() else None
            return found or _release_root(_extract(root, _mkparent(dest))) or _not_release(root)
        if root.is_dir():
            return _release_root(root) or _not_release(root)
        raise DataUnavailableError(f"Arcaro 2020 recordings: {root} does not exist")
    folder = cache_dir("neural", "arcaro2020")
    extracted = folder / "extracted"
    if extracted.is_dir() and (found := _release_root(extracted)):
        return found
    zip_path = folder / ZIP_NAME
    if not zip_path.is_file():
        source = url or ARCARO_URL
        hint = (f"put {ZIP_NAME} (from {source}) or its extracted George/ and Red/ folders in {folder}, "
                "or pass the path of a local copy")
        if not download or is_offline():
            why = "downloads are off" if not download else f"offline mode ({' or '.join(OFFLINE_ENVS)} is set)"
            raise DataUnavailableError(f"Arcaro 2020 recordings missing from {folder} and cannot be downloaded ({why}): {hint}")
        try:
            download_file(source, zip_path, size=ARCARO_SIZE, sha256=ARCARO_SHA256, progress=progress)
        except urllib.error.URLError as exc:
            raise DataUnavailableError(f"Arcaro 2020 recordings: cannot download {source} ({exc}): {hint}") from exc
    return _release_root(_extract(zip_path, _mkparent(extracted))) or _not_release(zip_path)


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _not_release(path: Path) -> Path:
    raise InvalidInputError(f"{path}: no {MONKEYS['George'].mat} and {MONKEYS['Red'].mat} in it "
                            "(not the Arcaro 2020 release layout)")


# ------------------------------------------------------------------------------------ parsing
def read_mat(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """``imageRF`` in MATLAB axis order (X, Y, time, channel, image) and the image file base names.

    MATLAB v5 files go through ``scipy.io.loadmat``; v7.3 (HDF5) files through h5py, whose arrays
    come out with the axes reversed (column-major) and are transposed back here.
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataUnavailableError(f"{path}: recording file missing")
    try:
        mat = scipy.io.loadmat(path, variable_names=["imageRF", "UniqueNames"])
    except NotImplementedError:  # scipy's signal for a v7.3 (HDF5) file
        return _read_mat_v73(path)
    except (ValueError, OSError, TypeError, IndexError, scipy.io.matlab.MatReadError) as exc:
        # (scipy raises IndexError on a file shorter than a MATLAB header)
        raise InvalidInputError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from exc
    for key in ("imageRF", "UniqueNames"):
        if key not in mat:
            raise InvalidInputError(f"{path}: variable {key!r} missing")
    names = [_as_text(x) for x in np.asarray(mat["UniqueNames"], dtype=object).ravel()]
    return np.asarray(mat["imageRF"]), [_base_name(n) for n in names]


def _read_mat_v73(path: Path) -> tuple[np.ndarray, list[str]]:
    import h5py

    with h5py.File(path, "r") as f:
        for key in ("imageRF", "UniqueNames"):
            if key not in f:
                raise InvalidInputError(f"{path}: variable {key!r} missing")
        rf = np.asarray(f["imageRF"]).transpose()
        names = []
        for ref in np.asarray(f["UniqueNames"]).ravel():
            chars = np.asarray(f[ref]).ravel()
            names.append("".join(map(chr, chars)))
    return rf, [_base_name(n) for n in names]


def _as_text(value: object) -> str:
    while isinstance(value, np.ndarray):
        if value.size != 1:
            if value.dtype.kind in "US":
                return "".join(value.ravel().tolist())
            raise InvalidInputError(f"UniqueNames: expected one string per image, found an array of shape {value.shape}")
        value = value.ravel()[0]
    return str(value)


def _base_name(name: str) -> str:
    return re.split(r"[\\/]", name.strip())[-1]


def _load_image(folder: Path, name: str) -> np.ndarray:
    from PIL import Image

    path = folder / name
    if not path.is_file() and not Path(name).suffix:  # a name without extension: match name.*
        matches = sorted(folder.glob(glob_escape(name) + ".*"))
        path = matches[0] if matches else path
    if not path.is_file():
        raise DataUnavailableError(f"stimulus {path} (named in UniqueNames) is missing")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise InvalidInputError(f"{path}: not a readable image ({exc})") from exc


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def read_panels(root: str | Path, monkey: str, *, regions: Sequence[str] | None = None,
                window: str | tuple[int, int] = "docstring", channel_split: str = "docstring") -> list[NeuralRecording]:
    """The panels of one monkey from an extracted release folder (see the module docstring)."""
    if monkey not in MONKEYS:
        raise InvalidInputError(f"monkey {monkey!r}: expected one of {sorted(MONKEYS)}")
    if channel_split not in CHANNEL_SPLITS:
        raise InvalidInputError(f"channel_split {channel_split!r}: expected one of {sorted(CHANNEL_SPLITS)}")
    if isinstance(window, str):
        if window not in WINDOWS:
            raise InvalidInputError(f"window {window!r}: expected one of {sorted(WINDOWS)} or (start_ms, end_ms)")
        start, end = WINDOWS[window][monkey]
    else:
        start, end = (int(v) for v in window)
    spec = MONKEYS[monkey]
    root = Path(root)
    mat_path = root / spec.mat
    rf, names = read_mat(mat_path)
    if rf.ndim != 5:
        raise InvalidInputError(f"{mat_path}: imageRF must have 5 axes (X, Y, time, channel, image), has shape {rf.shape}")
    if rf.shape[0] != rf.shape[1]:
        raise InvalidInputError(f"{mat_path}: imageRF grid is {rf.shape[0]}x{rf.shape[1]}, expected square")
    if not 0 <= start < end <= rf.shape[2]:
        raise InvalidInputError(f"{mat_path}: time window {start}-{end} ms outside the recorded 0-{rf.shape[2]} ms")
    if len(names) != rf.shape[4]:
        raise InvalidInputError(f"{mat_path}: {len(names)} UniqueNames for {rf.shape[4]} images")
    data = rf.transpose(4, 0, 1, 2, 3)[:, ::-1, ::-1]           # (image, X, Y, time, channel), flipped
    responses = data[:, :, :, start:end].astype(np.float64).mean(axis=3)
    n_channels = responses.shape[-1]
    if monkey == "George":
        split = CHANNEL_SPLITS[channel_split]
        groups = {"PL": np.arange(0, split), "ML": np.arange(split, n_channels)}
    else:
        groups = {"ML": np.arange(n_channels)}
    image_folder = root / spec.image_dir
    images = np.stack([images_to_boundary(_load_image(image_folder, n)[None], str(image_folder / n))[0]
                       for n in names])
    panel_of = {(m, r): p for p, (m, r) in PANELS.items()}
    synthetic = ["SYNTHETIC release (generated by alignbench, not recorded)"] if (root / SYNTHETIC_MARKER).exists() else []
    out = []
    for region in regions or list(groups):
        if region not in groups:
            raise InvalidInputError(f"{monkey}: no region {region!r} (has {sorted(groups)})")
        idx = groups[region]
        out.append(NeuralRecording(
            panel=panel_of.get((monkey, region), f"{monkey}-{region}"), subject=monkey, region=region,
            responses=np.ascontiguousarray(responses[..., idx]), images=images, image_ids=list(names),
            site_ids=[f"ch{i + 1:02d}" for i in idx], window_ms=(start, end), source=str(mat_path),
            notes=[f"channels {idx[0] + 1}-{idx[-1] + 1} (split: {channel_split})" if monkey == "George" else "all channels",
                   *synthetic]))
    return out


def load_arcaro2020(root: str | Path | None = None, *, panels: Sequence[str] | None = None,
                    window: str | tuple[int, int] = "docstring", channel_split: str = "docstring",
                    download: bool = True, url: str | None = None) -> list[NeuralRecording]:
    """The paper's panels (default all three of :data:`PANELS`), fetching the release if needed."""
    panels = list(panels or PANELS)
    unknown = [p for p in panels if p not in PANELS]
    if unknown:
        raise InvalidInputError(f"panels {unknown}: expected some of {list(PANELS)}")
    folder = fetch_arcaro2020(root, url=url, download=download)
    out = []
    for monkey in dict.fromkeys(PANELS[p][0] for p in panels):
        regions = [PANELS[p][1] for p in panels if PANELS[p][0] == monkey]
        out += read_panels(folder, monkey, regions=regions, window=window, channel_split=channel_split)
    return out
