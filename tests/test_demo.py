"""``alignbench demo --fast``: the whole offline pipeline, its expected outcome, its records and its cache."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from model_zoo.errors import InvalidInputError

pytestmark = [pytest.mark.slow, pytest.mark.tf, pytest.mark.torch]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One ``alignbench demo --fast`` through the CLI (the README's first command), then the same
    command again: (results dir, cache dir, printed report, second report)."""
    from alignbench.cli import main

    root = tmp_path_factory.mktemp("demo")
    results, cache = root / "results", root / "cache"
    argv = ["demo", "--fast", "--results", str(results), "--cache", str(cache), "--no-progress"]
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    first = out.getvalue()
    from alignbench.demo import run_demo

    again = run_demo(results, fast=True, cache_dir=cache, progress=False)
    return results, cache, first, again


def test_alignment_outcome_harmonized_follows_the_humans_baseline_reads_the_shortcut(demo_run):
    from alignbench.demo import TARGETS, target_margins

    results, _, _, report = demo_run
    base, harm = report.model(False), report.model(True)
    assert base.model.startswith("demo-cnn-baseline-") and harm.model.startswith("demo-cnn-harmonized-")
    assert json.loads(harm.record.read_text())["base_model"] == base.model  # the figure's arrow
    # objects anywhere in the frame: a centred blob explains little of the human maps ...
    assert report.center_bias is not None and report.center_bias < 0.30, report.center_bias
    # ... the harmonized model 20 points more, the baseline (reading the corner patch) less
    assert harm.alignment >= report.center_bias + 0.20, (harm, report.center_bias)
    assert base.alignment < report.center_bias, (base, report.center_bias)
    margins = target_margins(report)
    assert margins["accuracy_gain"] == pytest.approx(harm.accuracy - base.accuracy)
    assert margins["alignment_over_center_bias"] >= TARGETS["alignment_over_center_bias"]
    # the ceiling is computed from the simulated participants (not ClickMe's published constant)
    assert report.ceiling is not None and 0.3 < report.ceiling < 1.0
    assert "shortcut" in report.text() and "points" in report.text()


def test_accuracy_outcome_harmonized_holds_where_the_baseline_falls(demo_run):
    _, _, _, report = demo_run
    base, harm = report.model(False), report.model(True)
    chance = 1 / report.plan.n_classes
    assert harm.accuracy >= base.accuracy + 0.20, (base, harm)
    assert harm.accuracy > chance + 0.25, harm
    assert report.outcome_holds
    assert report.finding().startswith("Shown: the baseline took the shortcut"), report.finding()


def test_records_are_exactly_what_run_writes(demo_run):
    from benchmark import records
    from alignbench.demo import PLANS

    results, _, _, report = demo_run
    plan = PLANS["fast"]
    assert report.dataset == plan.test_dataset
    folder = results / report.dataset
    for m in report.models:
        rec = records.read_record(folder / f"{m.model}.json")
        assert records.validate_record(rec) == []
        assert rec["status"] == "ok" and rec["n_images"] == plan.n_test
        assert rec["normalized"] == pytest.approx(m.alignment) and rec["top1_measured"] == pytest.approx(m.accuracy)
        assert rec["harmonized"] is m.harmonized
        assert rec["ceiling_source"].startswith("computed")
        scores = records.read_scores(folder / rec["scores_file"])
        assert len(scores["spearman"]) == plan.n_test
        assert np.nanmean(scores["spearman"]) == pytest.approx(rec["spearman_mean"], abs=1e-6)
    kinds = {p.name for p in folder.glob("_*.json")}
    assert {"_ceiling.json", "_baseline-center-bias.json"} <= kinds
    # `alignbench run` on the same dataset and folders finds the records done (same schema, same ids)
    from benchmark import runner

    summary = runner.run(runner.RunConfig(dataset=str(report.test_dir), models=[str(m.folder) for m in report.models], results_dir=results,
                                          device="cpu", download=False, progress=False))
    assert [o.status for o in summary.outcomes] == ["skipped", "skipped"]


