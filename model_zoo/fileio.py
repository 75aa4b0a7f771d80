"""Small file utilities shared by every package: atomic writes, hashing, the cache folder.

Everything alignbench writes goes through :func:`atomic_write_bytes` (temporary file in the same
folder, fsync, ``os.replace``), or through :func:`atomic_output` / :func:`atomic_folder` when a
library writes the file or folder itself, so a killed process leaves either the old file or the
new one, never a torn one.

File modes: temporary files and folders are created with ``os.open(..., 0o666)`` /
``os.mkdir(..., 0o777)``, so the kernel applies the user's umask (and a folder's default ACL)
exactly as for a plain ``open(path, "w")``: 0644 / 0755 under umask 022, 0600 / 0700 under 077.
(``tempfile.mkstemp`` / ``mkdtemp`` would make every result 0600 / 0700, unreadable in a shared
results folder or a copied site.) The umask is never read or changed, so there is no race with
other threads and no import-time side effect.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Iterator

CACHE_ENV = "ALIGNBENCH_CACHE"
_FILE_MODE = 0o666  # before the umask: what open(path, "w") asks for
_DIR_MODE = 0o777  # before the umask: what mkdir asks for
_CREATE_ATTEMPTS = 100


def cache_dir(*parts: str) -> Path:
    """Root of alignbench's download cache (``$ALIGNBENCH_CACHE``, else ``~/.cache/alignbench``),
    joined with ``parts``. The folder is not created here."""
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "alignbench"
    return base.joinpath(*parts)


def _sibling_name(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")


def create_temp_file(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a new, empty, uniquely named hidden sibling of ``path`` (``.<name>.<random><suffix>``)
    with the mode the umask gives; return (open write-only fd, its path). Creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_CREATE_ATTEMPTS):
        tmp = _sibling_name(path, suffix)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), _FILE_MODE)
        except FileExistsError:
            continue
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def create_temp_folder(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """Create a new, empty, uniquely named hidden sibling folder of ``path`` with the mode the umask
    gives (unlike ``tempfile.mkdtemp``'s 0700); return it. Creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(_CREATE_ATTEMPTS):
        tmp = _sibling_name(path, suffix)
        try:
            os.mkdir(tmp, _DIR_MODE)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary folder beside {path}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[BinaryIO]:
    """An open temporary sibling of ``path``; on success fsynced and renamed to ``path``."""
    fd, tmp = create_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename), mode from the umask.
    Creates parent folders."""
    path = Path(path)
    with _replacing(path) as fh:
        fh.write(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """``with atomic_output(p) as tmp:`` let a library write ``tmp`` by name (``model.save``,
    ``torch.save``, ``np.save``...); on success it is fsynced and renamed to ``p``, on an error
    removed. ``tmp`` already exists (empty, mode from the umask) and ends with ``suffix``, for
    libraries that pick the format from the extension (``".keras"``)."""
    path = Path(path)
    fd, tmp = create_temp_file(path, suffix)
    os.close(fd)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_folder(dest) as tmp:`` fill the new folder ``tmp``; on success it takes the name
    ``dest`` in one rename (an existing ``dest`` is removed just before, so a reader sees the old
    folder, none, or the complete new one), on an error it is removed. ``tmp`` has the mode the
    umask gives."""
    path = Path(path)
    tmp = create_temp_folder(path)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy the bytes of ``src`` to ``dst`` atomically (mode from the umask, not ``src``'s)."""
    dst = Path(dst)
    with _replacing(dst) as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
    return dst


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
