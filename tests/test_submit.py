"""``alignbench submit``: every way of giving a model produces a valid bundle with the runner's scores."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark import records
from alignbench.cli import main
from tests.leaderboard_support import ARCH, make_bundle, meta, require_sandbox

pytestmark = pytest.mark.torch

CLI_META = ["--name", "Ada Tester", "--model-name", "Tiny Net", "--description", "tiny", "--licence", "MIT",
            "--family", "cnn", "--top1", "12.5", "--top1-method", "timm validate.py, ImageNet val"]


@pytest.fixture(scope="module")
def timm_bundle(tmp_path_factory, clickme_dir):
    """The CLI run once: `alignbench submit --timm test_resnet --timm-weights random` on the synthetic shards."""
    results = tmp_path_factory.mktemp("submit-results")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["submit", "--timm", ARCH, "--timm-weights", "random", *CLI_META, "--id", "tiny-net",
                   "--dataset", str(clickme_dir), "--results", str(results), "--device", "cpu", "--no-progress"])
    return rc, out.getvalue(), results / "submissions" / "tiny-net", results


def test_cli_submit_writes_a_complete_bundle_and_says_what_to_send(timm_bundle, clickme_dataset):
    rc, printed, bundle, _ = timm_bundle
    assert rc == 0, printed
    name = clickme_dataset.name
    sub = json.loads((bundle / "submission.json").read_text())
    assert sub["schema"] == "alignbench.submission/1" and sub["id"] == "tiny-net" and sub["preview"] is False
    assert sub["submitter"]["name"] == "Ada Tester"
    assert sub["model"]["licence"] == "MIT" and sub["model"]["description"] == "tiny"
    assert sub["top1"] == {"claimed": 12.5, "method": "timm validate.py, ImageNet val"}
    source = sub["model"]["source"]
    assert {k: source[k] for k in ("kind", "architecture", "weights")} == {"kind": "timm", "architecture": ARCH,
                                                                         "weights": "random"}
    from leaderboard.architecture import preprocess_json
    from leaderboard.loading import timm_preprocess
    import timm

    expected = preprocess_json(timm_preprocess(timm.create_model(ARCH)))
    assert source["preprocess"] == expected and "timm data config of test_resnet" in source["preprocess_origin"]
    assert len(sub["model"]["weights_sha256"]) == 64 and sub["datasets"] == [name]
    assert sub["provenance"]["alignbench_version"] and sub["provenance"]["date"]
    rec = records.read_record(bundle / name / "tiny-net.json")
    assert rec["status"] == "ok" and rec["n_images"] == clickme_dataset.num_images() == 25
    assert rec["weights"] == "random" and rec["preprocess"] == expected  # the record says what was scored
    assert rec["dataset_fingerprint"] == clickme_dataset.fingerprint()
    assert rec["weights_sha256"] == sub["model"]["weights_sha256"]
    assert rec["top1_published"] == 12.5 and "claimed" in rec["top1_source"]
    scores = records.read_scores(bundle / name / "tiny-net.scores.csv")
    assert len(scores["image_id"]) == 25 and np.isfinite(scores["spearman"].astype(float)).all()
    assert (bundle / name / "_ceiling.json").is_file()
    assert not (bundle / name / ".partial").exists()
    # what to do next, and the preprocessing it was scored with
    assert "alignbench leaderboard validate" in printed and str(bundle) in printed and "pull request" in printed
    assert f"preprocessing: input {expected['input_size']} px {expected['interpolation']}" in printed


def test_a_fresh_bundle_validates(timm_bundle, clickme_dataset):
    from leaderboard.validate import validate_bundles

    _, _, bundle, results = timm_bundle
    report = validate_bundles([bundle], results_dir=results, datasets={clickme_dataset.name: clickme_dataset})
    assert report.ok, report.format()


def test_random_timm_weights_are_reproducible_so_a_weights_file_gives_the_same_scores(timm_bundle, clickme_dataset,
                                                                                      tmp_path):
    """The seeded random model saved as safetensors and submitted with --weights/--architecture
    scores exactly like the timm submission, and the bundle records the file's sha256."""
    from safetensors.torch import save_file

    from leaderboard.loading import ModelSource, SubmittedSpec, load_adapter
    from model_zoo.fileio import sha256_file

    _, _, bundle, _ = timm_bundle
    adapter = load_adapter(ModelSource("timm", name=ARCH, weights="random"),
                           SubmittedSpec("x", "x", None, ""), device="cpu")
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in adapter.module.state_dict().items()}, str(path))
    from leaderboard.submit import submit

    res = submit(ModelSource("weights", name=ARCH, path=path, timm_config=True), meta(), datasets=[clickme_dataset],
                 results_dir=tmp_path / "r", submission_id="tiny-file", device="cpu", progress=False,
                 include_weights=True)
    assert res.ok
    rec = records.read_record(res.bundle / clickme_dataset.name / "tiny-file.json")
    assert rec["weights"] == f"file:{sha256_file(path)}"  # never "pretrained" for a user's file
    assert res.submission["model"]["source"]["preprocess_origin"].startswith("--preprocess timm")
    name = clickme_dataset.name
    a = records.read_scores(bundle / name / "tiny-net.scores.csv")
    b = records.read_scores(res.bundle / name / "tiny-file.scores.csv")
    np.testing.assert_allclose(a["spearman"].astype(float), b["spearman"].astype(float), atol=1e-5)
    assert list(a["pred"]) == list(b["pred"])
    assert res.submission["model"]["weights_sha256"] == sha256_file(path)
    assert res.submission["model"]["source"]["file_sha256"] == sha256_file(path)
    assert (res.bundle / "model" / "weights.safetensors").is_file()
    # maintainers verify it from the weights the bundle carries
    from leaderboard.verify import verify_bundle

    [report] = verify_bundle(res.bundle, n_images=3, seed=1, datasets={name: clickme_dataset}, device="cpu")
    assert report.ok, report.format()


