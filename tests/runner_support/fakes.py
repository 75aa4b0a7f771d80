"""In-memory stand-ins for a dataset and a model, with the real interfaces, so the runner's
bookkeeping (resume, skip, failure, records) is tested fast and independently of TF/torch."""
from __future__ import annotations

import hashlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Batch:
    images: np.ndarray
    heatmaps: np.ndarray
    labels: np.ndarray
    ids: list


class FakeDataset:
    """n images whose human map is a blob at a per-image position; participants = noisy copies."""

    def __init__(self, n: int = 20, seed: int = 0, name: str = "fake-set", participants: int = 4):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:224, 0:224]
        centres = rng.uniform(60, 164, size=(n, 2))
        self.heat = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 30.0 ** 2))
                              for cy, cx in centres]).astype(np.float32)
        self.images = (rng.uniform(0, 255, size=(n, 224, 224, 3))).astype(np.float32)
        self.images[..., 0] = 255 * self.heat  # red channel carries the object
        self.labels = rng.integers(0, 1000, size=n).astype(np.int64)
        self.ids = [f"fake-0:{i:06d}" for i in range(n)]
        self.name = name
        self.n_participants = participants
        self._rng_seed = seed
        self.batches_served = 0

    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.heat.tobytes() + self.labels.tobytes()).hexdigest()

    def num_images(self) -> int:
        return len(self.labels)

    def files(self):
        return [Path("fake-0.tfrecords")]

    has_participant_maps = True
    skips = None

    def participant_maps(self, *, limit=None):
        rng = np.random.default_rng(self._rng_seed + 1)
        for i in range(len(self.labels) if limit is None else min(limit, len(self.labels))):
            noise = rng.normal(0, 0.3, size=(self.n_participants, 224, 224)).astype(np.float32)
            yield self.ids[i], self.heat[i][None] + noise

    def batches(self, batch_size, *, files=None, start=0, limit=None):
        stop = len(self.labels) if limit is None else min(len(self.labels), start + limit)
        for s in range(start, stop, batch_size):
            e = min(s + batch_size, stop)
            self.batches_served += 1
            yield Batch(self.images[s:e], self.heat[s:e], self.labels[s:e], self.ids[s:e])


class FakeSpec:
    def __init__(self, model_id):
        self.id = model_id
        self.display_name = model_id.upper()
        self.family = "cnn"
        self.harmonized = False
        self.top1 = 70.0
        self.top1_source = "test"
        self.framework = "torch"
        self.base_model = None


class FakeAdapter:
    """Saliency = red channel (aligned with the human map) or its negative; NaN for 'nan-model'."""

    framework = "torch"
    weights_sha256 = "0" * 64

    def __init__(self, model_id, kill_after_batches=None):
        self.spec = FakeSpec(model_id)
        self.model_id = model_id
        self.calls = 0
        self.kill_after = kill_after_batches

    def predict_and_saliency(self, images, labels):
        self.calls += 1
        if self.kill_after is not None and self.calls > self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # a power cut, mid-run
        n = len(images)
        logits = np.zeros((n, 1000), np.float32)
        logits[np.arange(n), labels] = 1.0  # always right
        maps = images[..., 0] / 255.0
        if self.model_id == "anti-model":
            maps = 1.0 - maps
        if self.model_id == "nan-model":
            maps = maps * np.nan
        return logits, maps.astype(np.float32)


def fake_loader(kill_after_batches=None):
    def load(model_id, *, weights="pretrained", device="cpu", precision="float32"):
        if model_id == "missing-weights":
            from model_zoo.errors import WeightsUnavailableError

            raise WeightsUnavailableError("weights for missing-weights are not in the cache")
        return FakeAdapter(model_id, kill_after_batches)

    return load
