"""The neural benchmark end to end on generated recordings in the release format with known ground
truth: sites that read out one layer of a random-weight network are predicted best from that layer,
near the ceiling; pure-noise sites score about zero; records, resume, the CLI and the figure."""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark import records, runner
from benchmark.neural import arcaro, synthetic
from benchmark.neural.activations import model_key
from benchmark.neural.data import NeuralData, neural_dataset
from benchmark.tasks.neural import NeuralTask

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

TARGET = "stages.2"
N_IMAGES = 10
NOISE_SD, N_TRIALS = 0.5, 4
REPO = Path(__file__).resolve().parent.parent


def _adapter():
    from model_zoo.wrap import wrap

    return wrap(synthetic.random_convnet(0), batch_size=16)


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    """Release zip: George 9x9 with 32 read-out sites (PL) + 8 pure-noise sites (ML); Red 9x9 with 8
    read-out sites. Read-outs are of ``TARGET`` as the benchmark sees it (grid, <= 600 channels)."""
    from benchmark.neural.activations import grid_features

    root = tmp_path_factory.mktemp("neural-truth")
    adapter = _adapter()
    rng = np.random.default_rng(5)
    images, responses, oracle = {}, {}, {}
    for k, (monkey, sites) in enumerate((("George", 32), ("Red", 8))):
        images[monkey] = synthetic.make_images(N_IMAGES, seed=10 + k)
        feats = grid_features(adapter, images[monkey].astype(np.float32), [TARGET], 9, image_fingerprint="t",
                              key=None)[TARGET]
        signal, trials = synthetic.readout_responses(feats, sites, noise_sd=NOISE_SD, n_trials=N_TRIALS, seed=k)
        mean = trials.mean(0)
        oracle[monkey] = synthetic.oracle_score(signal, mean)
        if monkey == "George":
            mean = np.concatenate([mean, rng.normal(size=(N_IMAGES, 9, 9, 8))], -1)
        responses[monkey] = mean
    folder = synthetic.write_release(root / "release", images, responses)
    zpath = synthetic.write_release_zip(root / arcaro.ZIP_NAME, folder)
    return root, zpath, oracle


def _score(task, model, cfg, loader):
    """One model's outcome through the runner (the job every executor runs)."""
    return runner.run(dataclasses.replace(cfg, models=[model]), task=task, loader=loader).outcomes[0]


def _config(root, **kw):
    return runner.RunConfig(dataset="it-arcaro2020", results_dir=root / "results", device="cpu", progress=False,
                            **kw)


