"""The seven released harmonized models against the packages the authors built them with.

One child process (``tests/harmonized_support/kecam_reference.py``, with ``TF_USE_LEGACY_KERAS=1``
set in that child only) builds each architecture under Keras 2 with the authors' package and call
(tf-keras applications, ``efficientnet``, vit_keras 0.1, keras-cv-attention-models 1.4), gives it
seeded random weights, writes it as the released files are (legacy HDF5: ``model.save``; LeViT with
``save_weights``, the other layout ``load_weights`` accepts) and computes the reference logits and
saliency maps of two images with the authors' preprocessing. This process then loads the files
through alignbench as the catalog rows load them (Keras 3 for four, PyTorch for the three kecam
ones) and as PyTorch model folders written by ``alignbench models convert``, and compares.

"Relative" below is the largest absolute difference over the largest reference magnitude: logits
within 1e-4, maps within 1e-3. Models are built at reduced size where weights do not depend on it
(VGG16 32 px, ViT-B/16 32 px, MaxViT-T 64 px); the others at the catalog's 224 px, so that
``model_zoo.load(id, weights=FILE)`` runs on them unchanged.

Max pooling (VGG16, ResNet50V2) routes the gradient to the largest input of each window; where two
inputs are within float32 rounding of each other, the gradient goes to either, and TensorFlow with
oneDNN, TensorFlow without it, Keras 3 and PyTorch round differently (measured here: 3e-3 of the
map's maximum for ResNet50V2 at 224 px between tf-keras and both Keras 3 and PyTorch, 2e-2 for VGG16
between TensorFlow builds). Those two are therefore compared in float64 on both sides (model input,
no resize), where no such near-ties occur, to the same tolerances; in float32 their logits are
compared to 1e-4 and their maps only to 5e-2 in relative L2 norm, which still catches a padding or
layout error (those move the whole map).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from model_zoo import get_spec, load, wrap
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.frameworks import import_tensorflow, import_torch

torch = import_torch()
import_tensorflow()

pytestmark = [pytest.mark.slow, pytest.mark.tf, pytest.mark.torch]

ROOT = Path(__file__).resolve().parents[1]
LOGITS_RTOL, MAPS_RTOL = 1e-4, 1e-3


def _has_avx512() -> bool:
    try:
        return "avx512f" in open("/proc/cpuinfo").read()
    except OSError:
        return False


# LeViT-128's float32 input gradients differ between the Keras 2 reference and PyTorch by more than
# elsewhere on CPUs without AVX-512, where the two take other float32 kernels: measured on an AVX2-only
# AMD EPYC, maps 1.24e-3 of their maximum (relative L2 8.4e-4, spread over the map) while the logits
# agree to 7.2e-7; on the AVX-512 EPYC the same comparison gave <= 2.1e-6. A layout or weight error
# moves the maps by O(1), so a bound of 2e-3 there still catches one.
MAPS_RTOL_BY_MODEL = {} if _has_avx512() else {"harmonized_levit_128": 2e-3}
# id -> (input size, file layout)
MODELS = {
    "harmonized_vgg16": (32, "model"),
    "harmonized_resnet50v2": (224, "model"),
    "harmonized_efficientnet_b0": (224, "model"),
    "harmonized_vit_b16": (32, "model"),
    "harmonized_convnext_tiny": (224, "model"),
    "harmonized_maxvit_tiny": (64, "model"),
    "harmonized_levit_128": (224, "weights"),
}
# max-pooling networks -> the input size of their float64 comparison (ResNet50V2 is size-independent)
MAX_POOLING = {"harmonized_vgg16": 32, "harmonized_resnet50v2": 64}
MAPS_L2_FLOAT32_MAX_POOLING = 5e-2
KERAS_ROWS = [m for m in MODELS if get_spec(m).framework == "keras"]
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Reference:
    model_id: str
    size: int
    h5: Path
    logits: np.ndarray
    saliency: np.ndarray
    inputs64: np.ndarray | None = None
    logits64: np.ndarray | None = None
    saliency64: np.ndarray | None = None


@pytest.fixture(scope="session")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(14)
    return rng.uniform(0, 255, (2, 224, 224, 3)).astype(np.float32), np.array([3, 517])


@pytest.fixture(scope="session")
def references(tmp_path_factory, images) -> dict[str, Reference]:
    """Build, save and run all seven originals in one Keras 2 child process."""
    folder = tmp_path_factory.mktemp("harmonized-keras2")
    x, labels = images
    np.save(folder / "images.npy", x)
    np.save(folder / "labels.npy", labels)
    entries = []
    for seed, (model_id, (size, layout)) in enumerate(MODELS.items()):
        entry = {"id": model_id, "size": size, "format": layout, "seed": 100 + seed,
                 "h5": str(folder / f"{model_id}.h5"), "out": str(folder / f"{model_id}.npz")}
        if model_id in MAX_POOLING:
            side = MAX_POOLING[model_id]
            inputs = np.random.default_rng(seed).uniform(0, 255, (2, side, side, 3))
            np.save(folder / f"{model_id}-inputs64.npy", (inputs / 255 - MEAN) / STD)
            entry["float64_inputs"] = str(folder / f"{model_id}-inputs64.npy")
        entries.append(entry)
    job = folder / "job.json"
    job.write_text(json.dumps({"images": str(folder / "images.npy"), "labels": str(folder / "labels.npy"),
                               "models": entries}))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "tests.harmonized_support.kecam_reference", str(job)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"Keras 2 reference child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    out = {}
    for entry in entries:
        with np.load(entry["out"]) as npz:
            arrays = {k: npz[k] for k in npz.files}
        inputs64 = np.load(entry["float64_inputs"]) if "float64_inputs" in entry else None
        out[entry["id"]] = Reference(entry["id"], entry["size"], Path(entry["h5"]), arrays["logits"],
                                     arrays["saliency"], inputs64, arrays.get("logits64"), arrays.get("saliency64"))
    return out


def relative(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(np.asarray(ours, np.float64) - ref).max() / np.abs(ref).max())


def assert_parity(logits, maps, ref_logits, ref_maps, what: str) -> tuple[float, float]:
    assert logits.shape == ref_logits.shape and maps.shape == ref_maps.shape, what
    assert np.ptp(ref_logits) > 0 and ref_maps.max() > 0, f"{what}: a degenerate reference compares nothing"
    e_logits, e_maps = relative(logits, ref_logits), relative(maps, ref_maps)
    print(f"\n{what}: logits {e_logits:.1e}, maps {e_maps:.1e}")
    assert e_logits <= LOGITS_RTOL, f"{what}: logits differ by {e_logits:.2e} of their largest magnitude"
    bound = MAPS_RTOL_BY_MODEL.get(what.split(" ")[0], MAPS_RTOL)
    assert e_maps <= bound, f"{what}: saliency maps differ by {e_maps:.2e} of their maximum (bound {bound:g})"
    return e_logits, e_maps


def adapter_at(model_id: str, ref: Reference):
    """``model_zoo.load(id, weights=FILE)`` at the catalog size; at a reduced size, the same
    builder with the row's spec at that size (the adapter resizes the 224 px images to it)."""
    if ref.size == get_spec(model_id).input_size:
        return load(model_id, weights=ref.h5)
    from model_zoo.builders import harmonized
    from model_zoo.weights import WeightsRequest

    spec = replace(get_spec(model_id), input_size=ref.size)
    built = harmonized.build(spec, WeightsRequest("file", ref.h5))
    return wrap(built.model, spec.preprocess(), spec=spec, weights_sha256=built.weights_sha256)


