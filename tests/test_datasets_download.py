"""Downloads against a loopback HTTP server serving files the tests wrote (never the internet)."""
from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path

import pytest

from benchmark.datasets.download import ShardSource, download_file, fetch_shards
from model_zoo.errors import DataUnavailableError, InvalidInputError

from tests.http_support import LoopbackServer as Server

pytestmark = pytest.mark.network




BLOB = bytes(range(256)) * 4000  # ~1 MB, not a shard: download.py does not look inside


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_with_size_and_sha(tmp_path):
    with Server({"/val/a.bin": BLOB}) as srv:
        out = download_file(srv.url + "/val/a.bin", tmp_path / "a.bin", size=len(BLOB), sha256=sha(BLOB),
                            progress=False)
    assert out.read_bytes() == BLOB and not (tmp_path / "a.bin.part").exists()


def test_interrupted_download_resumes_on_next_call(tmp_path):
    dest = tmp_path / "a.bin"
    with Server({"/a.bin": BLOB}) as srv:
        srv.drop_first = 1
        with pytest.raises(DataUnavailableError, match=r"interrupted.*run the same command again"):
            download_file(srv.url + "/a.bin", dest, retries=0, progress=False)
        part = tmp_path / "a.bin.part"
        assert not dest.exists() and 0 < part.stat().st_size < len(BLOB)
        half = part.stat().st_size
        download_file(srv.url + "/a.bin", dest, sha256=sha(BLOB), retries=0, progress=False)
    assert sha(dest.read_bytes()) == sha(BLOB)
    assert srv.requests == [("/a.bin", None), ("/a.bin", f"bytes={half}-")]


def test_retries_resume_within_one_call(tmp_path):
    with Server({"/a.bin": BLOB}) as srv:
        srv.drop_first = 2
        download_file(srv.url + "/a.bin", tmp_path / "a.bin", retries=2, progress=False)
    assert (tmp_path / "a.bin").read_bytes() == BLOB
    assert [r is not None for _, r in srv.requests] == [False, True, True]


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(BLOB[:1000])
    with Server({"/a.bin": BLOB}) as srv:
        srv.ignore_range = True
        download_file(srv.url + "/a.bin", tmp_path / "a.bin", progress=False)
    assert (tmp_path / "a.bin").read_bytes() == BLOB


def test_size_mismatch_is_refused(tmp_path):
    with Server({"/a.bin": BLOB}) as srv:
        with pytest.raises(InvalidInputError, match=f"{len(BLOB)} bytes.*{len(BLOB) + 10}"):
            download_file(srv.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB) + 10, progress=False)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_sha_mismatch_is_refused(tmp_path):
    with Server({"/a.bin": BLOB}) as srv:
        with pytest.raises(InvalidInputError, match="sha256"):
            download_file(srv.url + "/a.bin", tmp_path / "a.bin", sha256="0" * 64, progress=False)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_http_404_names_the_url(tmp_path):
    shards = [ShardSource("val", "val-0.tfrecords")]
    with Server({}) as srv:
        with pytest.raises(DataUnavailableError, match=r"val/val-0\.tfrecords: HTTP 404"):
            fetch_shards(shards, mirror=srv.url, dest_dir=tmp_path, progress=False)


def test_offline_gives_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    shards = [ShardSource("val", f"val-{i}.tfrecords") for i in range(17)]
    with Server({}) as srv:
        with pytest.raises(DataUnavailableError) as err:
            fetch_shards(shards, mirror=srv.url, dest_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and srv.url + "/val/" in msg and "(17 files)" in msg and "offline" in msg
    assert srv.requests == []


def test_hf_offline_and_connection_refused(tmp_path, monkeypatch):
    shards = [ShardSource("val", "val-0.tfrecords")]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="offline"):
        fetch_shards(shards, mirror="http://127.0.0.1:9", dest_dir=tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataUnavailableError, match=rf"no connection.*put the files in {re.escape(str(tmp_path))}"):
        fetch_shards(shards, mirror=f"http://127.0.0.1:{port}", dest_dir=tmp_path, retries=0)


