"""Harmonized training in PyTorch: one process, or many under ``torchrun`` (DDP).

``train(model, data, config, output_dir)`` runs the recipe of :class:`~.config.TrainConfig` on
batches from ``data`` (any source accepted by :mod:`.data`) and writes into ``output_dir``:

* ``checkpoints/last.pt`` every ``checkpoint_every`` steps and at the end (atomic): model,
  optimizer, GradScaler, step, epoch and batch position, every rank's RNG states. Running the same
  call again resumes from it at the same schedule and data position (exact on CPU);
* ``metrics.csv`` (one row per logged step; see :mod:`.metrics`) and TensorBoard events if available;
* ``export/``: the final model as an alignbench exported model folder (:mod:`.export`).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised (NCCL on GPU,
gloo on CPU), rank r takes batches r, r + W, ... of each epoch (:func:`.data.shard`), so the data
source should yield per-replica batches (global batch / W). The double backward runs inside one
DDP forward/backward: the saliency is ``autograd.grad`` w.r.t. the *input* only (no parameter
``.grad`` is touched, DDP's reducer hooks stay idle), then ``total.backward()`` fires each
parameter's hook exactly once and DDP all-reduces as usual (checked by the 2-process gloo test).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_bytes, atomic_write_json
from model_zoo.frameworks import import_torch
from model_zoo.harmonization import data as D
from model_zoo.harmonization.config import TrainConfig, as_config
from model_zoo.harmonization.export import export_model
from model_zoo.harmonization.metrics import MetricsLog
from model_zoo.harmonization.models import Architecture
from model_zoo.harmonization.run_state import TrainResult, check_resumable
from model_zoo.harmonization.schedule import schedule_from_config

torch = import_torch()
import torch.distributed as dist  # noqa: E402

from model_zoo.harmonization.loss_torch import decay_parameters, harmonizer_loss  # noqa: E402
from model_zoo.preprocessing_torch import TorchPreprocess  # noqa: E402

@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialised_here: bool = False


def setup_distributed() -> Distributed:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (NCCL with CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        here = True
    return Distributed(rank, world, local, here)


def _device(d: Distributed) -> Any:
    if torch.cuda.is_available():
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


class _Inputs:
    """numpy NHWC [0, 255] batch -> the model's input tensors (resize, normalise, NCHW)."""

    def __init__(self, arch: Architecture, device: Any, channels_last: bool):
        self.preprocess = TorchPreprocess(arch.preprocess, device)  # the adapter's own function
        self.device, self.channels_last = device, channels_last

    def __call__(self, b: D.TrainBatch) -> tuple[Any, Any, Any, Any]:
        x = torch.from_numpy(b.images).to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        h = self.preprocess.resize_maps(torch.from_numpy(b.heatmaps).to(self.device, non_blocking=True))
        x = self.preprocess(x)
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return x, torch.from_numpy(b.labels).to(self.device), h, torch.from_numpy(b.tokens).to(self.device)


def _accuracy(logits: Any, labels: Any) -> Any:
    target = labels.argmax(1) if labels.ndim == 2 else labels
    return (logits.argmax(1) == target).float().mean()


def _steps_per_epoch(config: TrainConfig, data: D.DataSource, world: int) -> int:
    if config.steps_per_epoch:
        return config.steps_per_epoch
    try:
        n = len(D.epoch_batches(data, 0))  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError("steps_per_epoch is needed: the data source has no len(); set "
                                "--steps-per-epoch or steps_per_epoch in the config") from None
    if n // world < 1:
        raise InvalidInputError(f"the data source has {n} batches, fewer than the {world} replicas")
    return n // world


