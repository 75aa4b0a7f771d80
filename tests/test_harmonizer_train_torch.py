"""The PyTorch harmonized trainer on tiny generated data: learning, resume, export, DDP."""
from __future__ import annotations

import csv
import json
import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from model_zoo.harmonization import trainer_torch  # noqa: E402
from model_zoo.harmonization.config import TrainConfig  # noqa: E402
from model_zoo.harmonization.models import Architecture  # noqa: E402
from model_zoo.preprocessing import Preprocess  # noqa: E402

pytestmark = pytest.mark.torch
SIZE, CLASSES = 16, 4


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Tanh(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, CLASSES))


ARCH = Architecture("tiny-harmonized", "Tiny (harmonized)", "cnn", "torch", "user", "tiny",
                    preprocess=Preprocess(input_size=SIZE, mean=(0.5,) * 3, std=(0.25,) * 3))


def generated_batches(n_batches: int = 4, batch: int = 8, seed: int = 0) -> list[dict]:
    """Images with a bright blob; the human map marks the blob; every other image has no map."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = []
    for _ in range(n_batches):
        cy, cx = rng.uniform(4, SIZE - 4, (2, batch))
        blob = np.exp(-((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2) / 6.0)
        labels = rng.integers(0, CLASSES, batch)
        images = 60 + 40 * rng.random((batch, SIZE, SIZE, 3)) + 150 * blob[..., None] * (labels[:, None, None, None] % 2)
        out.append({"images": images.astype(np.float32), "labels": labels, "heatmaps": blob.astype(np.float32),
                    "tokens": (np.arange(batch) % 2 == 0).astype(np.float32)})
    return out


def cfg(**kw) -> TrainConfig:
    base = dict(model="tiny", epochs=3, warmup_epochs=0, steps_per_epoch=4, batch_size=8, lr=0.05,
                mixup_alpha=0.0, checkpoint_every=0, num_classes=CLASSES, tensorboard=False, weight_decay=1e-4)
    base.update(kw)
    return TrainConfig(**base)


def test_harmonization_term_falls(tmp_path):
    data = generated_batches()
    res = trainer_torch.train(tiny_model(), data, cfg(epochs=5, lambda_harmonization=5.0), tmp_path, arch=ARCH, export=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    first = np.mean([float(r["harmonization"]) for r in rows[:4]])
    last = np.mean([float(r["harmonization"]) for r in rows[-4:]])
    assert last < 0.8 * first
    assert res.steps == 20


def test_baseline_has_no_harmonization_term(tmp_path):
    trainer_torch.train(tiny_model(), generated_batches(), cfg(epochs=1, harmonize=False), tmp_path, arch=ARCH, export=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert all(float(r["harmonization"]) == 0 for r in rows) and float(rows[0]["cross_entropy"]) > 0


class Crash(Exception):
    pass


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    config = cfg(epochs=2, checkpoint_every=2, mixup_alpha=1.0, mixup_prob=0.5, warmup_epochs=1)
    data = generated_batches()
    full = tiny_model()
    trainer_torch.train(full, data, config, tmp_path / "a", arch=ARCH, export=False)

    def crash_at_5(step, _):
        if step == 5:  # last checkpoint: step 4; steps 5 is lost and redone
            raise Crash

    with pytest.raises(Crash):
        trainer_torch.train(tiny_model(), data, config, tmp_path / "b", arch=ARCH, export=False, on_step=crash_at_5)
    resumed = tiny_model(seed=123)  # the checkpoint, not the init, must decide the result
    trainer_torch.train(resumed, data, config, tmp_path / "b", arch=ARCH, export=False)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "b" / "metrics.csv"))]
    assert steps == list(range(1, 9))


def test_resume_refuses_changed_recipe(tmp_path):
    from model_zoo.errors import InvalidInputError

    trainer_torch.train(tiny_model(), generated_batches(), cfg(epochs=1), tmp_path, arch=ARCH, export=False)
    with pytest.raises(InvalidInputError, match="batch_size"):
        trainer_torch.train(tiny_model(), generated_batches(), cfg(epochs=1, batch_size=16), tmp_path, arch=ARCH, export=False)


def test_export_folder_round_trips(tmp_path):
    from safetensors.torch import load_file

    from model_zoo.fileio import sha256_file

    model = tiny_model()
    res = trainer_torch.train(model, generated_batches(), cfg(epochs=1), tmp_path, arch=ARCH)
    doc = json.loads((res.export_dir / "alignbench_model.json").read_text())
    assert doc["format"] == "alignbench-model/1" and doc["framework"] == "torch" and doc["harmonized"] is True
    assert doc["family"] == "harmonized" and doc["training"]["steps"] == 4
    assert doc["weights_sha256"] == sha256_file(res.export_dir / doc["weights"])
    assert doc["preprocess"]["input_size"] == SIZE
    fresh = tiny_model(seed=7)
    fresh.load_state_dict(load_file(res.export_dir / "model.safetensors"))
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_batches_are_named(tmp_path):
    from model_zoo.errors import InvalidInputError

    bad = generated_batches(1)
    bad[0]["heatmaps"] = bad[0]["heatmaps"][:, :8]
    with pytest.raises(InvalidInputError, match="epoch 0 batch 0: heatmaps shape"):
        trainer_torch.train(tiny_model(), bad, cfg(epochs=1, steps_per_epoch=1), tmp_path, arch=ARCH)


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    model = tiny_model()
    data = generated_batches(n_batches=6, batch=4)
    res = trainer_torch.train(model, data, cfg(epochs=1, steps_per_epoch=3, batch_size=8), out, arch=ARCH, export=False)
    # parameters only: DDP re-broadcasts BN running statistics from rank 0 at each forward, so after
    # the last step each replica still holds its own local statistics
    torch.save({k: v.detach().clone() for k, v in model.named_parameters()}, os.path.join(out, f"rank{rank}.pt"))
    assert res.steps == 3


@pytest.mark.slow
def test_ddp_two_processes_gloo_keep_replicas_identical(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    start = dict(tiny_model().named_parameters())
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it trained
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert len(rows) == 3 and all(float(r["harmonization"]) > 0 for r in rows)


def test_bf16_autocast_and_mapping_config(tmp_path):
    """precision='bf16' (the short spelling of bfloat16, still accepted) runs the double backward
    under CPU autocast; a dict config is the defaults updated by its keys."""
    config = {k: v for k, v in cfg(epochs=1, steps_per_epoch=2).to_dict().items()
              if k in ("model", "epochs", "warmup_epochs", "steps_per_epoch", "batch_size", "lr", "mixup_alpha",
                       "checkpoint_every", "num_classes", "tensorboard")}
    config["precision"] = "bf16"  # an earlier config file's spelling
    res = trainer_torch.train(tiny_model(), generated_batches(2), config, tmp_path, arch=ARCH, export=False)
    assert res.steps == 2
    assert np.isfinite(res.last_metrics["total"]) and res.last_metrics["harmonization"] > 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["precision"] == "bfloat16" and saved["label_smoothing"] == 0.1  # untouched default kept


def test_model_argument_is_checked(tmp_path):
    from model_zoo.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="model must be an nn.Module"):
        trainer_torch.train(object(), generated_batches(1), cfg(epochs=1, steps_per_epoch=1), tmp_path)


def test_tensorboard_events_or_a_warning(tmp_path):
    """tensorboard=True (the default) writes events when the package is there, else warns once and
    keeps the CSV (tf.summary without the package would crash the run)."""
    import importlib.util
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer_torch.train(tiny_model(), generated_batches(1), cfg(epochs=1, steps_per_epoch=1, tensorboard=True),
                            tmp_path, arch=ARCH, export=False)
    assert len(list(csv.DictReader(open(tmp_path / "metrics.csv")))) == 1
    if importlib.util.find_spec("tensorboard") is None:
        assert any("tensorboard package is not installed" in str(w.message) for w in caught)
    else:
        assert any((tmp_path / "tensorboard").iterdir())