def test_local_folder_mirror_is_used_in_place(tmp_path):
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "val-0.tfrecords").write_bytes(b"x" * 10)
    shards = [ShardSource("val", "val-0.tfrecords", size=10)]
    assert fetch_shards(shards, mirror=str(tmp_path)) == [tmp_path / "val" / "val-0.tfrecords"]
    with pytest.raises(DataUnavailableError, match="val-1.tfrecords"):
        fetch_shards(shards + [ShardSource("val", "val-1.tfrecords")], mirror=str(tmp_path))
    with pytest.raises(InvalidInputError, match="sources.json lists 11"):
        fetch_shards([ShardSource("val", "val-0.tfrecords", size=11)], mirror=str(tmp_path))


@pytest.mark.tf
def test_named_dataset_downloads_into_cache(clickme_dir, tmp_path, monkeypatch):
    """clickme-val through a mirror URL: the paper's 17 shards land in the cache; -all adds val-17."""
    from benchmark.datasets import get_dataset
    from model_zoo.fileio import cache_dir

    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    shard = (clickme_dir / "val-2.tfrecords").read_bytes()  # 8 records; identical shards share one index
    with Server({f"/val/val-{i}.tfrecords": shard for i in range(18)}) as srv:
        ds = get_dataset("clickme-val", mirror=srv.url)
        files = ds.files()
        assert [f.name for f in files] == [f"val-{i}.tfrecords" for i in range(17)]
        assert all(f.parent == cache_dir("clickme", "val") == tmp_path / "cache" / "clickme" / "val" for f in files)
        assert ds.num_images() == 17 * 8
        n_requests = len(srv.requests)
        assert get_dataset("clickme-val", mirror=srv.url).files() == files  # cached: no new request
        assert len(srv.requests) == n_requests
        assert len(get_dataset("clickme-val-all", mirror=srv.url).files()) == 18
    assert get_dataset("clickme-val", download=False).files() == files
    b = next(get_dataset("clickme-val", download=False).batches(4, start=8))
    assert b.ids == ["val-1:000000", "val-1:000001", "val-1:000002", "val-1:000003"]


def test_sources_json_lists_the_official_shards():
    from benchmark.datasets.download import load_sources, split_shards

    src = load_sources()
    assert src["base"] == "https://storage.googleapis.com/serrelab/prj_harmonization/dataset/click-me"
    val, train = split_shards("val"), split_shards("train")
    assert [s.file for s in val] == [f"val-{i}.tfrecords" for i in range(17)]
    assert [s.file for s in train] == [f"train-{i}.tfrecords" for i in range(318)]
    extra = split_shards("val", include_outside_paper_loader=True)[-1]
    assert extra.file == "val-17.tfrecords" and extra.outside_paper_loader
    assert split_shards("train", include_outside_paper_loader=True)[-1].file == "train-318.tfrecords"
    assert Path(src["base"]).name == "click-me"


def test_default_source_is_the_official_location_and_cache_env(tmp_path, monkeypatch):
    """No mirror: the official URL, files into $ALIGNBENCH_CACHE/clickme/<split>; offline says so once."""
    from benchmark.datasets.download import load_sources, split_shards

    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as err:
        fetch_shards(split_shards("val"))
    msg = str(err.value)
    folder = tmp_path / "cache" / "clickme" / "val"
    assert f"put the files in {folder}" in msg and load_sources()["base"] + "/val/" in msg
    assert "(17 files)" in msg and len(msg.splitlines()) == 1
    folder.mkdir(parents=True)
    for s in split_shards("val"):  # files put there by hand are used as they are, offline
        (folder / s.file).write_bytes(b"shard")
    assert fetch_shards(split_shards("val")) == [folder / s.file for s in split_shards("val")]
