"""Bad input: corrupt shards raise InvalidInputError naming the file; bad records are skipped and
counted with their ids, never scored, never crashing."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmark.datasets import get_dataset, load_clickme
from model_zoo.errors import InvalidInputError

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    """val-0: records 0, 2, 9 good; the others each broken in one way."""
    import tensorflow as tf

    from benchmark.datasets.synthetic import encode_jpeg, make_example, write_records

    rng = np.random.default_rng(0)
    img = encode_jpeg(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    hm = encode_jpeg(rng.integers(1, 256, (256, 256, 1), dtype=np.uint8))
    no_label = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[img])),
        "heatmap": tf.train.Feature(bytes_list=tf.train.BytesList(value=[hm]))})).SerializeToString()
    records = [
        make_example(img, hm, 3),                                                     # 0 good
        make_example(encode_jpeg(np.zeros((128, 128, 3), np.uint8)), hm, 3),          # 1 wrong shape (image)
        make_example(img, hm, 999),                                                   # 2 good (edge label)
        make_example(img, encode_jpeg(np.full((256, 256, 3), 9, np.uint8)), 3),       # 3 wrong shape (3-ch heatmap)
        make_example(b"\xff\xd8 not really a jpeg", hm, 3),                           # 4 undecodable JPEG
        make_example(img, hm, 1000),                                                  # 5 label out of range
        make_example(img, hm, -1),                                                    # 6 label out of range
        make_example(img, encode_jpeg(np.zeros((256, 256, 1), np.uint8)), 3),         # 7 empty heatmap
        no_label,                                                                     # 8 missing or malformed feature
        make_example(img, hm, 0),                                                     # 9 good (edge label)
        b"\x08\x96\x01 this is not a protobuf message",                               # 10 unparsable record
    ]
    out = tmp_path_factory.mktemp("mixed")
    write_records(out / "val-0.tfrecords", records)
    return out


EXPECTED = {"wrong shape": 2, "undecodable JPEG": 1, "label out of range": 2, "empty heatmap": 1,
            "missing or malformed feature": 1, "unparsable record": 1}


def test_bad_records_are_skipped_and_counted(mixed_dir):
    ds = get_dataset(str(mixed_dir))
    skips = ds.skips
    assert skips.counts == EXPECTED and skips.total == 8
    assert skips.examples["label out of range"] == ["val-0:000005", "val-0:000006"]
    assert skips.examples["wrong shape"] == ["val-0:000001", "val-0:000003"]
    assert skips.examples["unparsable record"] == ["val-0:000010"]
    assert ds.num_images() == 3
    ids = [i for b in ds.batches(2) for i in b.ids]
    assert ids == ["val-0:000000", "val-0:000002", "val-0:000009"]
    assert [int(x) for b in ds.batches(8) for x in b.labels] == [3, 999, 0]
    assert "8 records skipped" in skips.summary() and "val-0:000007" in skips.summary()


def test_load_clickme_warns_about_skips(mixed_dir):
    with pytest.warns(RuntimeWarning, match="8 records skipped"):
        batches = list(load_clickme(sorted(mixed_dir.glob("*.tfrecords")), 4))
    assert sum(len(b[2]) for b in batches) == 3


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_shard_names_the_file(clickme_dir, tmp_path, damage):
    shard = tmp_path / "val-0.tfrecords"
    shutil.copy(clickme_dir / "val-0.tfrecords", shard)
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:  # one flipped byte inside a record's payload: its CRC no longer matches
        data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = get_dataset(str(tmp_path))
    with pytest.raises(InvalidInputError, match=r"val-0\.tfrecords.*(truncated or corrupt)"):
        ds.num_images()
    with pytest.raises(InvalidInputError, match=r"val-0\.tfrecords"):
        next(ds.batches(4))


def test_not_a_tfrecord_file(tmp_path):
    (tmp_path / "val-0.tfrecords").write_text("hello, I am a text file pretending to be a shard\n")
    with pytest.raises(InvalidInputError, match=r"val-0\.tfrecords"):
        get_dataset(str(tmp_path)).num_images()


def test_unknown_dataset_and_empty_folder(tmp_path):
    with pytest.raises(InvalidInputError, match="Did you mean clickme-val"):
        get_dataset("clickme-vall")
    with pytest.raises(InvalidInputError, match="no \\*.tfrecords"):
        get_dataset(str(tmp_path))


def test_registered_dataset_kinds(monkeypatch):
    from benchmark.datasets import list_datasets, register_dataset, registry

    monkeypatch.setattr(registry, "_FACTORIES", {})
    register_dataset("other-kind", lambda download, mirror: ("built", download, mirror))
    assert "other-kind" in list_datasets()
    assert get_dataset("other-kind", download=False, mirror="m") == ("built", False, "m")
    with pytest.raises(ValueError, match="sources.json"):
        register_dataset("clickme-val", lambda **kw: None)


# --------------------------------------------------------------------------- participant maps, empty shards

@pytest.fixture(scope="module")
def participants_dir(tmp_path_factory):
    """val-0: records 0 and 3 good (2 participant maps each); 1 has a 128x128 participant map, 2 an
    undecodable one, 4 a 3-channel one. val-1: all good."""
    from benchmark.datasets.synthetic import encode_jpeg, make_example, write_records

    rng = np.random.default_rng(1)
    img = encode_jpeg(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    hm = encode_jpeg(rng.integers(1, 256, (256, 256, 1), dtype=np.uint8))
    part = [encode_jpeg(rng.integers(0, 256, (256, 256, 1), dtype=np.uint8)) for _ in range(2)]
    records = [
        make_example(img, hm, 1, part),                                                          # 0 good
        make_example(img, hm, 1, [part[0], encode_jpeg(np.zeros((128, 128, 1), np.uint8))]),     # 1 wrong size
        make_example(img, hm, 1, [part[0], b"\xff\xd8 broken participant"]),                      # 2 undecodable
        make_example(img, hm, 2, part),                                                          # 3 good
        make_example(img, hm, 1, [encode_jpeg(np.zeros((256, 256, 3), np.uint8)), part[1]]),     # 4 3 channels
    ]
    out = tmp_path_factory.mktemp("participants")
    write_records(out / "val-0.tfrecords", records)
    write_records(out / "val-1.tfrecords", [make_example(img, hm, 5, part)] * 3)
    return out


def test_bad_participant_maps_are_reported_skips_naming_the_record(participants_dir):
    ds = get_dataset(str(participants_dir))
    skips = ds.skips
    assert skips.counts == {"wrong participant map shape": 2, "undecodable participant map": 1}
    assert skips.examples["wrong participant map shape"] == ["val-0:000001", "val-0:000004"]
    assert skips.examples["undecodable participant map"] == ["val-0:000002"]
    expected = ["val-0:000000", "val-0:000003", "val-1:000000", "val-1:000001", "val-1:000002"]
    assert [i for b in ds.batches(2) for i in b.ids] == expected
    # the ceiling's reader sees the same records and no longer aborts the dataset
    got = list(ds.participant_maps())
    assert [i for i, _ in got] == expected and all(m.shape == (2, 224, 224) for _, m in got)
    assert ds.has_participant_maps and ds.num_images() == 5


def test_data_info_lists_exactly_what_a_run_skips(participants_dir, capsys):
    from alignbench.cli import main

    assert main(["data", "info", str(participants_dir)]) == 0
    out = capsys.readouterr().out
    assert "3 records skipped" in out
    assert "2 wrong participant map shape: val-0:000001, val-0:000004" in out
    assert "1 undecodable participant map: val-0:000002" in out
    assert "5 images (8 records)" in out


def test_an_empty_shard_beside_a_good_one_is_an_error_naming_it(participants_dir, tmp_path):
    shutil.copy(participants_dir / "val-1.tfrecords", tmp_path / "val-0.tfrecords")
    (tmp_path / "val-1.tfrecords").write_bytes(b"")
    ds = get_dataset(str(tmp_path))
    with pytest.raises(InvalidInputError, match=r"val-1\.tfrecords is empty \(0 bytes\)"):
        ds.num_images()
    with pytest.raises(InvalidInputError, match=r"val-1\.tfrecords is empty"):
        next(ds.batches(4))


def test_an_all_invalid_dataset_says_so(tmp_path, capsys):
    from alignbench.cli import main
    from benchmark import baselines
    from benchmark.datasets.synthetic import encode_jpeg, make_example, write_records

    img = encode_jpeg(np.zeros((64, 64, 3), np.uint8))  # every image has the wrong size
    hm = encode_jpeg(np.full((256, 256, 1), 7, np.uint8))
    write_records(tmp_path / "data" / "val-0.tfrecords", [make_example(img, hm, 3, [hm, hm])] * 4)
    ds = get_dataset(str(tmp_path / "data"))
    assert ds.num_images() == 0 and not ds.has_participant_maps
    with pytest.raises(InvalidInputError, match=r"has no valid record: 4 records skipped: 4 wrong shape"):
        next(ds.batches(2))
    with pytest.raises(InvalidInputError, match="has no valid record"):
        next(ds.participant_maps())
    assert baselines.ensure_ceiling(ds, tmp_path / "results") is None  # no "2 or more participants" message
    with pytest.raises(InvalidInputError, match="has no valid record"):
        baselines.ensure_center_bias(ds, tmp_path / "results")
    assert main(["data", "info", str(tmp_path / "data")]) == 1
    assert "no valid record" in capsys.readouterr().out
