"""`alignbench data generate --kind K OUT` writes each kind of dataset the suite reads, marked
synthetic, and `alignbench data info` / `get_dataset(OUT)` read it back as that kind."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")


@pytest.mark.parametrize("kind,out,task,images", [
    ("clickme", "shards", "maps", 12),
    ("clicktionary", "release", "maps", 6),
    ("psychophysics", "stimuli", "psychophysics", 6),
    ("neural", "rec.npz", "neural", 5),
])
def test_each_kind_is_generated_synthetic_and_read_back(kind, out, task, images, tmp_path, capsys):
    from alignbench.cli import main
    from benchmark.datasets import get_dataset

    target = tmp_path / out
    assert main(["data", "generate", str(target), "--kind", kind, "--images", str(images), "--participants", "3",
                 "--shards", "1"]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and f"alignbench run --dataset {target}" in printed
    ds = get_dataset(str(target))
    assert ds.task == task and ds.synthetic is True
    assert main(["data", "info", str(target), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["synthetic"] is True


def test_neural_needs_an_npz_path(tmp_path, capsys):
    from alignbench.cli import main

    assert main(["data", "generate", str(tmp_path / "folder"), "--kind", "neural"]) == 2
    assert "does not end in .npz" in capsys.readouterr().err
