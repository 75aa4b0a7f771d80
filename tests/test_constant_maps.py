"""Undefined is undefined: a human map constant before the blur has no Spearman rho anywhere (the
scores, the centre-bias baseline, the split-half ceiling), on ClickMe shards and Clicktionary.

Before the rule, the zero-padded blur darkened a constant map's border, and a dataset of constant
maps got a ceiling of 1.000, a centre-bias baseline of 100 % and a random model 41.8 %."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import baselines, records, runner
from benchmark.datasets import clicktionary as ct
from benchmark.datasets import get_dataset
from benchmark.tasks.maps import MapsTask
from tests.runner_support.fakes import fake_loader

pytestmark = pytest.mark.tf


def constant_records(n: int, seed: int, values=(100, 140)) -> list[bytes]:
    """Records with a textured image and constant participant maps (their mean is the heatmap)."""
    from benchmark.datasets.synthetic import encode_jpeg, make_example

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        image = encode_jpeg(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
        parts = [encode_jpeg(np.full((256, 256, 1), v, np.uint8)) for v in values]
        pooled = encode_jpeg(np.full((256, 256, 1), int(np.mean(values)), np.uint8))
        out.append(make_example(image, pooled, int(rng.integers(0, 1000)), parts))
    return out


def score(dataset, results):
    """Ceiling, centre-bias baseline and one model's record, as a run computes them."""
    config = runner.RunConfig(dataset=dataset.name, models=["good-model"], results_dir=results, batch_size=4,
                              device="cpu", progress=False)
    summary = runner.run(config, task=MapsTask(dataset), loader=fake_loader())
    ceiling, outcome = summary.ceiling, summary.outcomes[0]
    assert outcome.status == "ok", outcome.error
    folder = results / dataset.name
    center = records.read_record(folder / baselines.CENTER_BIAS_FILE)  # as written (JSON: NaN -> null)
    return ceiling, center, records.read_record(records.record_path(results, dataset.name, outcome.record["model"]))


def test_a_dataset_of_constant_maps_is_undefined_everywhere(tmp_path):
    from benchmark.datasets.synthetic import write_records

    write_records(tmp_path / "data" / "val-0.tfrecords", constant_records(6, seed=0))
    ds = get_dataset(str(tmp_path / "data"))
    assert ds.skips.total == 0 and ds.num_images() == 6  # kept (not "empty"), and undefined
    for b in ds.batches(4):
        assert np.all(b.heatmaps == 120.0)  # exactly constant after the chain
    ceiling, center, rec = score(ds, tmp_path / "results")
    assert ceiling is None  # was 1.000
    assert center["n_undefined"] == 6 and center["spearman_mean"] is None  # was 100 %
    assert rec["n_images"] == 6 and rec["n_undefined"] == 6  # was 41.8 %
    assert rec["spearman_mean"] is None and rec["normalized"] is None
    scores = records.read_scores(records.scores_path(tmp_path / "results", ds.name, rec["model"]))
    assert np.isnan(np.asarray(scores["spearman"], float)).all()


def test_constant_maps_among_others_are_counted_as_undefined(clickme_dir, tmp_path):
    import tensorflow as tf

    from benchmark.datasets.synthetic import write_records

    good = list(tf.data.TFRecordDataset(str(clickme_dir / "val-0.tfrecords")).as_numpy_iterator())
    const = constant_records(2, seed=1)
    write_records(tmp_path / "data" / "val-0.tfrecords", good[:3] + const[:1] + good[3:6] + const[1:])
    ds = get_dataset(str(tmp_path / "data"))
    ceiling, center, rec = score(ds, tmp_path / "results")
    # the 2 constant images are undefined: counted, left out of the value
    assert ceiling["n"] == 8 and ceiling["n_undefined"] == ceiling["n_excluded"] == 2
    assert 0 < ceiling["value"] < 1
    assert center["n_images"] == 8 and center["n_undefined"] == 2
    assert rec["n_images"] == 8 and rec["n_undefined"] == 2
    scores = records.read_scores(records.scores_path(tmp_path / "results", ds.name, rec["model"]))
    rho = dict(zip(scores["image_id"], np.asarray(scores["spearman"], float)))
    assert np.isnan(rho["val-0:000003"]) and np.isnan(rho["val-0:000007"])
    assert all(np.isfinite(v) for k, v in rho.items() if k not in ("val-0:000003", "val-0:000007"))


def test_constant_clicktionary_maps_are_undefined(tmp_path):
    from PIL import Image

    release = ct.write_synthetic_release(tmp_path / "release", 4, n_participants=2, seed=0)
    Image.fromarray(np.full((256, 256), 90, np.uint8)).save(release / "maps" / "ct0001.png")
    for p in (release / "participants" / "ct0001").glob("*.png"):
        Image.fromarray(np.full((256, 256), 90, np.uint8)).save(p)
    ds = ct.ClicktionaryDataset(release)
    assert ds.skips.total == 0
    _, center, rec = score(ds, tmp_path / "results")
    assert rec["n_undefined"] == 1 and center["n_undefined"] == 1
    scores = records.read_scores(records.scores_path(tmp_path / "results", ds.name, rec["model"]))
    rho = dict(zip(scores["image_id"], np.asarray(scores["spearman"], float)))
    assert np.isnan(rho["ct0001"]) and np.isfinite(rho["ct0000"])
    for resize_only in (ct.ClicktionaryDataset(release, map_preprocessing="resize", prepared=False),):
        maps = np.concatenate([b.heatmaps for b in resize_only.batches(4)])
        assert np.all(maps[1] == 90.0) and maps[0].min() < maps[0].max()


def test_all_zero_heatmaps_stay_a_counted_skip(tmp_path):
    """An all-zero heatmap is ClickMe's "no human map" (ImageNet images without clicks): skipped and
    reported, not scored as undefined."""
    from benchmark.datasets.synthetic import encode_jpeg, make_example, write_records

    image = encode_jpeg(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    zero = encode_jpeg(np.zeros((256, 256, 1), np.uint8))
    write_records(tmp_path / "val-0.tfrecords", [make_example(image, zero, 1)] + constant_records(1, seed=2))
    ds = get_dataset(str(tmp_path))
    assert ds.skips.counts == {"empty heatmap": 1} and ds.num_images() == 1
