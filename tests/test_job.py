"""The one job (benchmark.job): record identity, reuse, conflicts, and which errors are a model's."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from benchmark import job, metrics, records, runner
from benchmark.tasks.maps import MapsTask
from tests.runner_support.fakes import FakeDataset, fake_loader


def _config(tmp_path, **kw):
    return runner.RunConfig(dataset="fake-set", models=["good-model"], results_dir=tmp_path, batch_size=6,
                            device="cpu", progress=False, **kw)


def test_a_record_carries_its_identity_and_is_reused_only_when_all_of_it_matches(tmp_path):
    ds = FakeDataset()
    first = runner.run(_config(tmp_path), task=MapsTask(ds), loader=fake_loader()).outcomes[0]
    ident = first.record["identity"]
    assert ident["task"] == "maps" and ident["revision"] == MapsTask.revision
    assert ident["dataset_fingerprint"] == ds.fingerprint() and ident["precision"] == "float32"
    again = runner.run(_config(tmp_path), task=MapsTask(ds), loader=fake_loader()).outcomes[0]
    assert again.status == "skipped"
    # a stale identity (another scoring revision, e.g. after a change of the metrics) is recomputed
    path = records.record_path(tmp_path, ds.name, "good-model")
    rec = json.loads(path.read_text())
    rec["identity"]["revision"] = "maps/0"
    path.write_text(json.dumps(rec))
    assert runner.run(_config(tmp_path), task=MapsTask(ds), loader=fake_loader()).outcomes[0].status == "ok"


def test_another_precision_is_another_record(tmp_path):
    ds = FakeDataset()
    runner.run(_config(tmp_path), task=MapsTask(ds), loader=fake_loader())
    bf16 = runner.run(_config(tmp_path, precision="bfloat16"), task=MapsTask(ds), loader=fake_loader()).outcomes[0]
    assert bf16.status == "ok" and bf16.model == "good-model+bf16" and bf16.record["precision"] == "bfloat16"
    assert records.record_path(tmp_path, ds.name, "good-model").is_file()


def test_a_schema_1_record_is_read_but_not_reused(tmp_path):
    ds = FakeDataset()
    runner.run(_config(tmp_path), task=MapsTask(ds), loader=fake_loader())
    path = records.record_path(tmp_path, ds.name, "good-model")
    golden = records.Path(__file__).parent / "golden" / "v1" / "epyc-avx512"
    v1 = json.loads((golden / "maps" / "tv_mnasnet0_5+random.json").read_text())
    v1.update(model="good-model", dataset=ds.name, dataset_fingerprint=ds.fingerprint())
    path.write_text(json.dumps(v1))
    assert records.read_record(path)["normalized"] == pytest.approx(v1["alignment"])  # plots, leaderboard read it
    redo = runner.run(_config(tmp_path), task=MapsTask(ds), loader=fake_loader()).outcomes[0]
    assert redo.status == "ok"  # no identity to compare: recomputed, never trusted
    assert json.loads(path.read_text())["schema"] == records.SCHEMA


def _export(folder, seed: int, lam: float):
    """A small export folder: its id names the recipe (``lam``), its weights come from ``seed``
    (as two runs of one recipe on a GPU give other weights)."""
    torch = pytest.importorskip("torch")
    from model_zoo.harmonization.export import export_model
    from model_zoo.harmonization.models import Architecture
    from model_zoo.preprocessing import Preprocess

    torch.manual_seed(seed)
    import timm

    model = timm.create_model("test_resnet", num_classes=1000)
    arch = Architecture("test_resnet-harmonized", "test_resnet (harmonized)", "cnn", "torch", "timm", "test_resnet",
                        preprocess=Preprocess(input_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    return export_model(model, folder, arch, training={"lambda_harmonization": lam})


@pytest.mark.torch
def test_a_retrained_model_never_shows_the_old_models_scores(tmp_path, clickme_dir):
    """Issue 19: train at one harmonizer weight, score, train again at another, score: two records."""
    first, second = _export(tmp_path / "a", 0, 1.0), _export(tmp_path / "b", 1, 5.0)
    cfg = runner.RunConfig(dataset=str(clickme_dir), models=[str(first), str(second)], results_dir=tmp_path / "r",
                           batch_size=8, device="cpu", limit=4, progress=False)
    outcomes = runner.run(cfg).outcomes
    assert [o.status for o in outcomes] == ["ok", "ok"]
    a, b = (o.record for o in outcomes)
    assert a["model"] != b["model"] and a["weights_sha256"] != b["weights_sha256"]
    assert a["spearman_mean"] != b["spearman_mean"]


@pytest.mark.torch
def test_another_model_under_the_same_id_is_refused_not_overwritten(tmp_path, clickme_dir):
    first, second = _export(tmp_path / "a", 0, 1.0), _export(tmp_path / "b", 1, 1.0)
    doc = json.loads((second / "alignbench_model.json").read_text())
    assert doc["id"] == json.loads((first / "alignbench_model.json").read_text())["id"]  # same recipe, same id
    cfg = runner.RunConfig(dataset=str(clickme_dir), models=[str(first)], results_dir=tmp_path / "r", batch_size=8,
                           device="cpu", limit=4, progress=False)
    kept = runner.run(cfg).outcomes[0].record
    clash = runner.run(dataclasses.replace(cfg, models=[str(second)])).outcomes[0]
    assert clash.status == "conflict" and "another model with the same id" in clash.error and "--force" in clash.error
    path = records.record_path(tmp_path / "r", kept["dataset"], kept["model"])
    assert records.read_record(path)["weights_sha256"] == kept["weights_sha256"]  # not overwritten
    forced = runner.run(dataclasses.replace(cfg, models=[str(second)], force=True)).outcomes[0]
    assert forced.status == "ok" and forced.record["weights_sha256"] == doc["weights_sha256"]


def test_a_model_failure_is_recorded_but_a_bug_in_alignbench_stops_the_run(tmp_path, monkeypatch):
    ds = FakeDataset()
    cfg = dataclasses.replace(_config(tmp_path), models=["missing-weights", "nan-model", "good-model"])
    outcomes = runner.run(cfg, task=MapsTask(ds), loader=fake_loader()).outcomes
    assert [o.status for o in outcomes] == ["failed", "failed", "ok"]
    assert "not in the cache" in outcomes[0].record["failure"] and "NaN" in outcomes[1].record["failure"]

    def broken_metric(*args, **kwargs):
        raise ZeroDivisionError("a bug in the scoring code")

    monkeypatch.setattr(metrics, "dice", broken_metric)
    with pytest.raises(ZeroDivisionError, match="a bug in the scoring code"):
        runner.run(dataclasses.replace(cfg, models=["good-model"], force=True), task=MapsTask(ds),
                   loader=fake_loader())


def test_a_failing_model_computation_is_the_models_failure(tmp_path):
    class Exploding:
        spec = None
        framework = "torch"

        def predict_and_saliency(self, images, labels):
            raise RuntimeError("CUDA error: device-side assert triggered")

    out = runner.run(_config(tmp_path), task=MapsTask(FakeDataset()), loader=lambda *a, **k: Exploding()).outcomes[0]
    assert out.status == "failed" and out.error == "RuntimeError: CUDA error: device-side assert triggered"


def test_model_refs_name_records_from_what_was_asked():
    assert job.ModelRef.resolve("tv_resnet18", "random").record_id == "tv_resnet18+random"
    ref = job.ModelRef.resolve("tv_resnet18")
    assert ref.record_id == "tv_resnet18" and ref.weights == "pretrained" and ref.preprocess["input_size"] == 224
    assert job.ModelRef.resolve("tv_resnet18", "random", tags=["bf16"]).record_id == "tv_resnet18+random+bf16"


def test_weights_files_are_named_by_their_digest(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not really weights, but a file with a digest")
    ref = job.ModelRef.resolve("tv_resnet18", str(weights))
    assert ref.weights == f"file:{records.sha256_file(weights)}" and ref.record_id.startswith("tv_resnet18+custom-")
    assert ref.load_weights == str(weights)
    with pytest.raises(Exception, match="existing weights file"):
        job.ModelRef.resolve("tv_resnet18", str(tmp_path / "missing.safetensors"))


def test_partial_rows_survive_only_under_their_identity(tmp_path):
    from benchmark.tasks import Chunk

    cols = ("a", "b")
    rows = job.PartialRows(tmp_path / "p", {"k": 1}, cols)
    rows.save("rows-000000000", Chunk({"a": np.arange(3), "b": np.ones(3)}, {"note": "x"}))
    again = job.PartialRows(tmp_path / "p", {"k": 1}, cols).chunks()
    assert list(again) == ["rows-000000000"] and again["rows-000000000"].extras == {"note": "x"}
    assert job.rows_prefix(again) == (3, ["rows-000000000"])
    assert job.PartialRows(tmp_path / "p", {"k": 2}, cols).chunks() == {}
