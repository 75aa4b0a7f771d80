"""The synthetic ClickMe generator: schema, determinism, participants, the planted shortcut; and the
``alignbench data`` commands."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from benchmark.datasets.synthetic import class_labels, write_clickme_shards
from conftest import CLICKME_FIXTURE
from model_zoo.errors import InvalidInputError

pytestmark = pytest.mark.tf


def decoded(path):
    """Per record: image uint8 HWC, heatmap uint8 HW1, label, participant maps; with the feature keys."""
    import tensorflow as tf

    out = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        f = tf.train.Example.FromString(raw).features.feature
        dec = lambda b: tf.io.decode_jpeg(b).numpy()  # noqa: E731
        out.append({"keys": set(f.keys()), "image": dec(f["image"].bytes_list.value[0]),
                    "heatmap": dec(f["heatmap"].bytes_list.value[0]), "label": f["label"].int64_list.value[0],
                    "participants": [dec(b) for b in f["participant_heatmaps"].bytes_list.value]})
    return out


def test_schema_counts_and_manifest(clickme_dir):
    manifest = json.loads((clickme_dir / "manifest.json").read_text())
    assert manifest["synthetic"] is True
    assert manifest["counts"] == {"images": 25, "shards": {"val-0.tfrecords": 9, "val-1.tfrecords": 8,
                                                           "val-2.tfrecords": 8}}
    assert manifest["params"]["seed"] == CLICKME_FIXTURE["seed"]
    recs = decoded(clickme_dir / "val-0.tfrecords")
    assert len(recs) == 9
    for r in recs:
        assert r["keys"] == {"image", "heatmap", "label", "participant_heatmaps"}
        assert r["image"].shape == (256, 256, 3) and r["heatmap"].shape == (256, 256, 1)
        assert len(r["participants"]) == CLICKME_FIXTURE["n_participants"]
        assert all(p.shape == (256, 256, 1) for p in r["participants"])
        # the heatmap is the mean of the participants' maps (up to JPEG error)
        mean = np.mean([p.astype(np.float64) for p in r["participants"]], axis=0)
        assert np.abs(mean - r["heatmap"]).mean() < 2.0
        assert r["heatmap"].max() > 50


def test_labels_spread_over_imagenet_and_balanced(clickme_dir):
    labels = class_labels(10)
    assert len(labels) == 10 and labels.min() == 0 and labels.max() == 999
    assert (labels < 398).any() and (labels > 398).any()
    got = [r["label"] for k in range(3) for r in decoded(clickme_dir / f"val-{k}.tfrecords")]
    counts = np.bincount(np.searchsorted(labels, got), minlength=10)
    assert set(got) <= set(labels.tolist()) and counts.max() - counts.min() <= 1  # 25 over 10 classes


def test_deterministic_for_a_seed(tmp_path):
    a = write_clickme_shards(tmp_path / "a", 4, n_shards=1, n_participants=2, seed=3)
    b = write_clickme_shards(tmp_path / "b", 4, n_shards=1, n_participants=2, seed=3)
    c = write_clickme_shards(tmp_path / "c", 4, n_shards=1, n_participants=2, seed=4)
    assert a[0].read_bytes() == b[0].read_bytes() != c[0].read_bytes()


def _border_colour(image: np.ndarray) -> np.ndarray:
    """Median colour of the 8-pixel frame (objects never reach it)."""
    ring = np.concatenate([image[:8].reshape(-1, 3), image[-8:].reshape(-1, 3),
                           image[:, :8].reshape(-1, 3), image[:, -8:].reshape(-1, 3)])
    return np.median(ring, axis=0)


@pytest.mark.parametrize("shortcut,spread_ok", [(1.0, lambda s: s < 12), (0.0, lambda s: s > 30)])
def test_shortcut_sets_the_class_background(tmp_path, shortcut, spread_ok):
    paths = write_clickme_shards(tmp_path, 12, n_shards=1, n_participants=1, n_classes=2, shortcut=shortcut, seed=1)
    recs = decoded(paths[0])
    for label in {r["label"] for r in recs}:
        colours = np.array([_border_colour(r["image"]) for r in recs if r["label"] == label])
        spread = np.abs(colours - colours.mean(axis=0)).max()
        assert spread_ok(spread), (label, spread)


@pytest.mark.parametrize("kwargs", [{"n_images": 2, "n_shards": 3}, {"n_images": 2, "n_participants": 0},
                                    {"n_images": 2, "shortcut": 1.5}, {"n_images": 2, "n_classes": 0}])
def test_generator_argument_errors(tmp_path, kwargs):
    n = kwargs.pop("n_images")
    with pytest.raises(InvalidInputError):
        write_clickme_shards(tmp_path, n, **kwargs)


# ---------------------------------------------------------------- CLI

def test_cli_generate_and_info(tmp_path, capsys):
    from alignbench.cli import main

    out = tmp_path / "demo"
    assert main(["data", "generate", str(out), "--images", "5", "--shards", "1", "--participants", "2"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 5 and info["synthetic"] and info["has_participant_maps"]
    assert info["skips"]["total"] == 0 and info["fingerprint"].startswith("sha256:")
    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5 images (5 records)" in text and f"1 shard in {out.resolve()}" in text
    assert main(["data", "info", "--list"]) == 0
    listed = capsys.readouterr().out.split()
    assert listed[:4] == ["clickme-val", "clickme-val-all", "clickme-train", "clickme-train-all"]


def test_cli_describes_files_of_every_dataset_kind(tmp_path):
    from alignbench.cli.data_cmd import describe_files

    shards = [tmp_path / f"val-{k}.tfrecords" for k in range(3)]
    assert describe_files(shards) == f"3 shards in {tmp_path}"
    assert describe_files(shards[:1]) == f"1 shard in {tmp_path}"
    assert describe_files([tmp_path / "clicktionary.csv"]) == f"file {tmp_path / 'clicktionary.csv'}"
    assert describe_files([tmp_path / "a" / "x.mat", tmp_path / "b" / "y.mat"]) == f"2 files in {tmp_path}"
    assert describe_files([]) == "no files"


def test_cli_download_offline_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from alignbench.cli import main

    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path))
    assert main(["data", "download", "clickme-val"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "clickme" / "val") in err


def test_importing_the_data_layer_loads_no_framework():
    code = ("import sys, benchmark.datasets, benchmark.datasets.download, alignbench.cli.data_cmd; "
            "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules, 'framework imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_off_centre_objects_and_corner_patch_shortcut():
    """Objects at least ``off_centre`` from the centre; the patch (corner farthest from the object)
    has the class's colour when cued, a random one otherwise; the background is then never the cue."""
    from benchmark.datasets.synthetic import SIZE, class_palette, draw_scene

    palette = class_palette(2)
    rng = np.random.default_rng(0)
    for cued in (1.0, 0.0):
        for c in (0, 1) * 4:
            image, mask = draw_scene(rng, c, palette, cued, radius=(32, 48), off_centre=56.0, patch=40.0)
            ys, xs = np.nonzero(mask)
            cy, cx = ys.mean(), xs.mean()
            assert np.hypot(cy - SIZE / 2, cx - SIZE / 2) > 40  # the mask's centroid, near its centre
            y0 = 8 if cy > SIZE / 2 else SIZE - 48
            x0 = 8 if cx > SIZE / 2 else SIZE - 48
            patch = image[y0 + 4:y0 + 36, x0 + 4:x0 + 36].reshape(-1, 3).mean(axis=0)
            close = np.abs(patch - palette[c]).max() < 3
            assert close if cued else not close, (cued, c, patch, palette[c])
            assert not mask[y0:y0 + 40, x0:x0 + 40].any()  # the patch is away from the object


