"""``alignbench train``: harmonized (or matched baseline) training on ClickMe-format data
(:func:`benchmark.training.train`); this module only turns the command line into a ``TrainConfig``."""
from __future__ import annotations

import argparse
from pathlib import Path

from alignbench.cli import options
from typing import Any

# explicit flags, named as their TrainConfig fields (every other field: --set KEY=VALUE)
_FLAGS = ("model", "harmonize", "framework", "max_steps", "init", "precision", "epochs", "batch_size", "lr",
          "base_lr", "warmup_epochs", "steps_per_epoch", "lambda_harmonization", "num_classes", "seed",
          "checkpoint_every", "mixup_alpha", "label_smoothing", "weight_decay", "momentum", "pyramid_levels",
          "clickme_fraction")


def _default(field: str, what: str) -> str:
    """Help text naming the recipe's default (the paper's, from TrainConfig), not a copy of it."""
    import dataclasses

    from model_zoo.harmonization.config import TrainConfig

    default = {f.name: f.default for f in dataclasses.fields(TrainConfig)}[field]
    return f"{what} (default {default})".replace("%", "%%")


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
    p.add_argument("--epochs", type=int, help=_default("epochs", "training epochs"))
    p.add_argument("--batch-size", type=int, help="global batch size (all replicas together)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: base_lr x batch / 512)")
    p.add_argument("--base-lr", type=float, help="learning rate per 512 images (default 0.3)")
    p.add_argument("--warmup-epochs", type=float, help=_default("warmup_epochs", "epochs of linear learning-rate warm-up"))
    p.add_argument("--steps-per-epoch", type=int, help="default: dataset images / batch size")
    p.add_argument("--lambda", type=float, dest="lambda_harmonization", metavar="LAMBDA", help="weight of the harmonizer term")
    p.add_argument("--num-classes", type=int, help=_default("num_classes", "classes of the classifier head"))
    p.add_argument("--init", choices=["random", "pretrained"], help="random (paper: from scratch) or pretrained")
    options.add_precision(p, default=None)
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--mixup-alpha", type=float, help="0 disables mixup")
    p.add_argument("--label-smoothing", type=float, help=_default("label_smoothing", "label smoothing of the cross-entropy"))
    p.add_argument("--weight-decay", type=float, help=_default("weight_decay", "L2 weight decay (in the loss, as the paper)"))
    p.add_argument("--momentum", type=float, help=_default("momentum", "SGD momentum"))
    p.add_argument("--pyramid-levels", type=int, help=_default("pyramid_levels", "levels of the harmonizer's Gaussian pyramid"))
    p.add_argument("--clickme-fraction", type=float, help=_default("clickme_fraction", "with --imagenet: share of batches from ClickMe"))
    p.add_argument("--seed", type=int, help=_default("seed", "seed of initialisation, data order and augmentation"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other training option, e.g. --set schedule=step --set token_normalise=true")
    p.add_argument("--shuffle-buffer", type=int, default=2048, help="examples in the shuffle buffer (default 2048)")
    options.add_offline(p)
    options.add_progress(p)
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


def run_training(args: argparse.Namespace) -> Any:
    """The ``alignbench train`` command as a library call (:func:`benchmark.training.train`)."""
    from benchmark.training import train
    from model_zoo.weights import offline_mode

    config = build_config(args)
    with offline_mode(args.offline):
        return train(config, args.data, args.output, imagenet=args.imagenet, shuffle_buffer=args.shuffle_buffer,
                     download=not args.offline, progress=not getattr(args, "no_progress", True))


def handle(args: argparse.Namespace) -> int:
    result = run_training(args)
    m = result.last_metrics
    terms = ", ".join(f"{k} {m[k]:.4g}" for k in ("total", "cross_entropy", "harmonization", "accuracy") if k in m)
    resumed = (f", resumed at step {result.resumed_from} of {result.total_steps or result.steps}"
               if result.resumed_from else "")
    print(f"trained {result.trained_now} steps{resumed} -> {result.output_dir}" + (f" ({terms})" if terms else ""))
    if result.export_dir is not None:
        print(f"exported model: {result.export_dir} (alignbench run --model {result.export_dir})")
    return 0