def torch_float64_parity(module, ref: Reference, labels: np.ndarray) -> None:
    """``module`` (a float32 PyTorch model) in float64 at the model input, against the float64 reference."""
    net = copy.deepcopy(module).double().eval()
    x = torch.from_numpy(ref.inputs64).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    logits = net(x)
    (grad,) = torch.autograd.grad(logits.gather(1, torch.from_numpy(labels).view(-1, 1)).sum(), x)
    maps = grad.abs().amax(dim=1).numpy()
    assert_parity(logits.detach().numpy(), maps, ref.logits64, ref.saliency64, f"{ref.model_id} PyTorch float64")


def keras_float64_parity(model_id: str, ref: Reference, labels: np.ndarray) -> None:
    """The catalog's Keras model of ``model_id``, built in float64 from the same file, against the float64 reference."""
    import keras
    import tensorflow as tf

    from model_zoo.builders import harmonized
    from model_zoo.weights import WeightsRequest

    spec = replace(get_spec(model_id), input_size=ref.inputs64.shape[1])
    old = keras.config.floatx(), keras.config.dtype_policy()
    # both: layers take the global dtype policy once one exists, inputs the floatx (also when called)
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        model = harmonized.build(spec, WeightsRequest("file", ref.h5)).model
        x = tf.constant(ref.inputs64)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model(x, training=False)
            target = tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))
        maps = tf.reduce_max(tf.abs(tape.gradient(target, x)), axis=-1).numpy()
    finally:
        keras.config.set_floatx(old[0])
        keras.config.set_dtype_policy(old[1])
    assert_parity(logits.numpy(), maps, ref.logits64, ref.saliency64, f"{model_id} Keras 3 float64")


