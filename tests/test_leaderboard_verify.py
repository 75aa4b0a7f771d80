"""``alignbench leaderboard verify``: re-scoring a seeded subset from the submitted model catches tampering."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from alignbench.cli import main
from leaderboard.validate import validate_bundles
from leaderboard.verify import select_rows, verify_bundle
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from tests.leaderboard_support import copy_bundle, make_bundle

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def source_bundle(tmp_path_factory, clickme_dataset) -> Path:
    res = make_bundle(tmp_path_factory.mktemp("verify-src"), clickme_dataset)
    assert res.ok, res.instructions
    return res.bundle


@pytest.fixture(scope="module")
def adapter(source_bundle):
    """The submitted model rebuilt once from the bundle (as verify does), reused to keep tests fast."""
    import tempfile

    from leaderboard.sandbox import Limits
    from leaderboard.verify import bundle_model

    model, _ = bundle_model(source_bundle, None, device="cpu", precision="float32", limits=Limits(),
                            export_dir=Path(tempfile.mkdtemp()))
    return model


@pytest.fixture
def bundle(tmp_path, source_bundle) -> Path:
    return copy_bundle(source_bundle, tmp_path)


def _verify(bundle: Path, dataset, adapter=None, **kw):
    kw.setdefault("n_images", 6)
    kw.setdefault("seed", 3)
    loader = (lambda path: adapter) if adapter is not None else None
    return verify_bundle(bundle, datasets={dataset.name: dataset}, device="cpu", loader=loader, **kw)


def test_the_subset_is_seeded_and_without_repeats():
    a, b = select_rows(25, 6, seed=3), select_rows(25, 6, seed=3)
    assert list(a) == list(b) and len(set(a.tolist())) == 6
    assert list(select_rows(25, 6, seed=4)) != list(a)
    assert list(select_rows(25, 100, seed=0)) == list(range(25))
    with pytest.raises(InvalidInputError, match="--n-images"):
        select_rows(25, 0, seed=0)


def test_an_honest_bundle_verifies(bundle, clickme_dataset):
    [report] = _verify(bundle, clickme_dataset)
    assert report.ok, report.format()
    scores = list(csv.DictReader((bundle / clickme_dataset.name / "tiny-net.scores.csv").open()))
    assert report.checked == [scores[i]["image_id"] for i in select_rows(25, 6, 3)]
    assert "OK" in report.format()


def _tamper(bundle: Path, dataset, row: int, delta: float = 0.2) -> str:
    """Change one image's Spearman and re-derive everything validation checks, so only a re-score can tell."""
    path = bundle / dataset.name / "tiny-net.scores.csv"
    rows = list(csv.DictReader(path.open()))
    old = float(rows[row]["spearman"])
    rows[row]["spearman"] = repr(old + delta if old + delta <= 1 else old - delta)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    import numpy as np

    from benchmark import metrics

    rec_path = bundle / dataset.name / "tiny-net.json"
    rec = json.loads(rec_path.read_text())
    s = metrics.summarize(np.array([float(r["spearman"]) for r in rows]))
    rec.update(scores_sha256=sha256_file(path), spearman_mean=s.mean, spearman_sd=s.sd,
               score=s.mean, error=s.sd, normalized=s.mean / rec["ceiling"], normalized_error=s.sd / rec["ceiling"])
    rec_path.write_text(json.dumps(rec))
    return rows[row]["image_id"]


def test_a_tampered_score_is_caught_and_the_image_named(bundle, clickme_dataset, clickme_dir, adapter, capsys):
    row = int(select_rows(25, 6, seed=3)[2])
    image_id = _tamper(bundle, clickme_dataset, row)
    # validation alone cannot see it: the file, its hash and every aggregate agree
    assert validate_bundles([bundle], results_dir=bundle.parent.parent, catalog=[],
                            datasets={clickme_dataset.name: clickme_dataset}).ok
    [report] = _verify(bundle, clickme_dataset, adapter)
    assert not report.ok and report.bad_images == [image_id]
    assert {m.field for m in report.mismatches} == {"spearman"}
    assert f"image {image_id}" in report.format() and "1 of 6 images do not match" in report.format()
    # the CLI says the same and exits 1
    rc = main(["leaderboard", "verify", str(bundle), "--n", "6", "--seed", "3", "--tolerance", "1e-4",
               "--dataset-path", f"{clickme_dataset.name}={clickme_dir}", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 1 and image_id in out and "MISMATCH" in out


def test_the_tolerance_decides(bundle, clickme_dataset, adapter):
    row = int(select_rows(25, 3, seed=5)[0])
    _tamper(bundle, clickme_dataset, row, delta=1e-3)
    assert not _verify(bundle, clickme_dataset, adapter, n_images=3, seed=5, tolerance=1e-4)[0].ok
    assert _verify(bundle, clickme_dataset, adapter, n_images=3, seed=5, tolerance=1e-2)[0].ok


def test_other_weights_than_claimed_are_reported(bundle, clickme_dataset, adapter):
    sub = bundle / "submission.json"
    doc = json.loads(sub.read_text())
    doc["model"]["weights_sha256"] = "ab" * 32
    sub.write_text(json.dumps(doc))
    [report] = _verify(bundle, clickme_dataset, adapter, n_images=2)
    assert [m.field for m in report.bundle_mismatches] == ["weights_sha256"] and report.mismatches == []
    assert not report.ok and "not the submitted weights" in report.format()
    assert "all 2 re-scored images match, but the bundle as a whole does not" in report.format()


def test_a_weights_bundle_without_its_file_asks_for_it(bundle, clickme_dataset):
    sub = bundle / "submission.json"
    doc = json.loads(sub.read_text())
    doc["model"]["source"] = {"kind": "weights", "architecture": "test_resnet", "file": "w.safetensors",
                              "file_sha256": "cd" * 32}
    sub.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match="pass --model PATH"):
        _verify(bundle, clickme_dataset)


def test_data_with_another_fingerprint_is_refused(bundle, clickme_dataset, adapter):
    rec_path = bundle / clickme_dataset.name / "tiny-net.json"
    rec = json.loads(rec_path.read_text())
    rec["dataset_fingerprint"] = "sha256:" + "1" * 64
    rec_path.write_text(json.dumps(rec))
    with pytest.raises(InvalidInputError, match="fingerprint"):
        _verify(bundle, clickme_dataset, adapter)


def test_nearby_rows_share_one_read_and_far_ones_do_not():
    import numpy as np

    from leaderboard.verify import _runs

    rows = np.array([1, 2, 3, 7, 40, 41])
    assert list(_runs(rows)) == [(1, 3), (7, 1), (40, 2)]
    assert list(_runs(rows, max_gap=4)) == [(1, 7), (40, 2)]
    assert list(_runs(rows, max_gap=100)) == [(1, 41)]
