"""Fetch ClickMe shards: official location, a mirror URL or a local folder; resumable and checked.

The shard lists live in ``sources.json`` beside this file (data, not code). Downloads go to
``cache_dir("clickme", split)`` (``$ALIGNBENCH_CACHE``), stream into ``<file>.part`` and resume with
an HTTP ``Range`` request; a file only takes its final name once its size (server ``Content-Length``
and ``sources.json``) and its sha256 (when ``sources.json`` has one) check out. Offline use
(``ALIGNBENCH_OFFLINE=1``, ``HF_HUB_OFFLINE=1``, or no connection) raises one
:class:`~model_zoo.errors.DataUnavailableError` naming the folder to put the files in and the URL.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from model_zoo.errors import DataUnavailableError, InvalidInputError
from model_zoo.fileio import cache_dir, sha256_file

SOURCES_FILE = Path(__file__).with_name("sources.json")
OFFLINE_ENVS = ("ALIGNBENCH_OFFLINE", "HF_HUB_OFFLINE")
_CHUNK = 1 << 20
# errors after which a partial download is worth resuming
_TRANSIENT = (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException)


@dataclass(frozen=True)
class ShardSource:
    """One shard as listed in ``sources.json``; ``size`` (bytes) and ``sha256`` are None when unknown."""

    split: str
    file: str
    size: int | None = None
    sha256: str | None = None
    outside_paper_loader: bool = False


@lru_cache(maxsize=1)
def load_sources() -> dict[str, Any]:
    """The parsed ``sources.json``."""
    with open(SOURCES_FILE, encoding="utf-8") as fh:
        return json.load(fh)


def split_shards(split: str, *, include_outside_paper_loader: bool = False) -> list[ShardSource]:
    """The shards of ``split`` ("val" or "train") in their listed order."""
    splits = load_sources()["splits"]
    if split not in splits:
        raise InvalidInputError(f"unknown ClickMe split {split!r} (sources.json has {sorted(splits)})")
    return [
        ShardSource(split, s["file"], s.get("size"), s.get("sha256"), bool(s.get("outside_paper_loader")))
        for s in splits[split]
        if include_outside_paper_loader or not s.get("outside_paper_loader")
    ]


def is_offline() -> bool:
    """Whether ``ALIGNBENCH_OFFLINE`` or ``HF_HUB_OFFLINE`` asks for no network access."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENVS)


def split_url(base: str, split: str) -> str:
    return f"{base.rstrip('/')}/{split}/"


def fetch_shards(
    shards: Sequence[ShardSource],
    *,
    mirror: str | None = None,
    dest_dir: str | os.PathLike | None = None,
    download: bool = True,
    retries: int = 2,
    progress: bool | None = None,
) -> list[Path]:
    """Local paths of ``shards``, downloading the missing ones.

    ``mirror``: a base URL replacing the official one (same ``<split>/<file>`` layout), or a local
    folder holding the files (used in place, nothing is copied; a ``<split>/`` subfolder is also
    accepted). Files land in ``dest_dir`` (default ``cache_dir("clickme", split)``).
    Raises :class:`DataUnavailableError` when files are missing and cannot be downloaded.
    """
    if not shards:
        return []
    split = shards[0].split
    if mirror and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", mirror):
        return _from_local_folder(shards, Path(mirror).expanduser())
    base = mirror or load_sources()["base"]
    folder = Path(dest_dir) if dest_dir is not None else cache_dir("clickme", split)
    paths = [folder / s.file for s in shards]
    missing = [(s, p) for s, p in zip(shards, paths) if not _present(p, s)]
    if not missing:
        return paths
    url = split_url(base, split)
    if not download or is_offline():
        why = "downloads are off" if not download else f"offline mode ({' or '.join(OFFLINE_ENVS)} is set)"
        raise DataUnavailableError(_missing_message(missing, folder, url, why))
    folder.mkdir(parents=True, exist_ok=True)
    for s, p in missing:
        try:
            download_file(url + s.file, p, size=s.size, sha256=s.sha256, retries=retries, progress=progress)
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError):
                raise DataUnavailableError(
                    f"{url + s.file}: HTTP {exc.code} {exc.reason}; put the ClickMe shards in {folder}, "
                    f"or {_advice(split)}"
                ) from exc
            missing_now = [(m, q) for m, q in missing if not q.exists()]
            why = f"no connection ({exc.reason})"
            raise DataUnavailableError(_missing_message(missing_now, folder, url, why)) from exc
    return paths


