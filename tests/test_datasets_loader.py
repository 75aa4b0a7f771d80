"""ClickMeDataset / load_clickme on generated shards: every image, fixed order, ids, resume, caches."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from benchmark.datasets import ClickMeDataset, get_dataset, load_clickme, preprocess_heatmaps, preprocess_images
from conftest import CLICKME_FIXTURE

pytestmark = pytest.mark.tf
N = CLICKME_FIXTURE["n_images"]


def raw_records(path):
    """(image uint8, heatmap uint8, label, participant maps uint8) per record, decoded by TF's default."""
    import tensorflow as tf

    out = []
    for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        f = tf.train.Example.FromString(raw).features.feature
        dec = lambda b: tf.io.decode_jpeg(b).numpy()  # noqa: E731
        out.append((dec(f["image"].bytes_list.value[0]), dec(f["heatmap"].bytes_list.value[0]),
                    f["label"].int64_list.value[0], [dec(b) for b in f["participant_heatmaps"].bytes_list.value]))
    return out


def test_every_image_is_scored_tail_included(clickme_dataset):
    batches = list(clickme_dataset.batches(8))
    assert [len(b) for b in batches] == [8, 8, 8, 1]  # the paper's drop_remainder would keep 24
    ids = [i for b in batches for i in b.ids]
    assert len(ids) == len(set(ids)) == N == clickme_dataset.num_images()
    expected = [f"val-{k}:{i:06d}" for k, n in enumerate((9, 8, 8)) for i in range(n)]
    assert ids == expected


def test_batch_types_and_ranges(clickme_dataset, clickme_dir):
    b = next(clickme_dataset.batches(5))
    assert b.images.shape == (5, 224, 224, 3) and b.images.dtype == np.float32
    assert b.heatmaps.shape == (5, 224, 224) and b.heatmaps.dtype == np.float32
    assert b.labels.shape == (5,) and b.labels.dtype == np.int64
    assert 0 <= b.images.min() and b.images.max() <= 255
    labels = set(json.loads((clickme_dir / "manifest.json").read_text())["labels"])
    assert set(b.labels.tolist()) <= labels


def test_batches_equal_preprocessing_of_decoded_records(clickme_dataset):
    recs = raw_records(clickme_dataset.files()[1])
    batch = next(clickme_dataset.batches(20, start=9))  # shard val-1 starts at image 9
    assert batch.ids[:8] == [f"val-1:{i:06d}" for i in range(8)]
    images = np.stack([r[0] for r in recs]).astype(np.float32)
    heatmaps = np.stack([r[1] for r in recs]).astype(np.float32)
    np.testing.assert_allclose(batch.images[:8], preprocess_images(images), atol=1e-4)
    np.testing.assert_allclose(batch.heatmaps[:8], preprocess_heatmaps(heatmaps), atol=1e-4)
    assert batch.labels[:8].tolist() == [r[2] for r in recs]


@pytest.mark.parametrize("start,limit", [(0, 3), (7, 6), (9, 100), (24, None), (25, None), (3, 0)])
def test_start_and_limit_select_a_window_of_the_full_order(clickme_dataset, start, limit):
    full = [i for b in clickme_dataset.batches(16) for i in b.ids]
    got = [i for b in clickme_dataset.batches(4, start=start, limit=limit) for i in b.ids]
    assert got == full[start:None if limit is None else start + limit]


def test_order_is_deterministic(clickme_dataset):
    a = [b.heatmaps for b in clickme_dataset.batches(7)]
    b = [b.heatmaps for b in clickme_dataset.batches(7)]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_load_clickme_tuples(clickme_dataset):
    files = clickme_dataset.files()
    plain = list(load_clickme(files, 8))
    assert [len(t) for t in plain] == [3] * 4 and sum(len(t[2]) for t in plain) == N
    with_ids = list(load_clickme([str(f) for f in files], 8, with_ids=True))
    assert with_ids[-1][3] == ["val-2:000007"]
    np.testing.assert_array_equal(plain[0][1], with_ids[0][1])


def test_files_subset(clickme_dataset):
    files = clickme_dataset.files()
    ids = [i for b in clickme_dataset.batches(8, files=files[2:]) for i in b.ids]
    assert ids == [f"val-2:{i:06d}" for i in range(8)]


def test_participant_maps(clickme_dataset):
    assert clickme_dataset.has_participant_maps
    recs = raw_records(clickme_dataset.files()[0])
    got = list(clickme_dataset.participant_maps(limit=3))
    assert [i for i, _ in got] == ["val-0:000000", "val-0:000001", "val-0:000002"]
    for (_, maps), rec in zip(got, recs):
        assert maps.shape == (CLICKME_FIXTURE["n_participants"], 224, 224) and maps.dtype == np.float32
        np.testing.assert_allclose(maps, preprocess_heatmaps(np.stack(rec[3]).astype(np.float32)), atol=1e-4)


def test_human_maps_match_batches(clickme_dataset):
    maps, ids = clickme_dataset.human_maps(limit=10)
    assert maps.shape == (10, 224, 224) and len(ids) == 10
    first = next(clickme_dataset.batches(10))
    np.testing.assert_array_equal(maps, first.heatmaps)
    assert ids == first.ids


def test_fingerprint_and_index_cache(clickme_dir, tmp_path):
    import os

    from model_zoo.fileio import cache_dir

    copy = tmp_path / "copy"
    shutil.copytree(clickme_dir, copy)
    ds = get_dataset(str(copy))
    assert ds.name == "copy" and ds.synthetic
    fp = ds.fingerprint()
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    assert get_dataset(str(clickme_dir)).fingerprint() == fp  # same names, sizes and bytes
    assert ds.num_images() == N
    assert len(list(cache_dir("clickme-index").glob("*.json"))) >= 3  # one validated index per shard
    # a changed shard changes the fingerprint (a new dataset object: the old one memoises)
    shard = copy / "val-2.tfrecords"
    shutil.copy(copy / "val-1.tfrecords", shard)
    os.utime(shard, ns=(1, 1))
    assert get_dataset(str(copy)).fingerprint() != fp


def test_dataset_without_participant_maps(tmp_path):
    from benchmark.datasets.synthetic import encode_jpeg, make_example, write_records

    img = encode_jpeg(np.full((256, 256, 3), 90, np.uint8))
    hm = encode_jpeg(np.full((256, 256, 1), 200, np.uint8))
    write_records(tmp_path / "val-0.tfrecords", [make_example(img, hm, 5) for _ in range(3)])
    ds = get_dataset(str(tmp_path))
    assert not ds.has_participant_maps and not ds.synthetic
    assert list(ds.participant_maps()) == []
    assert ds.num_images() == 3


def test_constructor_and_batch_size_errors(clickme_dataset):
    from model_zoo.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="batch_size"):
        next(clickme_dataset.batches(0))
    with pytest.raises(InvalidInputError, match="start"):
        next(clickme_dataset.batches(4, start=-1))
    with pytest.raises(InvalidInputError, match="does not exist"):
        ClickMeDataset("x", paths=["/nonexistent/val-0.tfrecords"]).files()
