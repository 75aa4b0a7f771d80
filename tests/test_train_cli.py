"""``alignbench train`` end to end on generated ClickMe-format shards: a tiny timm model learns to
follow the maps, its export loads with ``model_zoo.load`` and ``alignbench run`` scores it."""
from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # before TensorFlow (import order rule)
pytest.importorskip("timm")
pytest.importorskip("tensorflow")

pytestmark = [pytest.mark.torch, pytest.mark.tf, pytest.mark.slow]

SIZE = 32  # train the 160px test_resnet at 32px: the pyramid still has 5 levels (32 -> 2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from benchmark.datasets.synthetic import write_clickme_shards

    folder = tmp_path_factory.mktemp("clickme")
    write_clickme_shards(folder, 16, n_shards=2, n_participants=2, split="train", n_classes=4)
    return folder


def _argv(data, out, *extra):
    return ["train", "--model", "test_resnet", "--data", str(data), "--output", str(out), "--batch-size", "8",
            "--epochs", "4", "--lr", "0.1", "--warmup-epochs", "0", "--mixup-alpha", "0", "--lambda", "10",
            "--shuffle-buffer", "16", "--set", "tensorboard=false", "--set", f"input_size={SIZE}", *extra]


def _harmonization_on(model, batch) -> float:
    import torch.nn.functional as F

    from model_zoo.harmonization.loss_torch import harmonizer_loss

    x = torch.from_numpy(batch.images).permute(0, 3, 1, 2)
    x = F.interpolate(x, (SIZE, SIZE), mode="bilinear", align_corners=False) / 255.0
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = F.interpolate(torch.from_numpy(batch.heatmaps)[:, None], (SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    model.train()  # batch statistics, as during training (8 steps leave BN running stats unsettled)
    out = harmonizer_loss(model, x, torch.from_numpy(batch.labels), h, torch.ones(len(x)))
    return out["harmonization"].item()


def test_train_cli_harmonizes_exports_and_runs(shards, tmp_path, capsys):
    import timm

    import model_zoo
    from alignbench.cli import main
    from benchmark.datasets import get_dataset

    out = tmp_path / "run"
    assert main(_argv(shards, out)) == 0
    assert "exported model" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # 16 images / 8 per batch x 4 epochs
    assert all(float(r["harmonization"]) > 0 for r in rows)

    # the harmonizer term on the same images: the initial network (seed 0) vs the trained export
    batch = next(iter(get_dataset(str(shards)).batches(16)))
    torch.manual_seed(0)
    before = _harmonization_on(timm.create_model("test_resnet", num_classes=1000), batch)
    adapter = model_zoo.load(out / "export")
    after = _harmonization_on(adapter.module, batch)
    assert after < 0.9 * before, (before, after)

    doc = json.loads((out / "export" / "alignbench_model.json").read_text())
    assert doc["harmonized"] is True and doc["architecture"] == {"source": "timm", "source_id": "test_resnet"}
    assert doc["preprocess"]["input_size"] == SIZE and doc["training"]["steps"] == 8
    maps = adapter.saliency(batch.images[:2], batch.labels[:2])
    assert maps.shape == (2, 224, 224) and np.isfinite(maps).all()

    # `alignbench run --model <export folder>` scores it
    results = tmp_path / "results"
    assert main(["run", "--model", str(out / "export"), "--dataset", str(shards), "--results", str(results),
                 "--limit", "4", "--batch-size", "4", "--device", "cpu", "--no-progress"]) == 0
    records = [p for p in results.rglob("*.json") if "alignbench_model" not in p.name]
    assert records, list(results.rglob("*"))

    # the same command again resumes from the final checkpoint: nothing left to do
    assert main(_argv(shards, out)) == 0
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 8


def test_train_cli_baseline_and_bad_options(shards, tmp_path, capsys):
    from alignbench.cli import main

    out = tmp_path / "base"
    assert main(_argv(shards, out, "--no-harmonize", "--steps", "2")) == 0
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and all(float(r["harmonization"]) == 0 for r in rows)
    doc = json.loads((out / "export" / "alignbench_model.json").read_text())
    assert doc["harmonized"] is False and re.fullmatch(r"test_resnet-baseline-[0-9a-f]{8}", doc["id"]), doc["id"]
    printed = capsys.readouterr()
    assert "trained 2 steps ->" in printed.out and "2/2" in printed.err  # the step bar (stderr)

    # resumed with a longer budget: it says where it resumed and counts only the steps it took now
    assert main(_argv(shards, out, "--no-harmonize", "--steps", "4")) == 0
    printed = capsys.readouterr()
    assert "trained 2 steps, resumed at step 2 of 4 ->" in printed.out, printed.out
    assert "4/4" in printed.err and len(list(csv.DictReader(open(out / "metrics.csv")))) == 4
    assert main(_argv(shards, tmp_path / "x", "--set", "no_such_option=1")) == 2
    assert "unknown training option 'no_such_option'" in capsys.readouterr().err
    assert main(_argv(tmp_path / "missing", tmp_path / "y")) == 2
    assert "missing" in capsys.readouterr().err


def test_train_cli_tensorflow_framework(shards, tmp_path):
    """--framework tf: a registered tiny Keras model, default strategy, export loads as Keras."""
    import keras

    import model_zoo
    from alignbench.cli import main
    from model_zoo.registry import register_model, unregister_model

    @register_model("tiny_keras_cli", family="cnn", framework="keras")
    def tiny_keras(pretrained, weights_path):
        inp = keras.Input((None, None, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", activation="tanh")(inp)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, keras.layers.Dense(1000)(x))

    try:
        out = tmp_path / "tf"
        argv = _argv(shards, out, "--framework", "tf", "--steps", "3")
        argv[argv.index("test_resnet")] = "tiny_keras_cli"
        assert main(argv) == 0
        rows = list(csv.DictReader(open(out / "metrics.csv")))
        assert len(rows) == 3 and all(float(r["harmonization"]) > 0 for r in rows)
        assert (out / "checkpoints" / "position.json").is_file()
        doc = json.loads((out / "export" / "alignbench_model.json").read_text())
        assert doc["framework"] == "keras" and re.fullmatch(r"tiny_keras_cli-harmonized-[0-9a-f]{8}", doc["id"])
        adapter = model_zoo.load(out / "export")
        images = np.full((2, 224, 224, 3), 128.0, np.float32)
        assert adapter.saliency(images, np.array([1, 2])).shape == (2, 224, 224)
    finally:
        unregister_model("tiny_keras_cli")


def test_train_cli_mixes_imagenet_folder_with_token_zero(shards, tmp_path):
    """--imagenet: an ImageFolder tree mixed in; steps_per_epoch counts both sources."""
    from PIL import Image

    from alignbench.cli import main

    root = tmp_path / "imagenet"
    rng = np.random.default_rng(0)
    for c in ("n01440764", "n01443537"):
        (root / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.JPEG")
    out = tmp_path / "mixed"
    assert main(_argv(shards, out, "--imagenet", str(root), "--clickme-fraction", "0.5", "--epochs", "1")) == 0
    doc = json.loads((out / "config.json").read_text())
    assert doc["steps_per_epoch"] == (16 + 16) // 8
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert 1 <= len(rows) <= 4 and all(float(r["cross_entropy"]) > 0 for r in rows)