def _missing_message(missing: Sequence[tuple[ShardSource, Path]], folder: Path, url: str, why: str) -> str:
    names = [s.file for s, _ in missing]
    shown = ", ".join(names[:3]) + (f", ... ({len(names)} files)" if len(names) > 3 else "")
    return (
        f"ClickMe {missing[0][0].split} shards missing from {folder}: {shown}. Cannot download them ({why}): "
        f"put the files in {folder} (they come from {url}), or {_advice(missing[0][0].split)}."
    )


def _advice(split: str) -> str:
    """The commands that get a split's shards another way (each one works as printed)."""
    names = [n for n, d in load_sources().get("datasets", {}).items() if d.get("split") == split]
    name = names[0] if names else f"clickme-{split}"
    return (f"fetch them from a mirror with `alignbench data download {name} --mirror URL`, or score a local "
            f"copy of the shards directly with `alignbench run --dataset FOLDER ...`")


def _present(path: Path, shard: ShardSource) -> bool:
    if not path.is_file():
        return False
    if shard.size is not None and path.stat().st_size != shard.size:
        raise InvalidInputError(
            f"{path}: {path.stat().st_size} bytes, but sources.json lists {shard.size} for {shard.file}; "
            "delete it to download it again"
        )
    return True


def _from_local_folder(shards: Sequence[ShardSource], folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataUnavailableError(f"mirror folder {folder} does not exist")
    split = shards[0].split
    root = folder / split if (folder / split).is_dir() and not (folder / shards[0].file).exists() else folder
    paths = [root / s.file for s in shards]
    missing = [(s, p) for s, p in zip(shards, paths) if not _present(p, s)]
    if missing:
        raise DataUnavailableError(_missing_message(missing, root, split_url(load_sources()["base"], split),
                                                    "a local mirror folder was given"))
    return paths


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    size: int | None = None,
    sha256: str | None = None,
    retries: int = 2,
    timeout: float = 60.0,
    progress: bool | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through ``dest + ".part"``, resuming a partial file with ``Range``.

    ``size`` (bytes) and ``sha256`` (hex) are checked when given, and the server's length always;
    on a mismatch the partial file is deleted and :class:`InvalidInputError` is raised. After
    ``retries`` interrupted attempts the ``.part`` file is kept and :class:`DataUnavailableError`
    says to run again to resume. Connection failures raise ``urllib.error.URLError``.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(retries + 1):
        try:
            total = _fetch_into(url, part, size=size, timeout=timeout, progress=progress)
            break
        except _TRANSIENT as exc:
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                raise DataUnavailableError(
                    f"download of {url} interrupted ({type(exc).__name__}) after {have} bytes; the partial "
                    f"file is kept at {part}: run the same command again to resume"
                ) from exc
    got = part.stat().st_size
    if got != total or (size is not None and got != size):
        part.unlink(missing_ok=True)
        expected = size if size is not None else total
        raise InvalidInputError(f"{url}: received {got} bytes, expected {expected}; the partial file was deleted")
    if sha256 is not None:
        actual = sha256_file(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise InvalidInputError(f"{url}: sha256 {actual} does not match sources.json ({sha256}); file deleted")
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, *, size: int | None, timeout: float, progress: bool | None) -> int:
    """One attempt: append the rest of ``url`` to ``part``; return the full length of the resource."""
    from tqdm.auto import tqdm

    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "alignbench", "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset and size is not None and offset == size:
            return offset  # already complete
        if exc.code == 416:  # a stale partial file longer than the resource: start over
            part.unlink()
            return _fetch_into(url, part, size=size, timeout=timeout, progress=progress)
        raise
    with response:
        if offset and response.status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise http.client.HTTPException(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
            total = int(match.group(2)) if match.group(2) != "*" else None
        else:  # a full response (server ignores Range, or a fresh download)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        if total is None:
            total = size if size is not None else -1
        if size is not None and total not in (-1, size):
            raise InvalidInputError(f"{url}: server reports {total} bytes, sources.json lists {size}")
        with open(part, "ab") as fh, tqdm(total=total if total >= 0 else None, initial=offset, unit="B",
                                           unit_scale=True, desc=part.name[: -len(".part")],
                                           disable=None if progress is None else not progress) as bar:
            _lock(fh, part)  # before truncating: never clobber another process's download
            if not offset:
                fh.truncate(0)
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                fh.write(block)
                bar.update(len(block))
            fh.flush()
            os.fsync(fh.fileno())
    got = part.stat().st_size
    if total >= 0 and got < total:
        raise http.client.IncompleteRead(b"", total - got)
    return got if total < 0 else total


def _lock(fh: Any, part: Path) -> None:
    """Refuse to interleave two processes' writes into the same partial file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, accept the risk
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise DataUnavailableError(f"{part} is being downloaded by another process; wait for it") from exc
