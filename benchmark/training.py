"""Harmonized (or matched baseline) training on ClickMe-format data: the wiring between the
dataset layer (:mod:`benchmark.datasets`, the ClickMe loader) and the framework-free trainers of
:mod:`model_zoo.harmonization` (which never import ``benchmark``).

The loader yields NHWC float32 [0, 255] 224x224 images, (N, 224, 224) heatmaps and int labels; both
trainers take exactly that and apply the model's preprocessing themselves
(:mod:`model_zoo.preprocessing`). ``alignbench train`` is :func:`train`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

from model_zoo.errors import InvalidInputError


def training_data(dataset: Any, *, batch_size: int, seed: int, shuffle_buffer: int = 2048,
                  imagenet: Path | None = None, clickme_fraction: float = 0.2,
                  load_batch_size: int = 64) -> Callable[[int], Iterable[Any]]:
    """``epoch -> batches`` of ``batch_size`` (the per-process batch): ClickMe examples (token 1)
    shuffled per epoch with a seed of (seed, epoch) only, so every rank and a resumed run see the
    same order; with ``imagenet``, mixed with ImageNet-folder images (token 0) as the paper's
    ``sample_from_datasets`` with weights (clickme_fraction, 1 - clickme_fraction)."""
    from model_zoo.harmonization import data as D

    def clickme(epoch: int) -> Iterable[Any]:
        # mixed with ImageNet, this is only a stream of examples: keep its tail
        return D.shuffled_batches(dataset.batches(load_batch_size), batch_size, buffer=shuffle_buffer,
                                  seed=[seed, epoch, 1], drop_remainder=imagenet is None)

    def factory(epoch: int) -> Iterable[Any]:
        if imagenet is None:
            return clickme(epoch)
        # the folder reader drops its last partial batch: read it in training-batch chunks
        return D.mix_sources(clickme(epoch), D.image_folder_batches(imagenet, batch_size, seed=seed, epoch=epoch),
                             batch_size=batch_size, fraction=clickme_fraction, seed=seed * 1_000_003 + epoch)

    return factory


def imagenet_count(root: Path) -> int:
    """Images (jpeg/jpg/png) under an ImageNet-style folder of class sub-folders."""
    exts = {".jpeg", ".jpg", ".png"}
    return sum(1 for p in Path(root).rglob("*") if p.suffix.lower() in exts)


class StepProgress:
    """An ``on_step(step, metrics)`` callback drawing a tqdm bar over optimizer steps, with the last
    logged loss and images/s; the bar starts at the first step it sees, so a resumed run's bar starts
    where the checkpoint left off. ``then`` is called after it (the caller's own ``on_step``)."""

    def __init__(self, total: int | None, *, enabled: bool = True,
                 then: Callable[[int, dict[str, float]], Any] | None = None) -> None:
        self.total, self.enabled, self.then, self.bar = total, enabled, then, None

    def __call__(self, step: int, metrics: dict[str, float]) -> None:
        if self.enabled:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, initial=step - 1, desc="train", unit="step", dynamic_ncols=True)
            self.bar.update(1)
            if "total" in metrics:
                self.bar.set_postfix({"loss": f"{metrics['total']:.4g}",
                                      "img/s": f"{metrics.get('images_per_s', float('nan')):.1f}"}, refresh=False)
        if self.then is not None:
            self.then(step, metrics)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(config: Any, data: str, output: str | Path, *, imagenet: Path | None = None, shuffle_buffer: int = 2048,
          download: bool = True, on_step: Callable[[int, dict[str, float]], Any] | None = None,
          progress: bool = False) -> Any:
    """Train ``config`` (a :class:`model_zoo.harmonization.config.TrainConfig`) on the ClickMe-format
    dataset ``data`` (a name, a folder of shards or one shard), optionally mixed with an ImageNet
    folder; checkpoints and the export go to ``output``. ``progress`` draws a bar over the steps (rank 0
    only). Returns the trainer's ``TrainResult`` (``resumed_from`` says where a resumed run started)."""
    # import order: the trainer module loads its framework (torch first) before TensorFlow, which
    # the ClickMe loader imports
    if config.framework == "torch":
        from model_zoo.harmonization import trainer_torch as trainer
        world = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun: each rank loads batch / world images
    else:
        from model_zoo.harmonization import trainer_tf as trainer
        world = 1  # one process feeds all replicas of the tf.distribute strategy
    if config.batch_size % world:
        raise InvalidInputError(f"--batch-size {config.batch_size} is not divisible by WORLD_SIZE={world}")
    if imagenet is not None and not Path(imagenet).is_dir():
        raise InvalidInputError(f"--imagenet {imagenet}: not a folder")
    from benchmark.datasets import get_dataset

    dataset = get_dataset(str(data), download=download)
    if config.steps_per_epoch is None:
        images = dataset.num_images() + (imagenet_count(imagenet) if imagenet else 0)
        if images < config.batch_size:
            raise InvalidInputError(f"--data {data}: {images} images, fewer than one batch of {config.batch_size}")
        config = config.replace(steps_per_epoch=images // config.batch_size)
    batches = training_data(dataset, batch_size=config.batch_size // world, seed=config.seed,
                            shuffle_buffer=shuffle_buffer, imagenet=imagenet, clickme_fraction=config.clickme_fraction)
    extra = {"data": {"name": dataset.name, "fingerprint": dataset.fingerprint(),
                      "synthetic": bool(getattr(dataset, "synthetic", False))}}
    spe = config.steps_per_epoch
    total = config.epochs * spe if config.max_steps is None else min(config.max_steps, config.epochs * spe)
    bar = StepProgress(total, enabled=progress and int(os.environ.get("RANK", "0")) == 0, then=on_step)
    try:
        return trainer.train(None, batches, config.replace(extra={**config.extra, **extra}), output, on_step=bar)
    finally:
        bar.close()