@pytest.mark.parametrize("kwargs", [{"object_radius_px": (2, 10)}, {"object_radius_px": (50, 40)},
                                    {"off_centre_px": 200.0}, {"shortcut_patch_px": 100.0},
                                    {"shapes": ()}, {"shapes": ("disk", "star")}])
def test_placement_argument_errors(tmp_path, kwargs):
    with pytest.raises(InvalidInputError):
        write_clickme_shards(tmp_path, 2, n_shards=1, **kwargs)


def test_bars_carry_the_class_by_orientation_and_the_manifest_names_the_shapes(tmp_path):
    """``shapes=("hbar", "vbar")``: class 0 a horizontal bar, class 1 a vertical one (same size law,
    random colours); the manifest records the shapes each label was drawn with."""
    from benchmark.datasets.synthetic import class_palette, draw_scene

    rng = np.random.default_rng(1)
    for c, wide in ((0, True), (1, False)) * 3:
        _, mask = draw_scene(rng, c, class_palette(2), 0.0, shapes=("hbar", "vbar"))
        ys, xs = np.nonzero(mask)
        # spread along each axis (a 3:1 bar has a variance ratio of 9, still > 3 when jitter tilts it)
        along_y, along_x = np.var(ys), np.var(xs)
        assert (along_x > 3 * along_y) if wide else (along_y > 3 * along_x), (c, along_y, along_x)
    write_clickme_shards(tmp_path, 4, n_shards=1, n_classes=2, shapes=("hbar", "vbar"))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"]["shapes"] == ["hbar", "vbar"]
    assert sorted(manifest["shapes"].values()) == ["hbar", "vbar"]
