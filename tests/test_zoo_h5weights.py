"""Reading legacy Keras ``.h5`` files without Keras (``model_zoo.h5weights``) and the errors for bad
files, on small files written here with h5py in both legacy layouts. The full architectures are
checked against the authors' packages in ``test_zoo_harmonized.py``."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from model_zoo.errors import InvalidInputError
from model_zoo.h5weights import mismatch_error, read_h5_layers

RNG = np.random.default_rng(0)
LAYERS = {  # layer -> variables, as Keras 2 names them (a layer name may contain "/")
    "conv1_conv": {"conv1_conv/kernel:0": RNG.normal(size=(7, 7, 3, 4)), "conv1_conv/bias:0": RNG.normal(size=4)},
    "pool1_pool": {},
    "stack_1_block_1/mbconv/preact_bn": {f"stack_1_block_1/mbconv/preact_bn/{v}:0": RNG.normal(size=4)
                                         for v in ("gamma", "beta", "moving_mean", "moving_variance")},
}


def write_legacy(path: Path, *, full_model: bool, layers=LAYERS) -> Path:
    """The layout of ``model.save('x.h5')`` (weights under ``model_weights``) or ``save_weights``."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if full_model else f
        if full_model:
            f.attrs["model_config"] = "{}"
        root.attrs["layer_names"] = [n.encode() for n in layers]
        for name, variables in layers.items():
            group = root.create_group(name)
            group.attrs["weight_names"] = [w.encode() for w in variables]
            for wname, value in variables.items():
                group.create_dataset(wname, data=value.astype(np.float32))
    return path


@pytest.mark.parametrize("full_model", [True, False], ids=["model.save", "save_weights"])
def test_both_legacy_layouts_read_the_same_arrays(tmp_path, full_model):
    layers = read_h5_layers(write_legacy(tmp_path / "w.h5", full_model=full_model))
    assert [layer.name for layer in layers] == ["conv1_conv", "stack_1_block_1/mbconv/preact_bn"]  # no empty layers
    conv, bn = layers
    assert [k for k, _ in conv.weights] == ["conv1_conv/kernel", "conv1_conv/bias"]
    np.testing.assert_array_equal(conv.weights[0][1], LAYERS["conv1_conv"]["conv1_conv/kernel:0"].astype(np.float32))
    assert [k.rsplit("/", 1)[1] for k, _ in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]


def test_bare_variable_names_get_their_layer_prefix(tmp_path):
    path = write_legacy(tmp_path / "k3.h5", full_model=False, layers={"fc": {"kernel": RNG.normal(size=(2, 3))}})
    assert [k for k, _ in read_h5_layers(path)[0].weights] == ["fc/kernel"]


def test_not_hdf5_not_keras_and_damaged_files_are_named(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    with pytest.raises(InvalidInputError, match=r"notes\.h5: not an HDF5 weights file"):
        read_h5_layers(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(InvalidInputError, match=r"other\.h5: an HDF5 file, but not a legacy Keras weights file"):
        read_h5_layers(other)
    damaged = write_legacy(tmp_path / "damaged.h5", full_model=True)
    with h5py.File(damaged, "a") as f:
        del f["model_weights/conv1_conv/conv1_conv/bias:0"]
    with pytest.raises(InvalidInputError, match=r"damaged\.h5: a damaged Keras weights file"):
        read_h5_layers(damaged)


def test_mismatch_error_counts_and_names_the_first_few():
    err = mismatch_error("w.h5", "timm levit_128", missing=[f"stages.{i}" for i in range(9)] + ["stages.0"],
                         unexpected=["conv1_conv"], mismatched=["a (1,) -> b (2,)"])
    msg = str(err)
    assert msg.startswith("w.h5: weights do not fit timm levit_128: ")
    assert ("9 layer(s) of the architecture are missing from the file "
            "(stages.0, stages.1, stages.2, stages.3, stages.4, ...)") in msg
    assert "1 layer(s) of the file are unexpected (conv1_conv)" in msg and "1 array(s) do not match" in msg


@pytest.mark.torch
def test_a_wrong_shape_in_a_ported_model_is_reported_not_loaded(tmp_path):
    """A converted array of another shape names the Keras variable and the PyTorch tensor, with both shapes."""
    from model_zoo.convert.keras_to_torch import load_keras_h5_into_torch
    from model_zoo.convert.ports import torch_architecture

    net = torch_architecture("harmonized_resnet50v2")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    layers = {"conv1_conv": {"conv1_conv/kernel:0": RNG.normal(size=(7, 7, 3, 32)),
                             "conv1_conv/bias:0": RNG.normal(size=32)}}
    with pytest.raises(InvalidInputError) as info:
        load_keras_h5_into_torch(net, write_legacy(tmp_path / "stem.h5", full_model=True, layers=layers),
                                 "harmonized_resnet50v2")
    msg = str(info.value)
    assert "conv1_conv/kernel (32, 3, 7, 7) -> stem.weight (64, 3, 7, 7)" in msg
    assert "missing from the file (stages.0.0.preact_bn" in msg  # everything else is missing
    assert all(np.array_equal(before[k], v) for k, v in net.state_dict().items())  # nothing was loaded
