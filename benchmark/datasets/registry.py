"""Dataset names and paths -> dataset objects (data only; :mod:`benchmark.tasks` scores them).

Named: the ClickMe sets of ``sources.json``, ``clicktionary``, ``psychophysics``, ``it-arcaro2020`` and
any registered with :func:`register_dataset`. Paths: a folder of ClickMe-format ``*.tfrecords``
shards (or one shard), a Clicktionary release folder (``clicktionary.csv``), a psychophysics stimulus
folder (``manifest.csv``), or IT recordings in ``.npz`` format.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Callable

from benchmark.datasets.clickme import ClickMeDataset, natural_key
from benchmark.datasets.download import fetch_shards, load_sources, split_shards
from model_zoo.errors import InvalidInputError


_FACTORIES: dict[str, Callable[..., Any]] = {}

# Built-in datasets of other kinds, imported only when asked for (no import-time cost or side effect):
# name -> "module:factory"; factory(download=..., mirror=...) returns the dataset object.
_BUILTIN: dict[str, str] = {
    "clicktionary": "benchmark.datasets.clicktionary:clicktionary_dataset",
    "psychophysics": "benchmark.psychophysics.data:psychophysics_dataset",
    "it-arcaro2020": "benchmark.neural.data:neural_dataset",
}


def _factory(name: str) -> Callable[..., Any] | None:
    if name in _FACTORIES:
        return _FACTORIES[name]
    if name in _BUILTIN:
        import importlib

        module, attr = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(module), attr)
    return None


def register_dataset(name: str, factory: Callable[..., Any]) -> None:
    """Add a named dataset of another kind (e.g. Clicktionary): ``factory(download=..., mirror=...)``
    returns an object with the same surface as :class:`ClickMeDataset`."""
    if name in load_sources()["datasets"]:
        raise ValueError(f"{name!r} is a ClickMe dataset of sources.json")
    _FACTORIES[name] = factory


def list_datasets() -> list[str]:
    """The named datasets (``clickme-val`` = the paper's 17 validation shards, ...)."""
    return list(load_sources()["datasets"]) + sorted(set(_FACTORIES) | set(_BUILTIN))


def get_dataset(name_or_path: str, *, download: bool = True, mirror: str | None = None,
                prepared: bool | None = None) -> Any:
    """A named dataset (files fetched on first use; ``mirror``: a base URL or a local folder replacing
    the official location; ``download=False``: never touch the network) or a local folder of
    ``*.tfrecords`` shards / a single shard file, a Clicktionary release folder (``clicktionary.csv``),
    a psychophysics stimulus folder (``manifest.csv`` + human responses) or ``.npz`` IT recordings.
    Nothing is read or downloaded here. ``prepared``: whether a "maps" dataset reads and writes its prepared copy
    (default ``$ALIGNBENCH_PREPARED``, on; :mod:`benchmark.datasets.prepared`).
    """
    dataset = _resolve(name_or_path, download=download, mirror=mirror)
    if prepared is not None and hasattr(dataset, "prepared"):
        dataset.prepared = prepared
    return dataset


def _resolve(name_or_path: str, *, download: bool, mirror: str | None) -> Any:
    named = load_sources()["datasets"]
    if name_or_path in named:
        spec = named[name_or_path]
        shards = split_shards(spec["split"], include_outside_paper_loader=spec["include_outside_paper_loader"])
        return ClickMeDataset(name_or_path, fetch=lambda: fetch_shards(shards, mirror=mirror, download=download),
                              description=spec.get("description", ""))
    factory = _factory(name_or_path)
    if factory is not None:
        return factory(download=download, mirror=mirror)
    path = Path(name_or_path).expanduser()
    if path.is_dir() and (path / "clicktionary.csv").is_file():  # a folder in the Clicktionary release layout
        from benchmark.datasets.clicktionary import ClicktionaryDataset

        return ClicktionaryDataset(path, name=path.resolve().name, description=f"Clicktionary release in {path}")
    if path.is_dir() and (path / "manifest.csv").is_file():  # a psychophysics stimulus folder (+ human responses)
        from benchmark.psychophysics.data import psychophysics_folder

        return psychophysics_folder(path)
    if path.is_file() and path.suffix == ".npz":  # IT recordings (format: benchmark.neural.recordings)
        from benchmark.neural.data import recordings_dataset

        return recordings_dataset(path)
    if path.is_dir():
        files = sorted(path.glob("*.tfrecords"), key=natural_key)
        if not files:
            raise InvalidInputError(f"dataset folder {path} holds no *.tfrecords shards, no clicktionary.csv "
                                    "(Clicktionary release) and no manifest.csv (psychophysics stimuli)")
        manifest = _manifest(path)
        synthetic = bool(manifest.get("synthetic"))
        description = "synthetic ClickMe-format data (generated)" if synthetic else f"shards in {path}"
        return ClickMeDataset(path.resolve().name, paths=files, synthetic=synthetic, description=description)
    if path.is_file():
        return ClickMeDataset(path.stem, paths=[path], description=f"shard {path}")
    close = difflib.get_close_matches(name_or_path, list_datasets(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise InvalidInputError(
        f"unknown dataset {name_or_path!r}: not one of {', '.join(list_datasets())}, and no such folder or file.{hint}"
    )


def results_name(name_or_path: str) -> str:
    """The name a dataset's records are stored under, without opening it: a named dataset's own name,
    a folder's name, a file's stem (what :func:`get_dataset` names the dataset)."""
    if name_or_path in load_sources()["datasets"] or _factory(name_or_path) is not None:
        return name_or_path
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve().name
    if path.is_file():
        return path.stem
    return name_or_path


def _manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