def test_readout_layer_is_found_near_ceiling_and_noise_scores_zero(truth):
    root, zpath, oracle = truth
    task = NeuralTask(neural_dataset(root=zpath), n_resamples=200)
    cfg = _config(root)
    ceiling = task.ensure_references(cfg.results_dir).ceiling
    assert set(ceiling["panels"]) == {"monkey1-PL", "monkey1-ML", "monkey2-ML"}
    assert ceiling["panels"]["monkey1-PL"]["method"] == "inter-channel"
    out = _score(task, "random-convnet", cfg, lambda *a, **k: _adapter())
    assert out.status == "ok", out.error
    rec = records.read_record(records.record_path(cfg.results_dir, "it-arcaro2020", "random-convnet"))
    pl, ml, red = (rec["panels"][p] for p in ("monkey1-PL", "monkey1-ML", "monkey2-ML"))
    for panel, monkey in ((pl, "George"), (red, "Red")):
        assert panel["chosen_layer_counts"] == {TARGET: N_IMAGES}          # held-out choice, every fold
        assert panel["best_on_test"]["layer"] == TARGET
        scores = {l["layer"]: l["score"] for l in panel["per_layer"]}
        assert max(scores, key=scores.get) == TARGET
        assert panel["predictivity"] >= 0.9 * oracle[monkey]               # near the known ceiling
        lo, hi = panel["predictivity_ci95"]
        assert lo <= panel["predictivity"] <= hi
        assert panel["spatial_map_spearman"] > 0.5
    assert abs(ml["predictivity"]) < 0.2 and abs(ml["best_on_test"]["mean"]) < 0.25   # pure noise
    assert rec["task"] == "neural" and rec["layers"] == ["stages.0", "stages.1", "stages.2", "stages.3"]
    assert rec["score"] == pytest.approx(np.mean([pl["predictivity"], ml["predictivity"], red["predictivity"]]))
    # every headline number recomputes from the scores file
    with open(cfg.results_dir / "it-arcaro2020" / rec["scores_file"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_IMAGES * (32 + 8 + 8)
    red_rows = [r for r in rows if r["panel"] == "monkey2-ML"]
    per_image = {}
    for r in red_rows:
        per_image.setdefault(r["image_id"], []).append(float(r["r"]))
    assert np.mean([np.median(v) for v in per_image.values()]) == pytest.approx(red["predictivity"], abs=1e-9)
    # the activation cache was filled, per (model, layer)
    cache = Path(__import__("os").environ["ALIGNBENCH_CACHE"]) / "neural" / "activations"
    cached = list(cache.glob(f"{model_key('random-convnet', None)}/*/*.npy"))  # this model's (the cache is shared)
    assert len(cached) == 8  # 4 layers x 2 stimulus sets (George's panels share theirs)
    # second run: skipped; a different limit recomputes
    assert _score(task, "random-convnet", cfg, lambda *a, **k: _adapter()).status == "skipped"


def test_failures_are_recorded_and_bad_layers_named(truth, tmp_path):
    _, zpath, _ = truth
    task = NeuralTask(NeuralData(arcaro.load_arcaro2020(zpath, panels=["monkey2-ML"])), layers=["stages.9"],
                      n_resamples=50)
    out = _score(task, "broken", _config(tmp_path), lambda *a, **k: _adapter())
    assert out.status == "failed" and "stages.9" in out.error
    assert out.record["task"] == "neural"
    with pytest.raises(Exception, match="at least 3 images"):
        task.data.selected(2)


@pytest.mark.slow
def test_cli_run_and_plot_pareto(truth, tmp_path, monkeypatch, capsys):
    """``alignbench run --dataset it-arcaro2020`` on a catalog model (random weights, offline, the
    release in the cache), then ``plot-pareto`` with the published harmonized points."""
    from alignbench.cli import main
    from model_zoo.fileio import cache_dir

    _, zpath, _ = truth
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    shutil.copy(zpath, _mk(cache_dir("neural", "arcaro2020")) / arcaro.ZIP_NAME)
    results = tmp_path / "results"
    args = ["run", "--dataset", "it-arcaro2020", "--model", "tv_resnet18", "--weights", "random", "--limit", "4",
            "--results", str(results), "--device", "cpu", "--offline", "--no-progress"]
    assert main(args) == 0
    rec = json.loads((results / "it-arcaro2020" / "tv_resnet18+random.json").read_text())
    assert rec["status"] == "ok" and rec["limit"] == 4 and rec["panels"]["monkey1-PL"]["n_images"] == 4
    assert rec["top1_published"] is None and rec["layers"][0] == "layer1.0"  # random weights: no published top-1
    assert (results / "it-arcaro2020" / "_ceiling.json").exists()
    capsys.readouterr()
    assert main(["plot-pareto", "--dataset", "it-arcaro2020", "--results", str(results),
                 "--output", str(tmp_path / "it.png")]) == 0
    assert "tv_resnet18+random: no published ImageNet top-1" in capsys.readouterr().out
    assert (tmp_path / "it.png").stat().st_size > 5000
    # the same record as if the weights were the published ones: drawn in every panel
    from benchmark.neural.plots import panel_points

    path = results / "it-arcaro2020" / "tv_resnet18+random.json"
    rec.update(top1_published=69.758, weights="pretrained")
    records.write_record(path, rec)
    points, _ = panel_points(results, "it-arcaro2020")
    assert sorted(points) == ["monkey1-ML", "monkey1-PL", "monkey2-ML"]
    assert points["monkey2-ML"][0][0].alignment == pytest.approx(rec["panels"]["monkey2-ML"]["predictivity"])


def test_published_points_are_the_digitized_file():
    from benchmark.neural.published import read_published

    pts = read_published()
    assert len(pts) == 18
    convnext_pl = next(p for p in pts if p.model.startswith("Harmonized ConvNeXt") and p.panel == "monkey1-PL")
    assert (convnext_pl.top1, convnext_pl.predictivity) == (77.5, 0.52)


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
