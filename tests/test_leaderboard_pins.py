"""Pinned dataset facts (``leaderboard/known_datasets.json``): measured from the data, never typed in.

The mechanism is tested on generated data (the ClickMe-format fixture and the demo's test split);
the real datasets (ClickMe val, Clicktionary, psychophysics, IT) are not on this machine, so their
entries stay unpinned (only ClickMe's published ceiling, from ``benchmark``'s constant) until a
maintainer runs ``alignbench leaderboard pin NAME --write`` on the data.
"""
from __future__ import annotations

import json
import shutil

import pytest

from alignbench.cli import main
from leaderboard.pins import (LEADERBOARD_DATASETS, PinTable, ids_digest, image_ids, load_table, measure_pin,
                              package_table_path, unmeasured_pin)
from model_zoo.errors import InvalidInputError


def test_a_pin_is_measured_from_the_data_and_its_ceiling_record(clickme_dataset, tmp_path):
    from benchmark import baselines

    pin = measure_pin(clickme_dataset, tmp_path, command="alignbench leaderboard pin X")
    assert pin.pinned and pin.n_images == clickme_dataset.num_images() == 25
    assert pin.fingerprint == clickme_dataset.fingerprint()
    # the id set read off the shard index is the one the runner writes into a scores file (decoded batches)
    decoded = [i for b in clickme_dataset.batches(10) for i in b.ids]
    assert image_ids(clickme_dataset) == decoded and pin.image_ids_sha256 == ids_digest(decoded)
    ceiling = baselines.ensure_ceiling(clickme_dataset, tmp_path)
    assert pin.ceiling == ceiling["value"] and pin.ceiling_source == ceiling["source"]
    assert pin.how["ceiling"]["method"] == ceiling["method"] and pin.how["command"] == "alignbench leaderboard pin X"
    # the fixture is generated: the pin says so, and how to regenerate it
    manifest = json.loads((clickme_dataset.files()[0].parent / "manifest.json").read_text())
    assert pin.synthetic and pin.how["generator"]["params"] == manifest["params"]


def test_the_id_digest_sees_order_free_equality_and_duplicates():
    assert ids_digest(["b", "a"]) == ids_digest(["a", "b"])
    assert ids_digest(["a", "a", "b"]) != ids_digest(["a", "b"])


def test_the_cli_prints_and_writes_a_pin(clickme_dir, clickme_dataset, tmp_path, capsys):
    table = tmp_path / "known_datasets.json"
    shutil.copyfile(package_table_path(), table)
    assert main(["leaderboard", "pin", str(clickme_dir), "--results", str(tmp_path / "r"), "--pins", str(table)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed[clickme_dataset.name]["n_images"] == 25
    assert clickme_dataset.name not in load_table(table)  # printed only
    assert main(["leaderboard", "pin", str(clickme_dir), "--results", str(tmp_path / "r"), "--pins", str(table),
                 "--write", "--name", "my-set"]) == 0
    written = load_table(table)
    assert written.get("my-set").fingerprint == clickme_dataset.fingerprint()
    assert set(LEADERBOARD_DATASETS) <= set(written.names())  # nothing else lost


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(schema="alignbench.known-datasets/1"), "schema: expected"),
    (lambda d: d["datasets"]["clickme-val"].update(n_images="many"), "clickme-val.n_images: expected int"),
    (lambda d: d["datasets"]["clickme-val"].update(ceiling=3.0), "clickme-val.ceiling: expected a number in (0, 1]"),
    (lambda d: d["datasets"]["clickme-val"].update(fingerprint="abc"), "clickme-val.fingerprint: expected 'sha256:"),
    (lambda d: d["datasets"]["clickme-val"].update(extra=1), "unknown field(s) ['extra']"),
    (lambda d: d.update(datasets=[1, 2, 3]), "datasets: expected an object"),
])
def test_a_malformed_table_is_one_clear_error(tmp_path, change, words):
    data = json.loads(package_table_path().read_text())
    change(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError) as info:
        load_table(path)
    assert words in str(info.value) and str(path) in str(info.value)


def test_the_shipped_table_lists_every_leaderboard_dataset_and_types_in_nothing():
    table = load_table()
    for name in LEADERBOARD_DATASETS:
        pin = table.get(name)
        assert pin is not None, name
        if not pin.pinned:  # not measured here (no data): exactly the generated skeleton, with benchmark's constant
            assert pin == unmeasured_pin(name), name
    from benchmark.metrics import CLICKME_PUBLISHED_CEILING

    assert table.get("clickme-val").ceiling == CLICKME_PUBLISHED_CEILING
    assert "harmonization" in table.get("clickme-val").ceiling_source


@pytest.mark.parametrize("plan", ["fast", "full"])
def test_the_shipped_demo_pins_are_those_of_the_current_demo(plan):
    from alignbench import demo

    current = demo.PLANS[plan]
    pin = load_table().get(current.test_dataset)
    assert pin is not None and pin.pinned and pin.synthetic
    assert pin.how["demo"]["data_key"] == current.data_key(), (
        f"the demo's {plan} data changed since it was pinned: re-pin it with "
        f"`alignbench leaderboard pin --demo {plan} --write` and commit leaderboard/known_datasets.json")


@pytest.mark.slow
def test_the_fast_demo_pin_is_regenerated_from_how_it_was_computed(tmp_path):
    """Regenerate the pinned demo split from the generator parameters its pin records (100 images) and
    measure it again: the same count, fingerprint, id set and ceiling."""
    from alignbench import demo
    from benchmark.datasets import get_dataset
    from benchmark.datasets.synthetic import write_clickme_shards
    from leaderboard.pins import CEILING_RTOL

    name = demo.PLANS["fast"].test_dataset
    pin = load_table().get(name)
    assert pin.how["generator"]["function"] == "benchmark.datasets.synthetic.write_clickme_shards"
    write_clickme_shards(tmp_path / name, **pin.how["generator"]["params"])
    again = measure_pin(get_dataset(str(tmp_path / name), download=False), tmp_path / "r", command="test")
    assert (again.n_images, again.fingerprint, again.image_ids_sha256) == (pin.n_images, pin.fingerprint,
                                                                          pin.image_ids_sha256)
    assert abs(again.ceiling - pin.ceiling) <= CEILING_RTOL * pin.ceiling


def test_a_table_round_trips(tmp_path):
    table = load_table()
    path = table.write(tmp_path / "t.json")
    assert load_table(path).pins == table.pins
    assert PinTable({}).get("clickme-val") is None
