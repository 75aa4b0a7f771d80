"""``alignbench leaderboard validate``: every kind of bad bundle is caught, each problem with its field."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from alignbench.cli import main
from leaderboard.validate import validate_bundles
from model_zoo.explainers import get_explainer
from model_zoo.fileio import sha256_file
from tests.leaderboard_support import copy_bundle, make_bundle

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def source_bundle(tmp_path_factory, clickme_dataset) -> Path:
    """One honest bundle, made once; tests copy it before changing anything."""
    res = make_bundle(tmp_path_factory.mktemp("validate-src"), clickme_dataset)
    assert res.ok, res.instructions
    return res.bundle


@pytest.fixture
def results(tmp_path, source_bundle) -> Path:
    copy_bundle(source_bundle, tmp_path)
    return tmp_path


def _validate(results: Path, dataset, *paths: Path, **kw):
    return validate_bundles(list(paths) or None, results_dir=results, datasets={dataset.name: dataset},
                            catalog=kw.pop("catalog", ["resnet50", "vgg16"]), **kw)


def _fields(report) -> dict[str, str]:
    return {f"{p.bundle}|{p.field}": p.message for p in report.problems}


def _edit_record(results: Path, dataset, change, sid: str = "tiny-net") -> None:
    path = results / "submissions" / sid / dataset.name / f"{sid}.json"
    rec = json.loads(path.read_text())
    change(rec)
    path.write_text(json.dumps(rec))


def _edit_scores(results: Path, dataset, change, sid: str = "tiny-net", fix_sha: bool = True) -> None:
    path = results / "submissions" / sid / dataset.name / f"{sid}.scores.csv"
    rows = list(csv.DictReader(path.open()))
    change(rows)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if fix_sha:
        _edit_record(results, dataset, lambda r: r.update(scores_sha256=sha256_file(path)), sid)


def test_an_honest_bundle_is_valid(results, clickme_dataset, capsys):
    report = _validate(results, clickme_dataset)
    assert report.ok, report.format()
    assert report.bundles == ["tiny-net"]
    # the CLI, with the local data facts coming from the catalog-free fallback (no dataset by that name)
    assert main(["leaderboard", "validate", str(results / "submissions" / "tiny-net"), "--results", str(results),
                 "--no-local-data"]) == 0
    assert "1 bundle(s) valid" in capsys.readouterr().out


@pytest.mark.parametrize("change, field, words", [
    (lambda r: r.update(spearman_mean=1.7), "spearman_mean", "[-1, 1]"),
    (lambda r: r.update(error=-0.1), "error", "non-negative"),
    (lambda r: r.update(n_undefined=-3), "n_undefined", "[0, n]"),
    (lambda r: r.update(normalized=0.99), "normalized", "score / ceiling"),
    (lambda r: r.pop("dataset_fingerprint"), "dataset_fingerprint", "missing"),
    (lambda r: r.update(schema="alignbench.result/0"), "schema", "expected"),
])
def test_schema_and_value_ranges_name_the_field(results, clickme_dataset, change, field, words):
    _edit_record(results, clickme_dataset, change)
    report = _validate(results, clickme_dataset)
    hits = [p for p in report.problems if p.field.endswith(field)]
    assert hits and words in hits[0].message, report.format()
    assert hits[0].field.startswith(f"{clickme_dataset.name}/tiny-net.json")


def test_the_honest_bundle_carries_the_default_explainer_spec(results, clickme_dataset):
    rec = json.loads((results / "submissions" / "tiny-net" / clickme_dataset.name / "tiny-net.json").read_text())
    assert rec["explainer_spec"] == get_explainer().to_dict()  # what the edits below move away from


@pytest.mark.parametrize("change, words", [
    # another built-in explainer, honestly named
    (lambda r: r.update(explainer_spec=get_explainer("paper-release").to_dict()), "'paper-release'"),
    # another recipe under the default's name: the spec is compared, not the name
    (lambda r: r.update(explainer_spec=dict(get_explainer().to_dict(), method="smoothgrad",
                                            params={"samples": 4})), "not the default under the default's name"),
    (lambda r: r.update(explainer_spec={"name": "saliency", "sharpen": True}), "not an explainer spec"),
    (lambda r: r.update(explainer_spec="saliency"), "not an explainer spec"),
    (lambda r: r.update(explainer_spec={"name": "saliency", "params": [["samples", 4, 1]]}), "'params' must map"),
    # an older record that only describes its explainer
    (lambda r: (r.pop("explainer_spec"), r.update(explainer="grad-cam: grad-cam of logit[label]")), "'grad-cam'"),
])
def test_maps_of_another_explainer_are_refused(results, clickme_dataset, change, words):
    _edit_record(results, clickme_dataset, change)
    report = _validate(results, clickme_dataset)
    hits = [p for p in report.problems if p.field.endswith(" explainer_spec")]
    assert hits and words in hits[0].message and "saliency, the paper's explainer" in hits[0].message, report.format()
    assert hits[0].field.startswith(f"{clickme_dataset.name}/tiny-net.json")


def test_an_older_record_of_the_default_explainer_is_still_valid(results, clickme_dataset):
    # written before explainers were data: no spec, the default's description (unchanged since)
    _edit_record(results, clickme_dataset, lambda r: (r.pop("explainer_spec"),
                                                      r.update(explainer=get_explainer().description)))
    report = _validate(results, clickme_dataset)
    assert report.ok, report.format()


def test_image_count_and_fingerprint_are_checked_against_the_dataset(results, clickme_dataset):
    _edit_scores(results, clickme_dataset, lambda rows: rows.pop())  # one image fewer
    _edit_record(results, clickme_dataset, lambda r: r.update(n_images=24, dataset_fingerprint="sha256:" + "0" * 64))
    fields = _fields(_validate(results, clickme_dataset))
    count = [m for f, m in fields.items() if f.endswith(" n_images")]
    assert any("24 images scored but the dataset has 25" in m for m in count), fields
    assert any(f.endswith("dataset_fingerprint") and "scored on other data" in m for f, m in fields.items()), fields


def test_known_datasets_table_is_used_without_local_data(results, clickme_dataset):
    from dataclasses import replace

    from leaderboard.pins import PinTable, measure_pin

    pin = measure_pin(clickme_dataset, results, command="test")
    report = validate_bundles(None, results_dir=results, use_local_data=False, catalog=[],
                              pins=PinTable({clickme_dataset.name: pin}))
    assert report.ok and report.standing[("tiny-net", clickme_dataset.name)].level == "pinned", report.format()
    assert "pinned, SYNTHETIC data" in report.format()  # the fixture's shards are generated
    wrong = PinTable({clickme_dataset.name: replace(pin, n_images=30)})
    report = validate_bundles(None, results_dir=results, use_local_data=False, catalog=[], pins=wrong)
    msgs = [p.message for p in report.problems if p.field.endswith("n_images")]
    assert msgs and "25 images scored but the dataset has 30 (known_datasets.json)" in msgs[0]


def test_a_bundle_checked_only_against_local_data_is_valid_but_unverified(results, clickme_dataset):
    report = _validate(results, clickme_dataset)
    assert report.ok
    standing = report.standing[("tiny-net", clickme_dataset.name)]
    assert standing.level == "unverified" and "not in known_datasets.json" in standing.reason


def test_edited_per_image_scores_are_caught_by_sha_and_by_recomputed_aggregates(results, clickme_dataset):
    def bump(rows):
        rows[3]["spearman"] = repr(min(1.0, float(rows[3]["spearman"]) + 0.5))

    _edit_scores(results, clickme_dataset, bump, fix_sha=False)
    fields = _fields(_validate(results, clickme_dataset))
    assert any(f.endswith("scores_sha256") and "changed after the run" in m for f, m in fields.items()), fields
    assert any(f.endswith(" spearman_mean") and "per-image scores give" in m for f, m in fields.items()), fields
    assert any(f.endswith(" normalized") and "per-image scores give" in m for f, m in fields.items()), fields


def test_out_of_range_and_inconsistent_rows(results, clickme_dataset):
    def corrupt(rows):
        rows[0]["dice"] = "1.5"
        rows[1]["correct"] = "1" if rows[1]["correct"] == "0" else "0"
        rows[2]["image_id"] = rows[3]["image_id"]

    _edit_scores(results, clickme_dataset, corrupt)
    msgs = "\n".join(str(p) for p in _validate(results, clickme_dataset).problems)
    assert "scores_file dice: 1 value(s) outside [0, 1]" in msgs
    assert "scores_file correct:" in msgs
    assert "appear more than once" in msgs


def test_preview_and_limited_runs_are_refused(results, clickme_dataset):
    _edit_record(results, clickme_dataset, lambda r: r.update(limit=10))
    sub = results / "submissions" / "tiny-net" / "submission.json"
    sub.write_text(json.dumps({**json.loads(sub.read_text()), "preview": True}))
    fields = _fields(_validate(results, clickme_dataset))
    assert "tiny-net|preview" in fields
    assert any(f.endswith(" limit") for f in fields)


def test_bad_metadata_is_listed_field_by_field(results, clickme_dataset):
    sub = results / "submissions" / "tiny-net" / "submission.json"
    doc = json.loads(sub.read_text())
    doc["submitter"]["name"] = ""
    doc["model"]["licence"] = None
    doc["top1"] = {"claimed": 101, "method": None}
    doc["model"]["weights_sha256"] = "not-a-hash"
    sub.write_text(json.dumps(doc))
    fields = _fields(_validate(results, clickme_dataset))
    for field in ("submitter.name", "model.licence", "top1.claimed", "top1.method", "model.weights_sha256"):
        assert f"tiny-net|{field}" in fields, (field, fields)


def test_duplicates_and_id_clashes(results, clickme_dataset, source_bundle):
    copy_bundle(source_bundle, results, "tiny-net-again")  # the same model and scores under another id
    copy_bundle(source_bundle, results, "ResNet50")       # a catalog id, in another case
    report = _validate(results, clickme_dataset)
    fields = _fields(report)
    assert "same weights were already submitted as 'tiny-net'" in fields["tiny-net-again|model.weights_sha256"]
    assert "identical per-image scores" in fields["tiny-net-again|scores_sha256"]
    assert "catalog model" in fields["ResNet50|id"]
    # validating one bundle still compares it with every other bundle of the leaderboard
    one = _validate(results, clickme_dataset, results / "submissions" / "tiny-net")
    assert one.bundles == ["tiny-net"] and any(p.field == "model.weights_sha256" for p in one.problems)


def test_a_catalog_record_with_the_same_id_or_weights_clashes(results, clickme_dataset):
    src = results / "submissions" / "tiny-net" / clickme_dataset.name / "tiny-net.json"
    rec = json.loads(src.read_text())
    rec.update(model="tiny-net")
    (results / clickme_dataset.name).mkdir(exist_ok=True)
    (results / clickme_dataset.name / "tiny-net.json").write_text(json.dumps(rec))
    fields = _fields(_validate(results, clickme_dataset))
    assert "clashes with the catalog record" in fields["tiny-net|id"]
    assert "same weights as catalog model" in fields["tiny-net|model.weights_sha256"]


def test_stray_files_symlinks_and_missing_files(results, clickme_dataset, tmp_path_factory):
    bundle = results / "submissions" / "tiny-net"
    (bundle / "notes.exe").write_text("x")
    outside = tmp_path_factory.mktemp("outside") / "secret.txt"
    outside.write_text("secret")
    (bundle / "model").mkdir(exist_ok=True)
    (bundle / "model" / "plugin.py").symlink_to(outside)
    (bundle / clickme_dataset.name / "tiny-net.scores.csv").unlink()
    msgs = "\n".join(str(p) for p in _validate(results, clickme_dataset).problems)
    assert "notes.exe: unexpected file" in msgs
    assert "symbolic links are not allowed" in msgs
    assert "tiny-net.scores.csv is missing" in msgs


def test_all_problems_are_reported_and_the_cli_exits_1(results, clickme_dataset, capsys):
    _edit_record(results, clickme_dataset, lambda r: r.update(iou_mean=3.0, dice_mean=-1.0))
    assert main(["leaderboard", "validate", "--results", str(results), "--no-local-data"]) == 1
    out = capsys.readouterr().out
    assert "tiny-net: " in out and "iou_mean" in out and "dice_mean" in out
    assert "problem(s) in 1 of 1 bundle(s)" in out


def test_no_bundles_is_a_problem_not_a_success(tmp_path):
    report = validate_bundles(None, results_dir=tmp_path, catalog=[])
    assert not report.ok and "no bundle found" in report.format()


def test_a_bundle_folder_with_an_unsafe_name_is_refused(tmp_path, source_bundle):
    odd = tmp_path / "submissions" / ".hidden;rm -rf"
    shutil.copytree(source_bundle, odd)
    report = validate_bundles([odd], results_dir=tmp_path, catalog=[], use_local_data=False)
    assert any(p.field == "id" and "not allowed as a file name" in p.message for p in report.problems)


def test_thousands_of_stray_files_are_counted_not_listed(results, clickme_dataset):
    from leaderboard.bundle import MAX_FILE_PROBLEMS

    bundle = results / "submissions" / "tiny-net"
    for i in range(MAX_FILE_PROBLEMS + 30):
        (bundle / f"junk-{i}.txt").write_text("x")
    files = [p for p in _validate(results, clickme_dataset).problems if p.field == "files"]
    assert len(files) == MAX_FILE_PROBLEMS + 1 and "30 more unexpected entries not listed" in files[-1].message
