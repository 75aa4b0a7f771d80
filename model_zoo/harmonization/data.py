"""Training batches, framework-free: validation, per-rank sharding, augmentation, data mixing.

The trainers accept batches from any source: dicts with keys ``images``, ``labels``, ``heatmaps``
and optionally ``tokens``; tuples ``(images, labels, heatmaps[, tokens])``; or objects with those
attributes (``benchmark.datasets`` ``Batch``). Images are NHWC float in [0, 255] (alignbench's
boundary convention); heatmaps (B, H, W) or (B, H, W, 1), any scale (the loss standardises them);
tokens default to 1 (every image has a human map).

Determinism (what makes resuming exact): a data source is re-iterated once per epoch and must
yield the same batches for the same epoch; all randomness here comes from generators seeded by
(seed, epoch) or from a generator whose state the trainer checkpoints.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from model_zoo.errors import InvalidInputError

DataSource = Callable[[int], Iterable[Any]] | Iterable[Any]


@dataclass
class TrainBatch:
    images: np.ndarray  # (B, H, W, 3) float32 in [0, 255]
    labels: np.ndarray  # (B,) int64, or (B, K) float32 soft targets after mixup
    heatmaps: np.ndarray  # (B, H, W) float32
    tokens: np.ndarray  # (B,) float32, 1 where the image has a human map

    def __len__(self) -> int:
        return len(self.images)


def as_batch(obj: Any, where: str = "batch") -> TrainBatch:
    """Normalise one batch from the accepted forms (module docstring); shapes checked, named."""
    if isinstance(obj, TrainBatch):
        return obj
    if isinstance(obj, dict):
        get = obj.get
    elif isinstance(obj, (tuple, list)):
        if len(obj) not in (3, 4):
            raise InvalidInputError(f"{where}: a tuple batch is (images, labels, heatmaps[, tokens]), got {len(obj)} items")
        fields = dict(zip(("images", "labels", "heatmaps", "tokens"), obj))
        get = fields.get
    else:
        def get(name: str) -> Any:
            return getattr(obj, name, None)
    images, labels, heatmaps, tokens = (get(k) for k in ("images", "labels", "heatmaps", "tokens"))
    if images is None or labels is None:
        raise InvalidInputError(f"{where}: needs images and labels")
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InvalidInputError(f"{where}: images must be (B, H, W, 3) NHWC, got {images.shape}")
    n, h, w = images.shape[:3]
    labels = np.asarray(labels)
    if labels.shape[0] != n or labels.ndim not in (1, 2):
        raise InvalidInputError(f"{where}: labels shape {labels.shape} does not fit {n} images")
    labels = labels.astype(np.int64) if labels.ndim == 1 else labels.astype(np.float32)
    if heatmaps is None:
        heatmaps = np.zeros((n, h, w), np.float32)
        tokens = np.zeros(n, np.float32) if tokens is None else tokens
    heatmaps = np.asarray(heatmaps, np.float32)
    if heatmaps.ndim == 4 and heatmaps.shape[-1] == 1:
        heatmaps = heatmaps[..., 0]
    if heatmaps.shape != (n, h, w):
        raise InvalidInputError(f"{where}: heatmaps shape {heatmaps.shape} should be {(n, h, w)}")
    tokens = np.ones(n, np.float32) if tokens is None else np.asarray(tokens, np.float32).reshape(-1)
    if tokens.shape != (n,):
        raise InvalidInputError(f"{where}: tokens shape {tokens.shape} should be ({n},)")
    if not np.isfinite(images).all() or not np.isfinite(heatmaps).all():
        raise InvalidInputError(f"{where}: images or heatmaps contain NaN/inf")
    return TrainBatch(images, labels, heatmaps, tokens)


def epoch_batches(data: DataSource, epoch: int) -> Iterable[Any]:
    """The batches of ``epoch``: ``data(epoch)`` for a callable source, else ``data`` itself."""
    return data(epoch) if callable(data) else data


def shard(batches: Iterable[Any], rank: int, world: int) -> Iterator[Any]:
    """Batch ``k * world + rank`` for each complete group of ``world`` batches.

    The tail that would give some ranks one batch more is dropped, so every rank runs the same
    number of steps (DDP and MirroredStrategy would hang otherwise)."""
    if world == 1:
        yield from batches
        return
    it = iter(batches)
    while True:
        group = list(itertools.islice(it, world))
        if len(group) < world:
            return
        yield group[rank]


def flip_and_mixup(batch: TrainBatch, rng: np.random.Generator, *, flip: bool, mixup_alpha: float,
                   mixup_prob: float, num_classes: int) -> TrainBatch:
    """Random left-right flips (image and heatmap together, p = 0.5 each), then mixup as the paper's
    code: each image is mixed with a random partner with probability ``mixup_prob``, coefficient
    ~ Beta(alpha, alpha), mixing images, heatmaps and one-hot labels. A mixed image keeps its
    token only if both partners have a human map (a blend with a blank map is not a human map)."""
    images, heatmaps, labels, tokens = batch.images, batch.heatmaps, batch.labels, batch.tokens
    n = len(images)
    if flip:
        flips = rng.random(n) < 0.5
        images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
        heatmaps = np.where(flips[:, None, None], heatmaps[:, :, ::-1], heatmaps)
    if mixup_alpha > 0 and mixup_prob > 0:
        partner = rng.permutation(n)
        mixed = rng.random(n) < mixup_prob
        lam = np.where(mixed, rng.beta(mixup_alpha, mixup_alpha, n), 1.0).astype(np.float32)
        onehot = labels if labels.ndim == 2 else np.eye(num_classes, dtype=np.float32)[labels]
        images = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * images[partner]
        heatmaps = lam[:, None, None] * heatmaps + (1 - lam[:, None, None]) * heatmaps[partner]
        labels = lam[:, None] * onehot + (1 - lam[:, None]) * onehot[partner]
        tokens = np.where(mixed, tokens * tokens[partner], tokens).astype(np.float32)
    return TrainBatch(np.ascontiguousarray(images, np.float32), labels,
                      np.ascontiguousarray(heatmaps, np.float32), tokens)


def mix_sources(with_maps: Iterable[Any], without_maps: Iterable[Any], *, batch_size: int,
                fraction: float, seed: int) -> Iterator[TrainBatch]:
    """Batches whose every example comes from ``with_maps`` (ClickMe) with probability ``fraction``,
    else from ``without_maps`` (ImageNet, tokens 0), as ``tf.data.sample_from_datasets`` with
    weights (fraction, 1 - fraction). Ends when either source runs out."""
    rng = np.random.default_rng(seed)
    streams = [_examples(with_maps), _examples(without_maps)]
    while True:
        picks = rng.random(batch_size) >= fraction  # False: with maps
        rows = []
        for p in picks:
            row = next(streams[int(p)], None)
            if row is None:
                return
            rows.append(row)
        yield TrainBatch(*(np.stack([r[i] for r in rows]) for i in range(4)))


def _examples(batches: Iterable[Any]) -> Iterator[tuple[np.ndarray, ...]]:
    for k, raw in enumerate(batches):
        b = as_batch(raw, where=f"batch {k}")
        yield from zip(b.images, b.labels, b.heatmaps, b.tokens)


def image_folder_batches(root: str | Path, batch_size: int, *, seed: int = 0, epoch: int = 0,
                         size: int = 224) -> Iterator[TrainBatch]:
    """Shuffled batches from an ImageNet-style folder (``root/<wnid>/*.JPEG``, torchvision
    ImageFolder layout; classes in sorted order = the ImageNet index for ILSVRC folders): RGB,
    shorter side resized to ``size`` (bilinear), centre-cropped, float32 [0, 255], zero heatmaps,
    tokens 0. The order depends on (seed, epoch) only."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise InvalidInputError(f"--imagenet {root}: not a folder")
    folder = ImageFolder(str(root))
    if not folder.samples:
        raise InvalidInputError(f"--imagenet {root}: no images in class sub-folders")
    order = np.random.default_rng([seed, epoch]).permutation(len(folder.samples))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        images, labels = [], []
        for i in order[start:start + batch_size]:
            path, label = folder.samples[i]
            with Image.open(path) as im:
                im = im.convert("RGB")
                scale = size / min(im.size)
                im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))),
                               Image.BILINEAR)
                left, top = (im.width - size) // 2, (im.height - size) // 2
                images.append(np.asarray(im.crop((left, top, left + size, top + size)), np.float32))
            labels.append(label)
        n = len(images)
        yield TrainBatch(np.stack(images), np.asarray(labels, np.int64), np.zeros((n, size, size), np.float32),
                         np.zeros(n, np.float32))


def shuffled_batches(batches: Iterable[Any], batch_size: int, *, buffer: int, seed: Any,
                     drop_remainder: bool = True) -> Iterator[TrainBatch]:
    """Re-batch ``batches`` into ``batch_size`` examples, shuffled through a ``buffer``-example
    buffer (as ``tf.data.Dataset.shuffle``) by a generator seeded with ``seed`` only, so every
    rank and every resumed run sees the same order. ``buffer <= 1``: no shuffle. The last partial
    batch is dropped unless ``drop_remainder=False`` (a short batch would retrace compiled steps
    and skew the last step's mean)."""
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
    rng = np.random.default_rng(seed)
    pool: list[tuple[np.ndarray, ...]] = []
    out: list[tuple[np.ndarray, ...]] = []

    def emit(row: tuple[np.ndarray, ...]) -> Iterator[TrainBatch]:
        out.append(row)
        if len(out) == batch_size:
            yield TrainBatch(*(np.stack([r[i] for r in out]) for i in range(4)))
            out.clear()

    for row in _examples(batches):
        if buffer <= 1:
            yield from emit(row)
            continue
        pool.append(row)
        if len(pool) >= buffer:
            k = int(rng.integers(len(pool)))
            pool[k], pool[-1] = pool[-1], pool[k]
            yield from emit(pool.pop())
    for k in rng.permutation(len(pool)):
        yield from emit(pool[k])
    if out and not drop_remainder:
        yield TrainBatch(*(np.stack([r[i] for r in out]) for i in range(4)))
