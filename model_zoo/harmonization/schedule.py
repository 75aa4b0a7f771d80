"""Learning-rate schedule, framework-free: a pure function of the step, so torch, Keras and a
resumed run all see the same value at the same step.

* ``cosine`` (default, the issue's recipe): linear warm-up to the peak over ``warmup_steps``, then
  half a cosine from the peak to ``min_lr`` at ``total_steps``.
* ``step`` (the paper's pre-release TPU code, paper-notes §3.7): the same warm-up, then x1 until
  epoch 30, x0.1 from 30, x0.01 from 60, x0.001 from 80.
"""
from __future__ import annotations

import math

STEP_MILESTONES = ((30, 1.0), (60, 0.1), (80, 0.01))  # (until epoch, factor); after 80: 0.001


def lr_at(step: int, *, peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0,
          kind: str = "cosine", steps_per_epoch: int | None = None) -> float:
    """Learning rate for optimizer step ``step`` (0-based). Warm-up: ``peak * (step + 1) / warmup``,
    so the first step already moves. Past ``total_steps`` the last value is held."""
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    if kind == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = min((step - warmup_steps) / span, 1.0)
        return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "step":
        if not steps_per_epoch:
            raise ValueError("the step schedule needs steps_per_epoch")
        epoch = step / steps_per_epoch
        for until, factor in STEP_MILESTONES:
            if epoch < until:
                return peak_lr * factor
        return peak_lr * 0.001
    raise ValueError(f"unknown schedule {kind!r} (cosine or step)")


def schedule_from_config(config, steps_per_epoch: int):
    """``step -> lr`` for a :class:`~model_zoo.harmonization.config.TrainConfig`."""
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    total = config.epochs * steps_per_epoch

    def schedule(step: int) -> float:
        return lr_at(step, peak_lr=config.peak_lr, warmup_steps=warmup, total_steps=total,
                     min_lr=config.min_lr, kind=config.schedule, steps_per_epoch=steps_per_epoch)

    return schedule