def test_a_torch_state_dict_file_is_read_safely_and_converted_to_safetensors(clickme_dataset, tmp_path):
    import torch

    from leaderboard.loading import ModelSource, parse_preprocess
    from leaderboard.submit import submit

    timm = pytest.importorskip("timm")
    state = timm.create_model(ARCH, num_classes=1000).state_dict()
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    res = submit(ModelSource("weights", name=ARCH, path=path, preprocess=parse_preprocess("imagenet"),
                             preprocess_given=True, preprocess_from="--preprocess imagenet"), meta(),
                 datasets=[clickme_dataset], results_dir=tmp_path / "r", submission_id="tiny-pt", device="cpu",
                 progress=False, include_weights=True, limit=4)
    assert res.ok and res.submission["preview"] is True
    from safetensors.torch import load_file

    stored = load_file(str(res.bundle / "model" / "weights.safetensors"))
    assert set(stored) == set(state)
    assert all(torch.equal(stored[k], state[k]) for k in state)
    assert "PREVIEW" in res.instructions


@pytest.mark.tf
def test_a_keras_model_file_is_submitted(clickme_dataset, tmp_path):
    from model_zoo.frameworks import import_tensorflow

    import_tensorflow()
    import keras

    from leaderboard.loading import ModelSource
    from leaderboard.submit import submit

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1000)(x))
    path = tmp_path / "tiny.keras"
    model.save(path)
    with pytest.raises(Exception, match="--preprocess is required"):
        ModelSource("keras", path=path)
    from leaderboard.loading import parse_preprocess

    source = ModelSource("keras", path=path, preprocess=parse_preprocess('{"input_size": 32, "mean": [0.5, 0.5, 0.5], '
                                                                         '"std": [0.5, 0.5, 0.5]}'),
                         preprocess_given=True)
    res = submit(source, meta(), datasets=[clickme_dataset], results_dir=tmp_path, submission_id="tiny-keras",
                 device="cpu", progress=False, limit=5)
    assert res.ok, res.instructions
    rec = records.read_record(res.bundle / clickme_dataset.name / "tiny-keras.json")
    assert rec["framework"] == "keras" and rec["n_images"] == 5
    assert res.submission["model"]["source"]["kind"] == "keras"
    assert res.submission["model"]["source"]["preprocess"]["input_size"] == 32


