"""Every piece of advice a missing-data error prints is a command that works: the test takes the
command out of the message and runs it."""
from __future__ import annotations

import re

import pytest

from tests.http_support import LoopbackServer

from model_zoo.errors import DataUnavailableError

pytest.importorskip("tensorflow")


def _commands(message: str) -> list[list[str]]:
    return [c.split()[1:] for c in re.findall(r"`(alignbench [^`]+)`", message)]


def test_missing_clickme_shards_advise_commands_that_work(tmp_path, monkeypatch):
    from alignbench.cli import build_parser, main
    from benchmark.datasets import get_dataset
    from benchmark.datasets.download import load_sources
    from benchmark.datasets.synthetic import write_clickme_shards

    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataUnavailableError) as info:
        get_dataset("clickme-val", download=False).files()
    commands = _commands(str(info.value))
    assert [c[:3] for c in commands] == [["data", "download", "clickme-val"], ["run", "--dataset", "FOLDER"]], commands

    # the mirror command, with a loopback mirror in the official layout
    n = len(load_sources()["splits"]["val"])
    shards = write_clickme_shards(tmp_path / "mirror" / "val", n, n_shards=n, n_participants=2, split="val")
    files = {f"/val/{p.name}": p.read_bytes() for p in shards}
    with LoopbackServer(files) as server:
        argv = [server.url if a == "URL" else a for a in commands[0]]
        assert main(argv) == 0
    cached = get_dataset("clickme-val", download=False)
    assert all(str(tmp_path / "cache") in str(p) for p in cached.files()) and cached.num_images() > 0

    # the same command with a local folder as the mirror copies it into the cache like a download
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache2"))
    assert main([str(tmp_path / "mirror") if a == "URL" else a for a in commands[0]]) == 0
    assert all(str(tmp_path / "cache2") in str(p) for p in get_dataset("clickme-val", download=False).files())

    # the local-folder command parses as printed, with the folder put in
    args = build_parser().parse_args([str(tmp_path / "mirror" / "val") if a == "FOLDER" else a
                                      for a in commands[1] if a != "..."] + ["--model", "tv_resnet18"])
    assert args.dataset.endswith("val") and args.handler is not None


def test_missing_clicktionary_advises_a_command_that_works(tmp_path, monkeypatch):
    from alignbench.cli import main
    from benchmark.datasets import clicktionary as ct
    from benchmark.datasets import get_dataset

    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(ct.URL_ENV, raising=False)
    with pytest.raises(DataUnavailableError) as info:
        get_dataset("clicktionary").num_images()
    commands = _commands(str(info.value))
    assert commands and commands[0][:3] == ["data", "download", "clicktionary"], commands
    release = ct.write_synthetic_release(tmp_path / "release", 6, n_participants=3, seed=2)
    argv = [str(release) if a in ("URL|FOLDER", "FOLDER") else a for a in commands[0]]
    assert main(argv) == 0
    cached = get_dataset("clicktionary", download=False)  # found later without --mirror
    assert cached.num_images() == 6 and cached.fingerprint() == get_dataset(str(release)).fingerprint()