def test_report_figure_and_labels(demo_run):
    results, _, printed, report = demo_run
    for word in ("SYNTHETIC", "accuracy", "alignment", "ceiling", "center-bias", "figure:", "site:"):
        assert word in printed, word
    for f in report.figures:
        assert f.is_file() and f.stat().st_size > 1000
    assert [f.name for f in report.figures] == ["demo-accuracy-vs-alignment.png", "demo-accuracy-vs-alignment.svg",
                                                "demo-maps.png"]
    svg = report.figures[1].read_text()
    assert "SYNTHETIC" in svg  # the svg carries the label
    saved = json.loads((results / f"{report.dataset}.demo-report.json").read_text())
    assert saved["synthetic"] is True and saved["outcome_holds"] is report.outcome_holds  # recorded as measured
    if report.site is None:
        assert any("site" in n for n in report.notes)
    else:
        assert report.site.exists()


def test_second_run_reuses_the_cache(demo_run):
    _, _, _, again = demo_run
    assert again.reused == ["data", "models"]
    assert "reused from the cache" in again.text()


def test_exported_models_load_by_path(demo_run):
    import model_zoo

    _, _, _, report = demo_run
    adapter = model_zoo.load(report.model(True).folder)
    images = np.full((2, 224, 224, 3), 128, np.float32)
    logits, maps = adapter.predict_and_saliency(images, np.array([0, 999]))
    assert np.shape(logits) == (2, 1000) and np.shape(maps) == (2, 224, 224)


def test_changed_or_damaged_cache_is_regenerated(tmp_path, demo_run):
    """A generated split whose manifest does not match the plan (or is missing) is written again."""
    from alignbench.demo import PLANS, _dataset_ready

    _, cache, _, _ = demo_run
    plan = PLANS["fast"]
    test_dir = cache / f"data-{plan.data_key()}" / plan.test_dataset
    params = json.loads((test_dir / "manifest.json").read_text())["params"]
    assert _dataset_ready(test_dir, params)
    assert not _dataset_ready(test_dir, {**params, "n_images": params["n_images"] + 1})
    copy = tmp_path / "copy"
    shutil.copytree(test_dir, copy)
    next(copy.glob("*.tfrecords")).unlink()
    assert not _dataset_ready(copy, params)


def test_plans_are_distinct_and_keys_stable():
    from alignbench.demo import PLANS

    fast, full = PLANS["fast"], PLANS["full"]
    assert fast.test_dataset != full.test_dataset and "synthetic" in fast.test_dataset
    assert fast.model_key() == PLANS["fast"].model_key() != full.model_key()
    assert fast.n_train < full.n_train


def test_cli_help_loads_no_framework():
    code = ("import sys; from alignbench.cli import build_parser; build_parser().parse_args(['demo', '--fast']); "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.torch
@pytest.mark.parametrize("width, pool, norm", [(8, 2, "group"), (8, 2, "none"), (24, 1, "group"), (4, 1, "none")])
def test_demo_cnn_source_id_names_the_architecture_it_builds(width, pool, norm):
    """An exported folder's ``source_id`` rebuilds exactly the trained graph (strict weight loading
    depends on it): width, input pooling and normalisation layers round-trip through the name."""
    from model_zoo.builders import demo_cnn as builder
    from model_zoo.catalog import ModelSpec
    from model_zoo.weights import WeightsRequest

    name = builder.source_id(width, pool, norm)
    spec = ModelSpec(id="demo", display_name="demo", family="cnn", framework="torch", source="demo_cnn",
                     source_id=name)
    built = builder.build(spec, WeightsRequest("random")).model
    reference = builder.demo_cnn(width, pool=pool, norm=norm)
    assert [tuple(v.shape) for v in built.state_dict().values()] == \
        [tuple(v.shape) for v in reference.state_dict().values()]
    norms = [type(m).__name__ for m in built.modules() if "Norm" in type(m).__name__]
    assert (norms != []) is (norm == "group"), (name, norms)
    assert any(type(m).__name__ == "AvgPool2d" for m in built.modules()) is (pool > 1)


@pytest.mark.torch
def test_demo_cnn_bad_norm_is_one_clear_error():
    from model_zoo.builders.demo_cnn import demo_cnn

    with pytest.raises(InvalidInputError, match="norm must be one of group, none"):
        demo_cnn(8, norm="batch")