@pytest.mark.slow
def test_a_plugin_is_built_in_the_sandbox_and_scored(clickme_dataset, tmp_path):
    require_sandbox()
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(
        "import os\n"
        "import timm\n"
        f"ARCHITECTURE = {{'library': 'timm', 'name': '{ARCH}', 'kwargs': {{'num_classes': 1000}}}}\n"
        "PREPROCESS = {'mean': [0.5, 0.5, 0.5], 'std': [0.25, 0.25, 0.25], 'input_size': 128}\n"
        "def build_model():\n"
        "    open(os.path.join(os.getcwd(), 'pid.txt'), 'w').write(str(os.getpid()))\n"
        f"    return timm.create_model('{ARCH}', num_classes=1000)\n")
    from leaderboard.loading import ModelSource
    from leaderboard.sandbox import Limits
    from leaderboard.submit import submit

    import sys

    res = submit(ModelSource("plugin", path=plugin), meta(), datasets=[clickme_dataset], results_dir=tmp_path / "r",
                 submission_id="tiny-plugin", device="cpu", progress=False, limit=3, include_weights=True,
                 limits=Limits(timeout_s=300, memory_mb=8192))
    assert res.ok, res.instructions
    assert "alignbench_submission_plugin" not in sys.modules  # the leaderboard process never imported it
    assert (res.bundle / "model" / "plugin.py").read_text() == plugin.read_text()
    arch = json.loads((res.bundle / "model" / "architecture.json").read_text())
    assert arch["framework"] == "torch" and arch["name"] == ARCH
    source = res.submission["model"]["source"]
    assert source["preprocess"]["std"] == [0.25, 0.25, 0.25] and source["preprocess"]["input_size"] == 128
    assert source["preprocess_origin"] == "declared by the plugin (PREPROCESS)" and source["sandboxed"] is True
    assert (res.bundle / "model" / "weights.safetensors").is_file()
    # verify rebuilds it from the exported architecture + safetensors: no plugin code runs again
    from leaderboard.verify import verify_bundle

    [report] = verify_bundle(res.bundle, n_images=2, seed=0, datasets={clickme_dataset.name: clickme_dataset},
                             device="cpu")
    # every re-scored image matches; the bundle as a whole is a preview (3 of 25 images), which verify says
    assert report.mismatches == [] and len(report.checked) == 2, report.format()
    assert {m.field for m in report.bundle_mismatches} == {"n_images", "image-id set"}
    assert any("no plugin code run" in n for n in report.notes)


@pytest.mark.parametrize("args, message", [
    (["--top1", "80"], "top1.method: required"),
    (["--top1", "180", "--top1-method", "x"], "top1.claimed"),
    (["--family", "dragons"], "model.family"),
    (["--id", "../../escape"], "not allowed as a file name"),
    (["--id", "BagNet17"], "is a catalog model id"),
])
def test_bad_submissions_fail_with_a_message_naming_the_field(args, message, tmp_path, capsys, clickme_dir):
    base = ["submit", "--timm", ARCH, "--timm-weights", "random", "--name", "A", "--model-name", "M",
            "--description", "d", "--licence", "MIT", "--dataset", str(clickme_dir), "--results", str(tmp_path),
            "--device", "cpu", "--no-progress"]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err
    assert not any((tmp_path / "submissions").glob("*/submission.json"))


def test_an_existing_bundle_is_not_overwritten_without_force(timm_bundle, clickme_dir, capsys):
    _, _, bundle, results = timm_bundle
    before = (bundle / "submission.json").read_text()
    rc = main(["submit", "--timm", ARCH, "--timm-weights", "random", *CLI_META, "--id", "tiny-net",
               "--dataset", str(clickme_dir), "--results", str(results), "--device", "cpu", "--no-progress"])
    assert rc == 2 and "--force" in capsys.readouterr().err
    assert (bundle / "submission.json").read_text() == before


def test_weights_and_architecture_must_come_together(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"x")
    assert main(["submit", "--weights", str(path), "--name", "A", "--model-name", "M", "--description", "d",
                 "--licence", "MIT"]) == 2
    assert "--architecture" in capsys.readouterr().err


