"""``alignbench data download``: a named dataset's files put in the cache, from the official location
or a mirror. A local mirror (a folder or an archive) is copied into the cache like a download would
be, so that later commands find the data without ``--mirror``. (Elsewhere, ``get_dataset(name,
mirror=FOLDER)`` reads a local ClickMe or Clicktionary mirror in place.)"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from model_zoo.fileio import atomic_copy_file, cache_dir, create_temp_folder


def _is_url(mirror: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", mirror))


def download_dataset(name: str, *, mirror: str | None = None, download: bool = True) -> list[Path]:
    """The dataset's files, in the cache (a local ``mirror`` copied there first). Raises what
    :func:`benchmark.datasets.get_dataset` raises for missing data, naming what to do."""
    from benchmark.datasets.download import fetch_shards, load_sources, split_shards
    from benchmark.datasets.registry import get_dataset

    if mirror is not None and not _is_url(mirror):
        named = load_sources()["datasets"]
        if name in named:
            spec = named[name]
            shards = split_shards(spec["split"], include_outside_paper_loader=spec["include_outside_paper_loader"])
            dest = cache_dir("clickme", spec["split"])
            dest.mkdir(parents=True, exist_ok=True)
            for path in fetch_shards(shards, mirror=mirror, download=False):  # checks the mirror has them all
                if not (dest / path.name).is_file():
                    atomic_copy_file(path, dest / path.name)
            return fetch_shards(shards, download=False)
        if name == "clicktionary":
            _install_clicktionary(mirror)
            mirror = None
    return [Path(f) for f in get_dataset(name, mirror=mirror, download=download).files()]


def _install_clicktionary(mirror: str) -> None:
    from benchmark.datasets import clicktionary as ct

    folder = ct.fetch_release(mirror=mirror, download=False)  # a local archive is unpacked into the cache
    cache = cache_dir(ct.NAME)
    if folder.resolve() == cache.resolve() or (cache / ct.MANIFEST).is_file():
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = create_temp_folder(cache)
    try:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        if cache.is_dir():
            cache.rmdir()  # empty: cache_dir() made it; the release has no manifest there
        os.replace(tmp, cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