def train(model: Any, data: D.DataSource, config: TrainConfig | Mapping[str, Any] | None, output_dir: str | Path,
          *, arch: Architecture | None = None, on_step: Callable[[int, dict[str, float]], None] | None = None,
          export: bool = True) -> TrainResult:
    """Train ``model`` on ``data`` with the recipe ``config``; outputs in ``output_dir`` (module docstring).

    * ``model``: an ``nn.Module`` (trained in place), or ``None`` / a model id (catalog id or timm
      name) to build it from ``config.model`` / that id with ``config.init`` weights.
    * ``data``: an iterable of batches, re-iterated each epoch, or a callable ``epoch -> iterable``
      (a "batches factory"); each batch a dict / tuple / object with ``images`` (B, H, W, 3) float
      NHWC in [0, 255], ``labels`` (B,) int, ``heatmaps`` (B, H, W) or (B, H, W, 1) and optional
      ``tokens`` (B,) (1 = has a human map; default 1). Under DDP each rank takes every W-th batch,
      so batches should hold ``config.batch_size / W`` images.
    * ``config``: a :class:`TrainConfig`, a mapping of its fields (applied over the defaults) or
      ``None`` (the paper's recipe).
    * ``arch``: what the export records (preprocessing, architecture source). Images are resized to
      ``arch.preprocess.input_size`` and normalised with its mean/std before the model. For an
      ``nn.Module`` without ``arch`` the preprocessing is ImageNet mean/std at 224 and the export is
      readable by ``model_zoo.load`` only when ``arch.source``/``source_id`` name a builder
      (e.g. ``Architecture(..., source="timm", source_id="resnet18")``).
    * ``on_step(step, metrics)`` runs after every optimizer step (after any checkpoint of that
      step); raising from it stops training as a crash would (a later call resumes).

    Returns :class:`TrainResult` (steps done, output folder, ``export_dir`` = ``output_dir/export``
    or None, last logged metrics)."""
    from model_zoo.harmonization.models import build

    config = as_config(config)
    if isinstance(model, str) and model != config.model:
        config = config.replace(model=model)  # recorded in config.json and checked on resume
    out = Path(output_dir)
    d = setup_distributed()
    device = _device(d)
    try:
        torch.manual_seed(config.seed)  # identical initialisation on every rank
        if model is None or isinstance(model, str):
            model, built_arch = build(model or config.model, framework="torch", num_classes=config.num_classes,
                                      init=config.init)
            arch = arch or built_arch
        elif not isinstance(model, torch.nn.Module):
            raise InvalidInputError(f"train: model must be an nn.Module, a model id or None, got {type(model).__name__}")
        elif arch is None:
            arch = Architecture(f"{config.model}-harmonized", f"{config.model} (harmonized)", "cnn", "torch", "user",
                                config.model, base_model=None)
        if config.input_size:
            arch = dataclasses.replace(arch, preprocess=dataclasses.replace(arch.preprocess, input_size=config.input_size))
        model = model.to(device)
        if config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        decay = [p for _, p in decay_parameters(model)]
        net = model
        if d.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[d.local_rank] if device.type == "cuda" else None)
        opt = torch.optim.SGD(model.parameters(), lr=config.peak_lr, momentum=config.momentum,
                              nesterov=config.nesterov and config.momentum > 0)
        use_scaler = config.precision == "float16" and device.type == "cuda"
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        amp_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(config.precision)
        spe = _steps_per_epoch(config, data, d.world)
        schedule = schedule_from_config(config, spe)
        total = config.epochs * spe if config.max_steps is None else min(config.max_steps, config.epochs * spe)
        aug = np.random.default_rng([config.seed, d.rank])
        pos = {"step": 0, "epoch": 0, "batch": 0}

        ckpt = out / "checkpoints" / "last.pt"
        if ckpt.is_file():
            pos = _restore(ckpt, config, model, opt, scaler, aug, d)
        resumed_from = pos["step"]
        log = None
        if d.rank == 0:
            log = MetricsLog(out / "metrics.csv", resume_step=pos["step"],
                             tensorboard_dir=out / "tensorboard" if config.tensorboard else None)
            atomic_write_json(out / "config.json", config.to_dict())
        inputs = _Inputs(arch, device, config.channels_last)
        loss_kw = dict(lambda_harmonization=config.lambda_harmonization, weight_decay=config.weight_decay,
                       label_smoothing=config.label_smoothing, levels=config.pyramid_levels,
                       saliency_reduction=config.saliency_reduction, saliency_abs=config.saliency_abs,
                       token_normalise=config.token_normalise, decay_params=decay, harmonize=config.harmonize)
        metrics: dict[str, float] = {}
        model.train()
        while pos["step"] < total:
            batches = islice(D.shard(D.epoch_batches(data, pos["epoch"]), d.rank, d.world), pos["batch"], spe)
            seen = 0
            for raw in batches:
                seen += 1
                t0 = time.perf_counter()
                lr = schedule(pos["step"])
                for group in opt.param_groups:
                    group["lr"] = lr
                b = D.flip_and_mixup(D.as_batch(raw, where=f"epoch {pos['epoch']} batch {pos['batch']}"), aug,
                                     flip=config.flip, mixup_alpha=config.mixup_alpha,
                                     mixup_prob=config.mixup_prob, num_classes=config.num_classes)
                x, y, h, t = inputs(b)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    terms = harmonizer_loss(net, x, y, h, t, **loss_kw)
                opt.zero_grad(set_to_none=True)
                scaler.scale(terms["total"]).backward()
                scaler.step(opt)
                scaler.update()
                pos["step"] += 1
                pos["batch"] += 1
                if pos["step"] % config.log_every == 0 or pos["step"] == total:
                    metrics = _reduce_metrics(terms, y, d)
                    metrics.update(step=pos["step"], epoch=pos["epoch"], lr=lr,
                                   images_per_s=len(b) * d.world / (time.perf_counter() - t0),
                                   seconds=time.perf_counter() - t0)
                    if log is not None:
                        log.write(metrics)
                if pos["step"] == total or (config.checkpoint_every and pos["step"] % config.checkpoint_every == 0):
                    _save(ckpt, config, model, opt, scaler, aug, pos, d)
                if on_step is not None:
                    on_step(pos["step"], metrics)
                if pos["step"] >= total:
                    break
            else:
                if seen == 0 and pos["batch"] == 0:
                    raise InvalidInputError(f"the data source yielded no batch for epoch {pos['epoch']}")
                pos["epoch"] += 1
                pos["batch"] = 0
        if log is not None:
            log.close()
        export_dir = None
        if export and d.rank == 0:
            export_dir = export_model(model, out / "export", arch, harmonized=config.harmonize,
                                      training={**config.to_dict(), "steps": pos["step"], "world_size": d.world})
        return TrainResult(pos["step"], out, export_dir, metrics, resumed_from=resumed_from, total_steps=total)
    finally:
        if d.initialised_here:
            dist.destroy_process_group()