def test_make_bundle_helper_matches_the_cli(timm_bundle, clickme_dataset, tmp_path):
    """The library call the other leaderboard tests use gives the same scores as the CLI."""
    _, _, bundle, _ = timm_bundle
    res = make_bundle(tmp_path, clickme_dataset)
    a = records.read_scores(bundle / clickme_dataset.name / "tiny-net.scores.csv")
    b = records.read_scores(res.bundle / clickme_dataset.name / "tiny-net.scores.csv")
    np.testing.assert_array_equal(a["spearman"], b["spearman"])


def test_a_weights_file_without_preprocess_is_refused_naming_the_guess(tmp_path, capsys, clickme_dir):
    """Issue 19: timm's data config for an architecture is only a guess for somebody's own weights."""
    from safetensors.torch import save_file
    import timm

    path = tmp_path / "w.safetensors"
    save_file(timm.create_model(ARCH).state_dict(), str(path))
    rc = main(["submit", "--weights", str(path), "--architecture", ARCH, *CLI_META, "--dataset", str(clickme_dir),
               "--results", str(tmp_path / "r"), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "would only be a guess" in err and "--preprocess timm" in err and "mean (0.5, 0.5, 0.5)" in err
    assert not (tmp_path / "r" / "submissions").exists() or not any((tmp_path / "r" / "submissions").iterdir())


def test_a_plugin_export_without_preprocess_is_a_guess(tmp_path):
    import timm
    from safetensors.torch import save_model

    from leaderboard.loading import model_from_export

    (tmp_path / "architecture.json").write_text(json.dumps({"framework": "torch", "library": "timm", "name": ARCH,
                                                            "kwargs": {"num_classes": 1000}, "preprocess": None}))
    save_model(timm.create_model(ARCH), str(tmp_path / "weights.safetensors"))
    _, resolved, _, _ = model_from_export(tmp_path)
    assert resolved.guess and resolved.origin.startswith("guessed")


@pytest.mark.tf
def test_the_caffe_preset_is_keras_preprocess_input_exactly():
    """The preset comes from the catalog's exact Keras constants (not rounded means): applying it to
    pixels gives what keras.applications' caffe preprocess_input gives, to float32 precision."""
    from model_zoo.frameworks import import_tensorflow

    import_tensorflow()
    from keras.applications import imagenet_utils

    from leaderboard.loading import preset

    pixels = np.array([[[[0.0, 0.0, 0.0], [255.0, 128.0, 7.0], [12.0, 200.0, 99.0]]]], dtype=np.float64)
    keras_out = imagenet_utils.preprocess_input(pixels.copy(), mode="caffe")  # BGR, mean subtracted
    p = preset("caffe")
    gain, offset = p.affine()
    ours = (pixels * np.array(gain) + np.array(offset))[..., ::-1]  # RGB -> BGR as the adapters do
    assert p.channel_order == "BGR"
    np.testing.assert_allclose(ours, keras_out, atol=1e-4)
    # the old rounded means were ~0.1-0.3 grey levels off
    assert np.abs(np.array(p.mean) * 255 - np.array([0.485, 0.458, 0.408]) * 255).max() > 0.05


def test_a_state_dict_with_other_key_names_lists_missing_and_unexpected_keys(tmp_path):
    import timm
    from safetensors.torch import save_file

    from leaderboard.loading import ModelSource, SubmittedSpec, load_adapter
    from model_zoo.errors import InvalidInputError

    state = {f"backbone.{k}": v.contiguous() for k, v in timm.create_model(ARCH).state_dict().items()}
    path = tmp_path / "prefixed.safetensors"
    save_file(state, str(path))
    with pytest.raises(InvalidInputError) as info:
        load_adapter(ModelSource("weights", name=ARCH, path=path, timm_config=True), SubmittedSpec("x", "x", None, ""))
    text = str(info.value)
    n = len(state)
    assert f"{n} missing key(s): " in text and f"{n} unexpected key(s): backbone." in text
    assert f"... {n - 5} more" in text and text.count("backbone.") == 5
