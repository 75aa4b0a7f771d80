"""Size limits of everything a bundle or a plugin hands the leaderboard.

A bundle is read before anything trusts it, so every file has a byte limit checked before it is
parsed (a 30 MB record is refused, not loaded), and every JSON value a depth, item-count and text
length limit: no field can grow a model page or the process. Problems name the file and field.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator, Mapping

from model_zoo.errors import InvalidInputError

KIB, MIB = 1024, 1024 * 1024
#: Largest file of each kind, in bytes (a full ClickMe-val scores file is ~2 MB).
MAX_BYTES = {"submission.json": 64 * KIB, "record": 256 * KIB, "_ceiling.json": 64 * KIB,
             "_baseline-center-bias.json": 64 * KIB, "architecture.json": 16 * KIB, "result.json": 16 * KIB,
             "scores": 64 * MIB, "gallery": 512 * KIB}
MAX_TEXT_DEFAULT = 1000  # any text field not named below
MAX_TEXT = {"description": 5000, "failure": 4000, "error": 4000, "method": 2000, "top1_source": 2100, "affiliation": 300,
            "email": 254, "name": 200, "licence": 200, "url": 500}
MAX_DEPTH = 8
MAX_ITEMS = 500  # entries of one object or array


def read_bounded(path: Path, kind: str) -> bytes:
    """The bytes of a regular file (not a link, FIFO or device) no larger than ``MAX_BYTES[kind]``."""
    limit = MAX_BYTES[kind]
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise InvalidInputError(f"{path.name}: cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInputError(f"{path.name}: not a regular file")
        if info.st_size > limit:
            raise InvalidInputError(f"{path.name}: {info.st_size / KIB:.0f} KiB, larger than the limit of "
                                    f"{limit / KIB:.0f} KiB for a {kind} file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:  # grew while being read
            raise InvalidInputError(f"{path.name}: larger than the limit of {limit / KIB:.0f} KiB for a {kind} file")
        return data
    finally:
        os.close(fd)


def read_json_bounded(path: Path, kind: str) -> Any:
    """JSON of a file within :func:`read_bounded`'s limit, its values within :func:`json_problems`'."""
    data = read_bounded(path, kind)
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"{path.name}: not readable JSON ({exc})") from None
    problems = json_problems(value)
    if problems:
        raise InvalidInputError(f"{path.name}: " + "; ".join(problems[:3])
                                + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
    return value


def _walk(value: Any, where: str, depth: int) -> Iterator[str]:
    if depth > MAX_DEPTH:
        yield f"{where or 'value'}: nested deeper than {MAX_DEPTH} levels"
        return
    if isinstance(value, Mapping):
        if len(value) > MAX_ITEMS:
            yield f"{where or 'value'}: {len(value)} entries, more than {MAX_ITEMS}"
            return
        for key, item in value.items():
            key = str(key)
            if len(key) > 100:
                yield f"{where or 'value'}: a key longer than 100 characters"
                continue
            yield from _walk(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            yield f"{where}: {len(value)} items, more than {MAX_ITEMS}"
            return
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, str):
        leaf = where.rsplit(".", 1)[-1].split("[", 1)[0]
        limit = MAX_TEXT.get(leaf, MAX_TEXT_DEFAULT)
        if len(value) > limit:
            yield f"{where}: {len(value)} characters, longer than the limit of {limit}"


def json_problems(value: Any, where: str = "") -> list[str]:
    """Every field of a JSON value over its limit (text length, depth, entries), named by its path."""
    return list(_walk(value, where, 0))