def float32_max_pooling_parity(logits, maps, ref: Reference, what: str) -> None:
    e_logits = relative(logits, ref.logits)
    e_l2 = float(np.linalg.norm(maps - ref.saliency) / np.linalg.norm(ref.saliency))
    print(f"\n{what} float32: logits {e_logits:.1e}, maps {relative(maps, ref.saliency):.1e} (max), {e_l2:.1e} (L2)")
    assert e_logits <= LOGITS_RTOL, f"{what}: logits differ by {e_logits:.2e} of their largest magnitude"
    assert e_l2 <= MAPS_L2_FLOAT32_MAX_POOLING, f"{what}: saliency maps differ by {e_l2:.2e} in relative L2 norm"


# ---------------------------------------------------------------------- the catalog rows, as they load
@pytest.mark.parametrize("model_id", KERAS_ROWS)
def test_keras_rows_match_their_keras_2_originals(model_id, references, images):
    ref = references[model_id]
    adapter = adapter_at(model_id, ref)
    assert adapter.framework == "keras" and adapter.weights_sha256 == sha256_file(ref.h5)
    logits, maps = adapter.predict_and_saliency(*images)
    if model_id in MAX_POOLING:  # see the module docstring
        float32_max_pooling_parity(logits, maps, ref, f"{model_id} Keras 3")
        keras_float64_parity(model_id, ref, images[1])
    else:
        assert_parity(logits, maps, ref.logits, ref.saliency, f"{model_id} Keras 3")


@pytest.mark.parametrize("model_id", [m for m in MODELS if m not in KERAS_ROWS])
def test_kecam_rows_run_in_pytorch_and_match_kecam(model_id, references, images, tmp_path):
    """The catalog row (PyTorch), and its converted folder, which holds the same weights."""
    from model_zoo.convert.export import convert

    ref = references[model_id]
    adapter = adapter_at(model_id, ref)
    assert adapter.framework == "torch" and adapter.weights_sha256 == sha256_file(ref.h5)
    logits, maps = adapter.predict_and_saliency(*images)
    assert_parity(logits, maps, ref.logits, ref.saliency, f"{model_id} catalog row (PyTorch)")
    meta = convert(replace(get_spec(model_id), input_size=ref.size), tmp_path / "torch", weights=ref.h5)
    folder = load(meta.parent)
    assert folder.spec.id == f"{model_id}_torch" and folder.spec.harmonized
    np.testing.assert_allclose(folder.predict(images[0]), logits, rtol=1e-6, atol=1e-6 * np.abs(logits).max())


