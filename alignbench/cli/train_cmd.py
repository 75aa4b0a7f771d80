"""``alignbench train``: harmonized (or matched baseline) training on ClickMe-format data.

The thin wiring between :mod:`benchmark.datasets` (the ClickMe loader) and the framework-free
trainers of :mod:`model_zoo.harmonization` (which never import ``benchmark``). The loader yields
NHWC float32 [0, 255] 224x224 images, (N, 224, 224) heatmaps and int labels; both trainers take
exactly that and do their own layout change (NCHW for torch) and model preprocessing.

:func:`run_training` is the library call behind the command (tests call it directly);
:func:`training_data` builds the per-epoch batches factory.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, Iterable

# explicit flags, named as their TrainConfig fields (every other field: --set KEY=VALUE)
_FLAGS = ("model", "harmonize", "framework", "max_steps", "init", "precision", "epochs", "batch_size", "lr",
          "base_lr", "warmup_epochs", "steps_per_epoch", "lambda_harmonization", "num_classes", "seed",
          "checkpoint_every", "mixup_alpha", "label_smoothing", "weight_decay", "momentum", "pyramid_levels",
          "clickme_fraction")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a harmonized model (or its matched baseline) on ClickMe-format data",
        description="Train a model with the neural harmonizer loss (cross-entropy + lambda x pyramidal "
        "MSE between its saliency and human maps), the paper's recipe by default (SGD momentum, lr 0.3 "
        "per 512 images, 5 warm-up epochs + cosine over 90, label smoothing 0.1, mixup, flips). "
        "Checkpoints in OUTPUT/checkpoints; running the same command again resumes. The final model "
        "goes to OUTPUT/export, which `alignbench run --model OUTPUT/export` and model_zoo.load accept. "
        "Several GPUs/nodes: launch under torchrun (DDP); TensorFlow: --framework tf uses a TPU when "
        "one resolves, MirroredStrategy on several GPUs.")
    p.add_argument("--model", help="catalog id or timm model name (default: the config's, resnet50)")
    p.add_argument("--harmonize", action=argparse.BooleanOptionalAction, default=None,
                   help="--no-harmonize trains the matched baseline (cross-entropy only); default: harmonize")
    p.add_argument("--data", required=True,
                   help="ClickMe-format dataset: a name (see `alignbench data info --list`), a folder of "
                   "*.tfrecords shards or one shard file. Its images get token 1 (human map present)")
    p.add_argument("--imagenet", type=Path,
                   help="ImageNet train folder (class sub-folders) mixed in with token 0 (cross-entropy only), "
                   "sampled against ClickMe with weights clickme_fraction / 1 - clickme_fraction")
    p.add_argument("--config", type=Path, help="YAML or JSON file of training options (flags override it)")
    p.add_argument("--output", type=Path, required=True, help="output folder (checkpoints, metrics.csv, export/)")
    p.add_argument("--framework", choices=["torch", "tf"], help="default: the config's (torch)")
    p.add_argument("--steps", type=int, dest="max_steps", metavar="N", help="stop after N optimizer steps (the schedule "
                   "still spans --epochs); a later run with a larger N continues")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size (all replicas together)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: base_lr x batch / 512)")
    p.add_argument("--base-lr", type=float, help="learning rate per 512 images (default 0.3)")
    p.add_argument("--warmup-epochs", type=float)
    p.add_argument("--steps-per-epoch", type=int, help="default: dataset images / batch size")
    p.add_argument("--lambda", type=float, dest="lambda_harmonization", metavar="LAMBDA", help="weight of the harmonizer term")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--init", choices=["random", "pretrained"], help="random (paper: from scratch) or pretrained")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--mixup-alpha", type=float, help="0 disables mixup")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--pyramid-levels", type=int)
    p.add_argument("--clickme-fraction", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other training option, e.g. --set schedule=step --set token_normalise=true")
    p.add_argument("--shuffle-buffer", type=int, default=2048, help="examples in the shuffle buffer (default 2048)")
    p.add_argument("--offline", action="store_true", help="never download; use cached dataset shards only")
    p.set_defaults(handler=handle)


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`TrainConfig`: defaults, then ``--config FILE``, then ``--set``, then explicit flags."""
    from model_zoo.errors import InvalidInputError
    from model_zoo.harmonization.config import load_config, merge

    config = load_config(args.config)
    sets = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--set {item!r}: expected KEY=VALUE")
        sets[key.strip()] = value.strip()
    if sets:
        config = merge(config, sets, source="--set")
    flags = {k: getattr(args, k, None) for k in _FLAGS}
    return merge(config, {k: v for k, v in flags.items() if v is not None}, source="command line")


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


def _imagenet_count(root: Path) -> int:
    exts = {".jpeg", ".jpg", ".png"}
    return sum(1 for p in Path(root).rglob("*") if p.suffix.lower() in exts)


def run_training(args: argparse.Namespace) -> Any:
    """The ``alignbench train`` command as a library call; returns the trainer's ``TrainResult``."""
    from model_zoo.errors import InvalidInputError

    config = build_config(args)
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
    if args.offline:
        os.environ["ALIGNBENCH_OFFLINE"] = "1"
    from benchmark.datasets import get_dataset

    dataset = get_dataset(str(args.data), download=not args.offline)
    if config.steps_per_epoch is None:
        images = dataset.num_images() + (_imagenet_count(args.imagenet) if args.imagenet else 0)
        if images < config.batch_size:
            raise InvalidInputError(f"--data {args.data}: {images} images, fewer than one batch of {config.batch_size}")
        config = config.replace(steps_per_epoch=images // config.batch_size)
    if args.imagenet is not None and not Path(args.imagenet).is_dir():
        raise InvalidInputError(f"--imagenet {args.imagenet}: not a folder")
    data = training_data(dataset, batch_size=config.batch_size // world, seed=config.seed,
                         shuffle_buffer=args.shuffle_buffer, imagenet=args.imagenet,
                         clickme_fraction=config.clickme_fraction)
    if getattr(dataset, "synthetic", False):
        print(f"note: {dataset.name} is synthetic generated data, not ClickMe")
    return trainer.train(None, data, config, args.output)


def handle(args: argparse.Namespace) -> int:
    result = run_training(args)
    m = result.last_metrics
    terms = ", ".join(f"{k} {m[k]:.4g}" for k in ("total", "cross_entropy", "harmonization", "accuracy") if k in m)
    print(f"trained {result.steps} steps -> {result.output_dir}" + (f" ({terms})" if terms else ""))
    if result.export_dir is not None:
        print(f"exported model: {result.export_dir} (alignbench run --model {result.export_dir})")
    return 0
