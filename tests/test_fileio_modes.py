"""Files and folders alignbench writes get the mode the user's umask gives (0644 / 0755 under umask
022, 0600 / 0700 under 077), as ``open(path, "w")`` would, and are still written atomically."""
from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from model_zoo import fileio

REPO = Path(__file__).resolve().parent.parent
UMASKS = [0o022, 0o077]


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", UMASKS)
def test_atomic_writers_follow_the_umask(tmp_path, mask):
    with umask(mask):
        paths = [fileio.atomic_write_bytes(tmp_path / "a.bin", b"x"),
                 fileio.atomic_write_text(tmp_path / "sub" / "b.txt", "y"),
                 fileio.atomic_write_json(tmp_path / "c.json", {"z": 1}),
                 fileio.atomic_copy_file(tmp_path / "a.bin", tmp_path / "d.bin")]
        with fileio.atomic_output(tmp_path / "e.npy", suffix=".npy") as tmp:
            assert tmp.name.endswith(".npy") and mode(tmp) == 0o666 & ~mask
            np.save(tmp, np.arange(3))
        paths.append(tmp_path / "e.npy")
        with fileio.atomic_folder(tmp_path / "folder") as tmp:
            (tmp / "inside.txt").write_text("w")
        folder = tmp_path / "folder"
    for p in paths:
        assert mode(p) == 0o666 & ~mask, p
    assert mode(folder) == 0o777 & ~mask and mode(tmp_path / "sub") == 0o777 & ~mask
    assert (tmp_path / "d.bin").read_bytes() == b"x" and np.load(tmp_path / "e.npy").tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporaries left


def test_atomic_output_and_folder_leave_the_old_version_on_error(tmp_path):
    fileio.atomic_write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError), fileio.atomic_output(tmp_path / "keep.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_folder(tmp_path / "dir") as tmp:
        (tmp / "new.txt").write_text("half")
        raise RuntimeError("killed")
    assert (tmp_path / "keep.txt").read_text() == "old" and [p.name for p in (tmp_path / "dir").iterdir()] == ["old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "keep.txt"]


@pytest.mark.parametrize("mask", UMASKS)
def test_records_and_prepared_copies_follow_the_umask(tmp_path, monkeypatch, mask):
    from benchmark import records
    from benchmark.datasets import prepared
    from benchmark.scores import score_fields

    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    with umask(mask):
        rec = records.write_record(tmp_path / "results" / "ds" / "_ceiling.json",
                                   {"kind": "ceiling", "task": "maps", "dataset": "ds", "value": 0.5, "source": "test",
                                    **score_fields(0.5, score_name="test", n=None)})
        writer = prepared.UnitWriter.start("0" * 64, 2, "test unit")
        writer.add(rng.random((2, 224, 224, 3), dtype=np.float32), rng.random((2, 224, 224), dtype=np.float32),
                   np.array([1, 2]), np.array([0, 1]))
        assert writer.commit()
    unit = tmp_path / "cache" / "prepared" / ("0" * 64)
    assert mode(rec) == 0o666 & ~mask and mode(unit) == 0o777 & ~mask
    for p in unit.iterdir():
        assert mode(p) == 0o666 & ~mask, p


@pytest.mark.parametrize("mask", UMASKS)
def test_downloaded_weights_follow_the_umask(tmp_path, monkeypatch, mask):
    from model_zoo import weights

    source = tmp_path / "w.bin"
    source.write_bytes(b"\x00" * 1024)
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNBENCH_PROGRESS", "0")
    monkeypatch.delenv("ALIGNBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    with umask(mask):
        path = weights.fetch_url(source.as_uri(), model_id="test")
    assert path.read_bytes() == source.read_bytes() and mode(path) == 0o666 & ~mask


@pytest.mark.tf
@pytest.mark.parametrize("mask", UMASKS)
def test_keras_exports_follow_the_umask(tmp_path, mask):
    import keras

    from model_zoo import model_folder

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with umask(mask):
        out = model_folder.write(tmp_path / "export", model, id="tiny", framework="keras", family="cnn",
                                 preprocess={"input_size": 4, "mean": [0.0] * 3, "std": [1.0] * 3, "scale": 1.0})
    assert mode(out / "model.keras") == 0o666 & ~mask
    for p in out.iterdir():
        assert mode(p) == 0o666 & ~mask and not p.name.startswith("."), p


def test_no_library_module_creates_outputs_with_private_modes():
    """mkstemp/mkdtemp/NamedTemporaryFile create 0600/0700 files and folders: results, caches and
    exports written through them are unreadable to everyone else once renamed into place."""
    pattern = re.compile(r"\b(mkstemp|NamedTemporaryFile)\(|\bmkdtemp\(\s*dir=")  # a scratch mkdtemp in /tmp is fine
    offenders = []
    for package in ("model_zoo", "benchmark", "leaderboard", "alignbench"):
        for path in (REPO / package).rglob("*.py"):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == [], "\n".join(offenders)