# ---------------------------------------------------------------------- PyTorch folders of the Keras rows
@pytest.mark.parametrize("model_id", KERAS_ROWS)
def test_converted_folder_matches_the_keras_original(model_id, references, images, tmp_path):
    from model_zoo.convert.export import convert

    ref = references[model_id]
    spec = replace(get_spec(model_id), input_size=ref.size)
    meta = convert(spec, tmp_path / "torch", weights=ref.h5)
    doc = json.loads(meta.read_text())
    assert doc["architecture"]["source"] == "harmonized_torch" and doc["architecture"]["source_id"] == model_id
    assert doc["architecture"]["converted_from_sha256"] == sha256_file(ref.h5)
    adapter = load(tmp_path / "torch")
    assert adapter.framework == "torch" and adapter.spec.base_model == get_spec(model_id).base_model
    logits, maps = adapter.predict_and_saliency(*images)
    if model_id in MAX_POOLING:  # see the module docstring
        float32_max_pooling_parity(logits, maps, ref, f"{model_id} PyTorch folder")
        torch_float64_parity(adapter.module, ref, images[1])
    else:
        assert_parity(logits, maps, ref.logits, ref.saliency, f"{model_id} PyTorch folder")


def test_cli_converts_resnet50v2_for_run(references, images, tmp_path, clickme_dir, capsys):
    """The issue's command: ``alignbench models convert harmonized_resnet50v2 --to torch OUT``, then
    ``model_zoo.load(OUT)`` and ``alignbench run --model OUT`` take the folder."""
    from alignbench.cli import main

    ref = references["harmonized_resnet50v2"]
    out = tmp_path / "resnet50v2-torch"
    argv = ["models", "convert", "harmonized_resnet50v2", str(out), "--to", "torch", "--weights", str(ref.h5)]
    assert main(argv) == 0
    assert str(out) in capsys.readouterr().out
    adapter = load(out)
    assert relative(adapter.predict(images[0]), ref.logits) <= LOGITS_RTOL
    results = tmp_path / "results"
    assert main(["run", "--dataset", str(clickme_dir), "--model", str(out), "--results", str(results),
                 "--limit", "2", "--batch-size", "2", "--no-progress"]) == 0
    records = [p for p in results.rglob("*.json") if "harmonized_resnet50v2_torch" in p.name]
    assert records, f"no record for the converted model under {results}"


# ---------------------------------------------------------------------- wrong files
@pytest.mark.parametrize("model_id, other", [("harmonized_maxvit_tiny", "harmonized_resnet50v2"),
                                             ("harmonized_efficientnet_b0", "harmonized_levit_128")])
def test_a_file_of_another_architecture_is_one_clear_error(model_id, other, references, tmp_path):
    with pytest.raises(InvalidInputError) as info:
        load(model_id, weights=references[other].h5)
    msg = str(info.value)
    assert str(references[other].h5) in msg and "weights do not fit" in msg
    assert "missing from the file" in msg and "unexpected" in msg and "Traceback" not in msg
    first_file_layer = {"harmonized_resnet50v2": "conv1_conv", "harmonized_levit_128": "stem_1_conv"}[other]
    assert first_file_layer in msg and len(msg) < 1500
    from model_zoo.convert.export import convert

    with pytest.raises(InvalidInputError, match=r"\d+ layer\(s\) of the file are unexpected"):
        convert(model_id, tmp_path / "out", weights=references[other].h5)
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_keras_weights_is_named(tmp_path):
    bad = tmp_path / "notes.h5"
    bad.write_text("not hdf5")
    with pytest.raises(InvalidInputError, match=r"notes\.h5: not an HDF5 weights file"):
        load("harmonized_levit_128", weights=bad)
