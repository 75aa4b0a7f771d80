"""The harmonized-training recipe as one dataclass, loadable from YAML/JSON and CLI overrides.

Defaults are the paper's recipe (issue 6; paper-notes §3.6-3.7): SGD momentum 0.9 Nesterov, batch
512 at lr 0.3 scaled linearly, 5 warm-up epochs then cosine decay to epoch 90, label smoothing 0.1,
mixup, random left-right flips, weight decay 1e-5 as a loss term, lambda 1. Where the paper's
pre-release code did otherwise it is one field away: ``schedule="step"`` (its 30/60/80 steps),
``mixup_alpha=0`` (its MIXUP=False), ``pyramid_levels=6`` (its 6-level pyramid).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from model_zoo.errors import InvalidInputError


@dataclass
class TrainConfig:
    """Every knob of ``alignbench train``. Sizes are global (all replicas together)."""

    model: str = "resnet50"
    harmonize: bool = True
    framework: str = "torch"  # "torch" | "tf"
    num_classes: int = 1000
    init: str = "random"  # "random" (the paper trains from scratch) | "pretrained"
    seed: int = 0
    input_size: int | None = None  # train (and export) at this resolution instead of the model's own
    tpu: str | None = None  # TensorFlow: TPU name/address for TPUClusterResolver ("local" on a TPU VM)
    # schedule
    epochs: int = 90
    warmup_epochs: float = 5.0
    steps_per_epoch: int | None = None  # None: from the data (len) or the dataset sizes
    max_steps: int | None = None  # stop early (smoke runs); the schedule still spans ``epochs``
    schedule: str = "cosine"  # "cosine" | "step" (pre-release code: x0.1 at 30, 60, 80)
    min_lr: float = 0.0
    # optimisation
    batch_size: int = 512
    base_lr: float = 0.3
    base_batch_size: int = 512  # lr = base_lr * batch_size / base_batch_size
    lr: float | None = None  # an explicit peak lr overrides the linear scaling
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    # harmonizer loss
    lambda_harmonization: float = 1.0
    pyramid_levels: int = 5
    saliency_reduction: str = "mean"
    saliency_abs: bool = False
    token_normalise: bool = False
    # augmentation / data mix
    flip: bool = True
    mixup_alpha: float = 1.0  # mix coefficient ~ Beta(a, a); 1 = uniform as the paper's code; 0 = off
    mixup_prob: float = 0.5  # fraction of images mixed (the paper's code: each pair with p = 0.5)
    clickme_fraction: float = 0.2  # sampling weight of ClickMe vs ImageNet (0.2 / 0.8)
    # precision and bookkeeping
    precision: str = "float32"  # "float32" | "bfloat16" | "float16" (float16: GradScaler on CUDA)
    channels_last: bool = False
    checkpoint_every: int = 1000  # steps; 0 = only at the end
    log_every: int = 1
    tensorboard: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes recorded in the export

    def __post_init__(self) -> None:
        self.validate()

    @property
    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / self.base_batch_size

    def validate(self) -> None:
        def bad(name: str, why: str) -> InvalidInputError:
            return InvalidInputError(f"training config: {name}={getattr(self, name)!r} {why}")

        choices = {"framework": ("torch", "tf"), "init": ("random", "pretrained"), "schedule": ("cosine", "step"),
                   "saliency_reduction": ("mean", "max"), "precision": ("float32", "bfloat16", "float16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise bad(name, f"is not one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "base_batch_size", "pyramid_levels", "num_classes", "log_every"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        for name in ("warmup_epochs", "weight_decay", "lambda_harmonization", "mixup_alpha", "base_lr",
                     "checkpoint_every", "min_lr"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        for name in ("label_smoothing", "mixup_prob", "clickme_fraction", "momentum"):
            if not 0 <= getattr(self, name) <= 1:
                raise bad(name, "must be in [0, 1]")
        if self.input_size is not None and self.input_size < 8:
            raise bad("input_size", "must be >= 8 (the 5-level pyramid halves it 4 times)")
        if self.warmup_epochs > self.epochs:
            raise bad("warmup_epochs", f"exceeds epochs={self.epochs}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return merge(self, changes, source="overrides")


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
#: short precision spellings accepted (and replaced by the full name) in configs and ``--set``
PRECISION_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def merge(config: TrainConfig, changes: Mapping[str, Any], *, source: str) -> TrainConfig:
    """A copy of ``config`` with ``changes`` applied; unknown keys and wrong types are named."""
    values = config.to_dict()
    for key, value in changes.items():
        key = key.replace("-", "_")
        if key not in _FIELDS:
            close = [k for k in _FIELDS if key in k or k in key]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise InvalidInputError(f"{source}: unknown training option {key!r}{hint}")
        values[key] = _coerce(key, value, source)
        if key == "precision":  # the short spellings of earlier config files and --set
            values[key] = PRECISION_ALIASES.get(values[key], values[key])
    return TrainConfig(**values)


_KINDS: dict[str, type] = {"bool": bool, "int": int, "float": float, "str": str}


def _coerce(key: str, value: Any, source: str) -> Any:
    """``value`` converted to the field's annotated type (strings from YAML/CLI included)."""
    annotation = str(_FIELDS[key].type)
    if value is None and "None" in annotation:
        return None
    kind = _KINDS.get(annotation.split("|")[0].strip(), dict)
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if kind is dict and not isinstance(value, dict):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{source}: {key}={value!r} is not a valid {kind.__name__}") from None


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The default recipe, updated by a YAML or JSON file (a flat mapping of field names), then by
    ``overrides`` (e.g. the CLI's explicit flags; ``None`` values are ignored)."""
    config = TrainConfig()
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"config file {path}: {exc.strerror or exc}") from None
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as exc:  # yaml.YAMLError / json.JSONDecodeError
            raise InvalidInputError(f"config file {path}: not valid {path.suffix[1:] or 'JSON'}: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"config file {path}: expected a mapping of option: value")
        config = merge(config, data, source=f"config file {path}")
    if overrides:
        config = merge(config, {k: v for k, v in overrides.items() if v is not None}, source="command line")
    return config


def as_config(config: "TrainConfig | Mapping[str, Any] | None") -> TrainConfig:
    """``config`` as a :class:`TrainConfig`: itself, the defaults updated by a mapping, or the defaults."""
    if config is None:
        return TrainConfig()
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return merge(TrainConfig(), config, source="training config")
    raise InvalidInputError(f"training config must be a TrainConfig or a mapping, got {type(config).__name__}")
