"""The runner's bookkeeping: records, resume after kill -9, skip, --force, failures, shards."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from alignbench import report
from benchmark import baselines, records, runner
from benchmark.job import PartialRows
from benchmark.tasks import Chunk
from benchmark.tasks.maps import MapsTask
from tests.runner_support.fakes import FakeDataset, fake_loader

REPO = Path(__file__).resolve().parent.parent


def _run(tmp_path, models, dataset=None, loader=None, **kw):
    dataset = dataset or FakeDataset()
    config = runner.RunConfig(dataset=dataset.name, models=models, results_dir=tmp_path, batch_size=6,
                              device="cpu", progress=False, **kw)
    summary = runner.run(config, task=MapsTask(dataset), loader=loader or fake_loader())
    return summary, dataset


def test_record_fields_and_scores_match_an_independent_computation(tmp_path):
    summary, ds = _run(tmp_path, ["good-model"])
    rec = records.read_record(tmp_path / ds.name / "good-model.json")
    for field in ("dataset", "model", "n_images", "n_undefined", "spearman_mean", "score", "score_name", "normalized", "error",
                  "normalized_error", "n",
                  "dice_mean", "iou_mean", "status", "dataset_fingerprint", "weights_sha256", "explainer",
                  "provenance"):
        assert field in rec, field
    assert rec["status"] == "ok" and rec["n_images"] == 20 and rec["n_undefined"] == 0
    expected = [stats.spearmanr(ds.images[i, ..., 0].ravel() / 255.0, ds.heat[i].ravel())[0] for i in range(20)]
    scores = records.read_scores(tmp_path / ds.name / "good-model.scores.csv")
    assert list(scores["image_id"]) == ds.ids
    np.testing.assert_allclose(scores["spearman"], expected, atol=1e-6)
    assert rec["spearman_mean"] == pytest.approx(np.mean(expected), abs=1e-6)
    assert rec["normalized"] == pytest.approx(rec["spearman_mean"] / rec["ceiling"])
    assert rec["score"] == rec["spearman_mean"] and rec["score_name"] == "spearman" and rec["n"] == 20
    assert rec["top1_measured"] == 1.0
    assert rec["scores_sha256"] == records.sha256_file(tmp_path / ds.name / "good-model.scores.csv")
    assert not (tmp_path / ds.name / ".partial" / "good-model").exists()


def test_done_models_are_skipped_and_force_recomputes(tmp_path):
    ds = FakeDataset()
    _run(tmp_path, ["good-model"], dataset=ds)
    served = ds.batches_served
    summary, _ = _run(tmp_path, ["good-model"], dataset=ds)
    assert summary.outcomes[0].status == "skipped" and ds.batches_served == served
    summary, _ = _run(tmp_path, ["good-model"], dataset=ds, force=True)
    assert summary.outcomes[0].status == "ok" and ds.batches_served > served


def test_a_limited_run_does_not_count_as_a_full_one(tmp_path):
    ds = FakeDataset()
    summary, _ = _run(tmp_path, ["good-model"], dataset=ds, limit=7)
    assert summary.outcomes[0].record["n_images"] == 7
    summary, _ = _run(tmp_path, ["good-model"], dataset=ds)
    assert summary.outcomes[0].status == "ok" and summary.outcomes[0].record["n_images"] == 20


def test_failures_are_recorded_and_the_run_goes_on(tmp_path):
    summary, ds = _run(tmp_path, ["missing-weights", "nan-model", "good-model"])
    status = {o.model: o.status for o in summary.outcomes}
    assert status == {"missing-weights": "failed", "nan-model": "failed", "good-model": "ok"}
    rec = json.loads((tmp_path / ds.name / "nan-model.json").read_text())
    assert rec["status"] == "failed" and "NaN" in rec["failure"]
    assert "missing-weights" in report.format_summary(summary)
    assert "2 model(s) failed" in report.format_summary(summary)


def test_shards_split_models_disjointly():
    models = [f"m{i}" for i in range(10)]
    parts = [runner.select_shard(models, (k, 3)) for k in range(3)]
    assert sorted(sum(parts, [])) == models
    with pytest.raises(Exception, match="--shard"):
        runner.parse_shard("3/3")


def test_resume_after_kill_minus_9_loses_and_duplicates_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from benchmark import runner
        from benchmark.tasks.maps import MapsTask
        from tests.runner_support.fakes import FakeDataset, fake_loader
        ds = FakeDataset()
        cfg = runner.RunConfig(dataset=ds.name, models=["good-model"], results_dir=Path({str(tmp_path)!r}),
                               batch_size=6, device="cpu", progress=False)
        runner.run(cfg, task=MapsTask(ds), loader=fake_loader(kill_after_batches=2))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr  # killed mid-run
    partial = tmp_path / "fake-set" / ".partial" / "good-model"
    assert len(list(partial.glob("chunk-*.npz"))) == 2  # two completed batches kept
    assert not (tmp_path / "fake-set" / "good-model.json").exists()
    ds = FakeDataset()
    summary, _ = _run(tmp_path, ["good-model"], dataset=ds)
    assert ds.batches_served == 2  # 20 images, 12 done: resumed at image 12 (batches of 6)
    scores = records.read_scores(tmp_path / "fake-set" / "good-model.scores.csv")
    assert list(scores["image_id"]) == ds.ids  # every image once, in order
    clean, _ = _run(tmp_path / "clean", ["good-model"])
    clean_scores = records.read_scores(tmp_path / "clean" / "fake-set" / "good-model.scores.csv")
    np.testing.assert_array_equal(scores["spearman"], clean_scores["spearman"])


def test_partial_results_with_other_settings_are_discarded(tmp_path):
    ds = FakeDataset()
    folder = tmp_path / ds.name / ".partial" / "good-model"
    columns = MapsTask.columns
    PartialRows(folder, {"model": "good-model", "limit": 5}, columns).save(
        "rows-000000000", Chunk({k: np.zeros(3) for k in columns}))
    summary, _ = _run(tmp_path, ["good-model"], dataset=ds)
    assert summary.outcomes[0].record["n_images"] == 20  # not 3 stale rows + 17


def test_center_bias_baseline_and_ceiling_records(tmp_path):
    ds = FakeDataset(n=30)
    ceiling = baselines.ensure_ceiling(ds, tmp_path)
    assert ceiling["kind"] == "ceiling" and 0 < ceiling["value"] <= 1
    assert "computed" in ceiling["source"]
    base = baselines.ensure_center_bias(ds, tmp_path, batch_size=7)
    # independent check: leave-fold-out mean map vs each map
    folds = baselines.CENTER_BIAS_FOLDS
    idx = np.arange(30) % folds
    rhos = []
    for i in range(30):
        others = ds.heat[idx != idx[i]].mean(axis=0)
        rhos.append(stats.spearmanr(others.ravel(), ds.heat[i].ravel())[0])
    assert base["spearman_mean"] == pytest.approx(np.mean(rhos), abs=1e-5)
    assert base["n_images"] == 30
    # reused, not recomputed, on the next call
    served = ds.batches_served
    baselines.ensure_center_bias(ds, tmp_path, batch_size=7)
    assert ds.batches_served == served


def test_corrupt_and_foreign_records_are_reported_not_fatal(tmp_path):
    _run(tmp_path, ["good-model"])
    (tmp_path / "fake-set" / "broken.json").write_text("{not json")
    (tmp_path / "fake-set" / "foreign.json").write_text(json.dumps({"schema": "brainscore/9"}))
    loaded = records.load_results(tmp_path, "fake-set")
    assert [r["model"] for r in loaded.records] == ["good-model"]
    assert len(loaded.problems) == 2 and any("broken.json" in p for p in loaded.problems)


def test_record_names_cannot_escape_the_results_folder(tmp_path):
    with pytest.raises(Exception, match="not allowed"):
        records.record_path(tmp_path, "fake-set", "../../etc/passwd")
    with pytest.raises(Exception, match="not allowed"):
        records.record_path(tmp_path, "..", "model")
