"""Preprocess: validation, catalog rows, and the folded affine transform."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from model_zoo.errors import InvalidInputError
from model_zoo.preprocessing import Preprocess

import model_zoo

CATALOG_CSV = Path(model_zoo.__file__).parent / "catalog.csv"
CAFFE_ROW = {
    "id": "keras_vgg16",
    "input_size": "224",
    "interpolation": "",
    "mean": "0.485;0.458;0.408",
    "std": "0.003922;0.003922;0.003922",
    "notes": "keras caffe preprocess: RGB->BGR, subtract mean, no scaling (mean/std given here in RGB 0-1 units)",
}


def test_affine_equals_scale_mean_std_formula():
    p = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1 / 255)
    gain, offset = p.affine()
    x = np.random.default_rng(0).uniform(0, 255, (5, 3))
    expected = (x / 255 - np.array(p.mean)) / np.array(p.std)
    np.testing.assert_allclose(x * np.array(gain) + np.array(offset), expected, rtol=1e-12)


def test_affine_without_mean_std_is_scale_only():
    gain, offset = Preprocess(scale=0.5).affine()
    assert gain == (0.5, 0.5, 0.5) and offset == (0.0, 0.0, 0.0)


def test_caffe_row_gives_bgr_and_raw_pixel_minus_mean():
    p = Preprocess.from_catalog_row(CAFFE_ROW)
    assert p.channel_order == "BGR" and p.interpolation == "bilinear" and p.input_size == 224
    gain, offset = p.affine()
    # Keras caffe mode subtracts the ImageNet mean in pixel units and does not scale.
    x = np.array([100.0, 150.0, 200.0])
    np.testing.assert_allclose(x * np.array(gain) + np.array(offset), x - 255 * np.array(p.mean), rtol=2e-3)


def test_explicit_channel_order_column_wins_over_notes():
    assert Preprocess.from_catalog_row({**CAFFE_ROW, "channel_order": "rgb"}).channel_order == "RGB"


def test_every_catalog_row_parses_and_notes_agree_with_channel_order_column():
    with CATALOG_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    parsed = {r["id"]: Preprocess.from_catalog_row(r) for r in rows}
    assert {i for i, p in parsed.items() if p.channel_order == "BGR"} == {
        "keras_vgg16", "keras_vgg19", "keras_resnet50", "keras_resnet152"
    }
    # Rows from the reference models.csv have no channel_order column: the notes must say the same.
    without_column = {r["id"]: Preprocess.from_catalog_row({k: v for k, v in r.items() if k != "channel_order"}) for r in rows}
    assert without_column == parsed


@pytest.mark.parametrize(
    "field,value",
    [("mean", "0.1;0.2"), ("std", "a;b;c"), ("input_size", "big"), ("interpolation", "lanczos"), ("std", "0;1;1")],
)
def test_bad_catalog_values_name_row_and_field(field, value):
    with pytest.raises(InvalidInputError, match=rf"keras_vgg16.*{field}"):
        Preprocess.from_catalog_row({**CAFFE_ROW, field: value})


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"input_size": 0}, "input_size"),
        ({"interpolation": "area"}, "interpolation"),
        ({"channel_order": "GBR"}, "channel_order"),
        ({"mean": (0.5, 0.5, 0.5)}, "mean"),
        ({"mean": (0.5, 0.5, 0.5), "std": (1, 1)}, "std"),
        ({"scale": 0}, "scale"),
    ],
)
def test_invalid_fields_are_named(kwargs, field):
    with pytest.raises(InvalidInputError, match=field):
        Preprocess(**kwargs)


def test_coerce_dict_and_unknown_key():
    assert Preprocess.coerce({"input_size": 160, "mean": [0.5] * 3, "std": [0.5] * 3}) == Preprocess(
        input_size=160, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
    )
    assert Preprocess.coerce(None) is None
    with pytest.raises(InvalidInputError, match="crop_pct"):
        Preprocess.coerce({"crop_pct": 0.875})
    with pytest.raises(InvalidInputError, match="preprocess"):
        Preprocess.coerce("imagenet")
