"""The TensorFlow/Keras harmonized trainer: MirroredStrategy over two logical CPU devices.

Logical devices must be configured before TensorFlow initialises its runtime, which another test
in the same process may already have done, so the training runs in a subprocess (this file run as
a script); the tests check what it wrote.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]
SIZE, CLASSES = 16, 4


def generated_batches(n_batches: int = 4, batch: int = 8, seed: int = 0) -> list[dict]:
    """Images with a bright blob whose presence is the class; the human map marks the blob."""
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


def _worker(out: Path) -> None:
    """Runs in the subprocess: 2 logical CPUs, MirroredStrategy, train / crash / resume / export."""
    from model_zoo.frameworks import import_tensorflow

    tf = import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras

    from model_zoo.harmonization import trainer_tf
    from model_zoo.harmonization.config import TrainConfig

    report: dict = {"picked": type(trainer_tf.pick_strategy()).__name__}  # no TPU, no GPU: default
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2

    def tiny() -> keras.Model:
        keras.utils.set_random_seed(0)
        inp = keras.Input((SIZE, SIZE, 3))
        x = keras.layers.Conv2D(8, 3, padding="same")(inp)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("tanh")(x)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="tanh")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, keras.layers.Dense(CLASSES)(x), name="tiny")

    def cfg(**kw):
        base = dict(model="tiny", framework="tf", epochs=5, warmup_epochs=0, steps_per_epoch=4, batch_size=8,
                    lr=0.05, mixup_alpha=0.0, checkpoint_every=0, num_classes=CLASSES, tensorboard=False,
                    weight_decay=1e-4, lambda_harmonization=5.0, input_size=SIZE)
        base.update(kw)
        return TrainConfig(**base)

    data = generated_batches()
    res = trainer_tf.train(tiny, data, cfg(), out / "learn", strategy=strategy)
    report["learn_steps"] = res.steps
    report["export"] = str(res.export_dir)

    # resume: uninterrupted vs crashed at step 5 (checkpoint at 4) then resumed, mixup on
    rc = cfg(epochs=2, checkpoint_every=2, mixup_alpha=1.0, warmup_epochs=1)
    full = trainer_tf.train(tiny, data, rc, out / "a", strategy=strategy, export=False)

    class Crash(Exception):
        pass

    def crash(step, _):
        if step == 5:
            raise Crash

    try:
        trainer_tf.train(tiny, data, rc, out / "b", strategy=strategy, export=False, on_step=crash)
    except Crash:
        report["crashed"] = True
    models = {}

    def keep(name):
        def factory():
            models[name] = tiny()
            return models[name]
        return factory

    trainer_tf.train(keep("a2"), data, rc, out / "a", strategy=strategy, export=False)  # complete: restores only
    resumed = trainer_tf.train(keep("b"), data, rc, out / "b", strategy=strategy, export=False)
    report["resumed_steps"] = resumed.steps
    report["max_weight_diff"] = max(float(np.abs(a - b).max()) for a, b in
                                    zip(models["a2"].get_weights(), models["b"].get_weights()))
    report["full_last"] = full.last_metrics
    (out / "report.json").write_text(json.dumps(report))


@pytest.fixture(scope="module")
def worker_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("tf_train")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True, timeout=600, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_mirrored_two_cpus_harmonization_falls(worker_out):
    report = json.loads((worker_out / "report.json").read_text())
    assert report["learn_steps"] == 20
    assert report["picked"] == "_DefaultDistributionStrategy"
    rows = list(csv.DictReader(open(worker_out / "learn" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    first = np.mean([float(r["harmonization"]) for r in rows[:4]])
    last = np.mean([float(r["harmonization"]) for r in rows[-4:]])
    assert last < 0.8 * first, (first, last)
    assert float(rows[0]["cross_entropy"]) > 0 and float(rows[0]["weight_decay"]) > 0


def test_mirrored_resume_after_crash_matches_uninterrupted(worker_out):
    report = json.loads((worker_out / "report.json").read_text())
    assert report["crashed"] and report["resumed_steps"] == 8
    assert report["max_weight_diff"] < 1e-5
    steps = [int(r["step"]) for r in csv.DictReader(open(worker_out / "b" / "metrics.csv"))]
    assert steps == list(range(1, 9))
    state = json.loads((worker_out / "b" / "checkpoints" / "position.json").read_text())
    assert state["position"] == {"step": 8, "epoch": 1, "batch": 4} and state["replicas"] == 2


def test_export_loads_with_model_zoo(worker_out):
    import model_zoo

    folder = Path(json.loads((worker_out / "report.json").read_text())["export"])
    doc = json.loads((folder / "alignbench_model.json").read_text())
    assert doc["framework"] == "keras" and doc["harmonized"] is True and doc["training"]["replicas"] == 2
    assert doc["training"]["strategy"] == "MirroredStrategy" and doc["preprocess"]["input_size"] == SIZE
    adapter = model_zoo.load(folder)
    batch = generated_batches(1, 2)[0]
    images = np.repeat(np.repeat(batch["images"], 14, axis=1), 14, axis=2)  # 224 boundary size
    maps = adapter.saliency(images, batch["labels"])
    assert maps.shape == (2, 224, 224) and np.isfinite(maps).all()


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