def _reduce_metrics(terms: dict[str, Any], labels: Any, d: Distributed) -> dict[str, float]:
    names = ("total", "cross_entropy", "weight_decay", "harmonization")
    vec = torch.stack([terms[k].detach().float() for k in names] + [_accuracy(terms["logits"], labels)])
    if d.world > 1:
        dist.all_reduce(vec)
        vec /= d.world
    return dict(zip((*names, "accuracy"), vec.tolist()))


def _rng_state(aug: np.random.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": json.dumps(aug.bit_generator.state)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _save(path: Path, config: TrainConfig, model: Any, opt: Any, scaler: Any, aug: np.random.Generator,
          pos: dict[str, int], d: Distributed) -> None:
    rng = [_rng_state(aug)]
    if d.world > 1:
        rng = [None] * d.world
        dist.all_gather_object(rng, _rng_state(aug))
    if d.rank == 0:
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                 "position": dict(pos), "rng": rng, "config": json.dumps(config.to_dict()), "world": d.world}
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(path, buf.getvalue())
    if d.world > 1:
        dist.barrier()  # no rank runs ahead of a checkpoint it might need to resume from


def _restore(path: Path, config: TrainConfig, model: Any, opt: Any, scaler: Any, aug: np.random.Generator,
             d: Distributed) -> dict[str, int]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidInputError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); "
                                "delete it to start over") from None
    saved = json.loads(state["config"])
    check_resumable(saved, config, path)
    if state["world"] != d.world:
        raise InvalidInputError(f"checkpoint {path} was written by {state['world']} processes, "
                                f"this run has {d.world}: the data position would not match")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    rng = state["rng"][d.rank]
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    aug.bit_generator.state = json.loads(rng["numpy"])
    return dict(state["position"])
