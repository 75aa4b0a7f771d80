"""The prepared copy: the same batches as the tf.data path, bit for bit; written once by a full pass;
damage detected and repaired; tied to the source shards; switchable off."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.datasets import clicktionary as ct
from benchmark.datasets import get_dataset, prepared
from benchmark.ranking import rank_maps
from model_zoo.errors import InvalidInputError

pytestmark = pytest.mark.tf


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A private, empty cache (prepared units of other tests never leak in)."""
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(prepared.PREPARED_ENV, raising=False)
    monkeypatch.delenv(prepared.MAX_GB_ENV, raising=False)
    return tmp_path / "cache"


def units(cache: Path) -> list[Path]:
    root = cache / "prepared"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def leftovers(cache: Path) -> list[Path]:
    root = cache / "prepared"
    return sorted(p for p in root.iterdir() if p.name.startswith(".")) if root.is_dir() else []


def collect(batches) -> list:
    return list(batches)


def assert_same(fast: list, plain: list) -> None:
    """Bit-identical batches: images, heatmaps, labels (and dtype), ids, batch boundaries."""
    assert [b.ids for b in fast] == [b.ids for b in plain]
    for f, p in zip(fast, plain, strict=True):
        assert f.images.dtype == p.images.dtype == np.float32 and f.images.shape == p.images.shape
        assert np.array_equal(f.images, p.images)
        assert np.array_equal(f.heatmaps, p.heatmaps) and f.heatmaps.dtype == p.heatmaps.dtype
        assert np.array_equal(f.labels, p.labels) and f.labels.dtype == p.labels.dtype


def test_prepared_batches_are_bit_identical_to_the_tf_data_path(clickme_dir, cache):
    plain = get_dataset(str(clickme_dir), prepared=False)
    fast = get_dataset(str(clickme_dir))
    reference = collect(plain.batches(7))
    assert units(cache) == []  # prepared=False neither reads nor writes
    first = collect(fast.batches(7))  # tf.data, writing the copy on the way
    assert all(b.human_ranks is None for b in first)
    assert len(units(cache)) == len(fast.files()) and leftovers(cache) == []
    again = collect(fast.batches(7))  # from the copy
    assert all(b.human_ranks is not None for b in again)
    assert_same(first, reference)
    assert_same(again, reference)
    # the stored ranks are rank_maps of the same maps
    for b in again:
        ranked = rank_maps(b.heatmaps)
        assert np.array_equal(b.human_ranks.ranks, ranked.ranks) and np.array_equal(b.human_ranks.ss, ranked.ss)
        assert np.array_equal(b.human_ranks.undefined, ranked.undefined)
    # windows (resume), shard subsets (one scheduler task) and other batch sizes agree too
    files = fast.files()
    for kw in ({"start": 5, "limit": 11}, {"start": 9}, {"limit": 3}, {"files": files[1:]}, {"files": files[2:], "limit": 4}):
        assert_same(collect(fast.batches(4, **kw)), collect(plain.batches(4, **kw)))
    assert_same(collect(fast.batches(25)), collect(plain.batches(25)))


def test_partial_and_interrupted_passes_write_nothing(clickme_dir, cache):
    ds = get_dataset(str(clickme_dir))
    collect(ds.batches(4, limit=5))  # part of the first shard only
    collect(ds.batches(4, start=3))  # the first shard is not read whole: only the others are written
    assert len(units(cache)) == len(ds.files()) - 1
    it = ds.batches(2)
    next(it)
    it.close()  # a consumer that stops early leaves no temporary folder behind
    assert leftovers(cache) == []
    assert ds.prepared_status()["prepared"] == len(ds.files()) - 1


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete"])
def test_a_damaged_copy_is_detected_and_rebuilt(clickme_dir, cache, damage, caplog):
    plain = get_dataset(str(clickme_dir), prepared=False)
    ds = get_dataset(str(clickme_dir))
    collect(ds.batches(8))
    victim = units(cache)[0]
    path = victim / ("images.npy" if damage != "delete" else "ranks.npy")
    if damage == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size - 4096)
    elif damage == "edit":  # same size, one value changed
        with open(path, "r+b") as fh:
            fh.seek(path.stat().st_size // 2)
            fh.write(b"\x00\x00\x80\x7f")
    else:
        path.unlink()
    assert ds.prepared_status()["prepared"] == len(ds.files()) - 1  # found, and removed
    assert "damaged" in caplog.text or "incomplete" in caplog.text
    assert not victim.exists()
    first = collect(ds.batches(8))  # the tf.data path again, rewriting the removed unit
    assert ds.prepared_status()["prepared"] == len(ds.files())
    assert_same(first, collect(plain.batches(8)))
    assert_same(collect(ds.batches(8)), collect(plain.batches(8)))


def test_a_touched_but_unchanged_copy_is_kept(clickme_dir, cache):
    ds = get_dataset(str(clickme_dir))
    collect(ds.batches(8))
    victim = units(cache)[0]
    os.utime(victim / "heatmaps.npy", ns=(10**18, 10**18))  # new mtime, same bytes: sha256 checked, kept
    assert ds.prepared_status()["prepared"] == len(ds.files())
    assert victim.exists()


def test_a_changed_source_shard_is_prepared_anew(clickme_dir, cache, tmp_path):
    """The key is the shard's sha256: a rewritten shard (same name) gets a new unit, and the old
    unit, still on disk, is never read for it."""
    import tensorflow as tf

    from benchmark.datasets.synthetic import write_records

    folder = tmp_path / "shards"
    shutil.copytree(clickme_dir, folder)
    old = collect(get_dataset(str(folder)).batches(8))
    before = set(units(cache))
    records = list(tf.data.TFRecordDataset(str(folder / "val-2.tfrecords")).as_numpy_iterator())
    write_records(folder / "val-2.tfrecords", records[::-1])  # same records, another order
    changed = get_dataset(str(folder))
    plain = get_dataset(str(folder), prepared=False)
    assert_same(collect(changed.batches(8)), collect(plain.batches(8)))
    assert len(set(units(cache)) - before) == 1 and before <= set(units(cache))
    again = collect(changed.batches(8))
    assert all(b.human_ranks is not None for b in again)
    assert_same(again, collect(plain.batches(8)))
    # the last image is now the old first record of val-2, not the old last one
    old_val2 = np.concatenate([b.heatmaps for b in old])[-8:]
    assert np.array_equal(again[-1].heatmaps[-1], old_val2[0])
    assert not np.array_equal(again[-1].heatmaps[-1], old[-1].heatmaps[-1])


def test_switched_off_by_the_environment_or_the_size_cap(clickme_dir, cache, monkeypatch):
    monkeypatch.setenv(prepared.PREPARED_ENV, "0")
    ds = get_dataset(str(clickme_dir))
    collect(ds.batches(8))
    assert units(cache) == [] and ds.prepared_status()["enabled"] is False
    with pytest.raises(InvalidInputError, match="switched off"):
        ds.prepare()
    monkeypatch.setenv(prepared.PREPARED_ENV, "maybe")
    with pytest.raises(InvalidInputError, match="ALIGNBENCH_PREPARED='maybe'"):
        collect(ds.batches(8))
    monkeypatch.setenv(prepared.PREPARED_ENV, "1")
    monkeypatch.setenv(prepared.MAX_GB_ENV, "0.001")  # 1 MB: the 25 images need 25 MB
    collect(ds.batches(8))
    assert units(cache) == []
    monkeypatch.delenv(prepared.MAX_GB_ENV)
    assert get_dataset(str(clickme_dir), prepared=False).prepared is False
    status = ds.prepare()
    assert status["prepared"] == status["units"] == len(ds.files())


def test_concurrent_writers_of_one_unit(clickme_dir, cache):
    """Two passes writing the same shard at once: one rename wins, the other is discarded."""
    a, b = get_dataset(str(clickme_dir)), get_dataset(str(clickme_dir))
    ia, ib = a.batches(5), b.batches(5)
    for x, y in zip(ia, ib):  # interleaved: both hold writers for every shard
        pass
    assert len(units(cache)) == len(a.files()) and leftovers(cache) == []
    assert_same(collect(a.batches(5)), collect(get_dataset(str(clickme_dir), prepared=False).batches(5)))


def test_clicktionary_release_is_prepared_too(tmp_path, cache):
    release = ct.write_synthetic_release(tmp_path / "release", 6, n_participants=2, seed=3)
    plain = ct.ClicktionaryDataset(release, prepared=False)
    ds = ct.ClicktionaryDataset(release)
    reference = collect(plain.batches(4))
    assert_same(collect(ds.batches(4)), reference)
    assert ds.prepared_status()["prepared"] == 1
    again = collect(ds.batches(4))
    assert all(b.human_ranks is not None for b in again)
    assert_same(again, reference)
    assert_same(collect(ds.batches(3, start=2, limit=3)), collect(plain.batches(3, start=2, limit=3)))
    # a changed map file changes the release fingerprint, hence the key
    (release / "maps" / "ct0001.png").write_bytes((release / "maps" / "ct0002.png").read_bytes())
    changed = ct.ClicktionaryDataset(release)
    assert changed.prepared_status()["prepared"] == 0
    assert_same(collect(changed.batches(4)), collect(ct.ClicktionaryDataset(release, prepared=False).batches(4)))


def test_prefetching_reader_stops_and_reports_errors(clickme_dir, cache):
    ds = get_dataset(str(clickme_dir))
    ds.prepare()
    segs = [prepared.Segment(u, 0, len(u), [f"{p.stem}:{i}" for i in u.index])
            for p, u in zip(ds.files(), ds.prepared_units())]
    serial = collect(prepared.read_batches(segs, 6, prefetch=0))
    threaded = collect(prepared.read_batches(segs, 6, prefetch=3))
    assert_same(threaded, serial)
    assert [len(b) for b in serial] == [6, 6, 6, 6, 1]  # batches span units; tail kept
    broken = [prepared.Segment(segs[0].unit, 0, segs[0].hi + 5, segs[0].ids)]  # rows beyond the unit
    with pytest.raises(ValueError):
        collect(prepared.read_batches(broken, 4, prefetch=2))


def test_a_write_error_abandons_the_copy_not_the_pass(clickme_dir, cache, monkeypatch, caplog):
    def disk_full(path, *a, **k):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(prepared, "sha256_file", disk_full)  # fails while committing each unit
    ds = get_dataset(str(clickme_dir))
    got = collect(ds.batches(8))
    assert_same(got, collect(get_dataset(str(clickme_dir), prepared=False).batches(8)))
    assert units(cache) == [] and leftovers(cache) == []
    assert "No space left on device" in caplog.text
