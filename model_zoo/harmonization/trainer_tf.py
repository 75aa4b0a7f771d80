"""Harmonized training in TensorFlow / Keras 3 with ``tf.distribute``.

``train(model, data, config, output_dir)`` runs the recipe of :class:`~.config.TrainConfig` (the
same schedule, augmentation, data handling and outputs as :mod:`.trainer_torch`):

* strategy (:func:`pick_strategy`): ``TPUStrategy`` when a TPU resolves (``config.tpu``, the
  ``TPU_NAME`` environment variable, or TPU chips attached: "local" on a TPU VM),
  ``MirroredStrategy`` over all GPUs when there are several, the default strategy otherwise; or
  pass ``strategy=``;
* one process feeds every replica: each step takes one *global* batch from ``data`` (augmented on
  the host with :func:`.data.flip_and_mixup`) and hands replica r its r-th slice; the per-replica
  loss is divided by the number of replicas, so the summed gradients are those of the global mean;
* ``checkpoints/`` (``tf.train.CheckpointManager``: model, optimizer, step) every
  ``checkpoint_every`` steps and at the end, plus ``checkpoints/position.json`` (epoch, batch and
  the augmentation generator's state, written after the checkpoint it names). Calling ``train``
  again with the same ``output_dir`` restores both and continues at the same schedule position;
* ``metrics.csv`` (+ TensorBoard), ``config.json`` and ``export/`` (``model.keras`` + manifest,
  loadable by ``model_zoo.load``) as the torch trainer.

Multi-host TPU pods need one process per host, each feeding its local replicas; this trainer
feeds from one host (a TPU v3-8/v4-8 as the paper's, or one multi-GPU machine).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_json
from model_zoo.frameworks import import_tensorflow
from model_zoo.harmonization import data as D
from model_zoo.harmonization.config import TrainConfig, as_config
from model_zoo.harmonization.export import export_model
from model_zoo.harmonization.metrics import MetricsLog
from model_zoo.harmonization.models import Architecture
from model_zoo.harmonization.run_state import TrainResult, check_resumable
from model_zoo.harmonization.schedule import schedule_from_config

tf = import_tensorflow()
import keras  # noqa: E402

from model_zoo.harmonization import loss_tf  # noqa: E402
from model_zoo.preprocessing_tf import TFPreprocess  # noqa: E402

def pick_strategy(tpu: str | None = None) -> Any:
    """TPUStrategy when a TPU resolves, MirroredStrategy on >1 GPU, else the default strategy.

    A TPU is tried when named (``tpu`` / ``config.tpu``, else ``$TPU_NAME``; "local" on a TPU VM),
    and on a machine with TPU chips attached (``/dev/accel*``, a TPU VM) as "local". A TPU that
    was named but does not resolve is an error (never a silent fall-back to CPU); an auto-detected
    one that does not resolve falls through to the GPU/CPU choices."""
    import glob

    named = tpu or os.environ.get("TPU_NAME")
    candidate = named or ("local" if glob.glob("/dev/accel*") else None)
    if candidate:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="" if candidate == "local" else candidate)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            if named:
                raise InvalidInputError(f"TPU {named!r} (config tpu / $TPU_NAME) does not resolve: {exc}") from None
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _keras_arch(model: Any, config: TrainConfig) -> Architecture:
    return Architecture(f"{config.model}-harmonized", f"{config.model} (harmonized)", "cnn", "keras", "keras",
                        getattr(model, "name", config.model), base_model=None)


def _build_model(model: Any, config: TrainConfig) -> tuple[Any, Architecture | None]:
    """(keras model, its Architecture or None); called inside the strategy's scope."""
    if model is None or isinstance(model, str):
        from model_zoo.harmonization.models import build

        return build(model or config.model, framework="tf", num_classes=config.num_classes, init=config.init)
    if isinstance(model, keras.Model):
        return model, None
    if callable(model):
        built = model()
        if not isinstance(built, keras.Model):
            raise InvalidInputError(f"train: the model factory returned {type(built).__name__}, not a keras.Model")
        return built, None
    raise InvalidInputError(f"train: model must be a keras.Model, a zero-argument factory, a model id or None, "
                            f"got {type(model).__name__}")


def train(model: Any, data: D.DataSource, config: TrainConfig | Mapping[str, Any] | None, output_dir: str | Path,
          *, arch: Architecture | None = None, strategy: Any = None,
          on_step: Callable[[int, dict[str, float]], None] | None = None, export: bool = True) -> TrainResult:
    """Train a Keras model on ``data`` with ``config``'s recipe under ``strategy``; see the module doc.

    * ``model``: a ``keras.Model``; a zero-argument callable returning one (built inside the
      strategy scope: required for MirroredStrategy/TPUStrategy, whose variables must be created
      there); a catalog Keras id; or ``None`` (``config.model``).
    * ``data``: as for :func:`.trainer_torch.train`, but each batch is a *global* batch of
      ``config.batch_size`` images (divisible by the number of replicas): images (B, H, W, 3) NHWC
      float in [0, 255], labels (B,) int, heatmaps (B, H, W[, 1]), optional tokens (B,).
    * ``arch``: preprocessing (resize to ``input_size``, ``scale``, mean/std, channel order, applied
      inside the step so the saliency is w.r.t. the normalised image as in the paper's code) and
      what the export records. Default for a user model: ImageNet mean/std at 224.
    """
    config = as_config(config)
    if isinstance(model, str) and model != config.model:
        config = config.replace(model=model)  # recorded in config.json and checked on resume
    out = Path(output_dir)
    strategy = strategy or pick_strategy(config.tpu)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise InvalidInputError(f"batch_size {config.batch_size} is not divisible by the {replicas} replicas")
    previous_policy = keras.mixed_precision.global_policy()
    if config.precision != "float32":
        # Keras policy: layers compute in bf16/fp16 and keep float32 variables; the loss casts the
        # logits and the saliency to float32 (loss_tf._f32). fp16 gets Keras' loss scaling. The
        # policy applies to layers built now (a model built by the caller keeps its own).
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if config.precision == "bfloat16" else "mixed_float16")
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        try:
            model, built_arch = _build_model(model, config)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        arch = arch or built_arch or _keras_arch(model, config)
        optimizer = keras.optimizers.SGD(learning_rate=config.peak_lr, momentum=config.momentum,
                                         nesterov=config.nesterov and config.momentum > 0)
        if config.precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    if config.input_size:
        arch = dataclasses.replace(arch, preprocess=dataclasses.replace(arch.preprocess, input_size=config.input_size))
    decay = loss_tf.decay_variables(model)

    spe = _steps_per_epoch(config, data)
    schedule = schedule_from_config(config, spe)
    total = config.epochs * spe if config.max_steps is None else min(config.max_steps, config.epochs * spe)
    aug = np.random.default_rng([config.seed, 0])
    pos = {"step": 0, "epoch": 0, "batch": 0}

    ckpt_dir = out / "checkpoints"
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_var)
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=2)
    if (ckpt_dir / "position.json").is_file():
        pos = _restore(ckpt_dir, checkpoint, config, aug, replicas)
    resumed_from = pos["step"]
    log = MetricsLog(out / "metrics.csv", resume_step=pos["step"],
                     tensorboard_dir=out / "tensorboard" if config.tensorboard else None)
    atomic_write_json(out / "config.json", config.to_dict())

    step_fn = _make_step(strategy, model, optimizer, arch, config, decay)
    metrics: dict[str, float] = {}
    try:
        while pos["step"] < total:
            seen = 0
            for raw in islice(D.epoch_batches(data, pos["epoch"]), pos["batch"], spe):
                seen += 1
                t0 = time.perf_counter()
                lr = schedule(pos["step"])
                _set_lr(optimizer, lr)
                b = D.flip_and_mixup(D.as_batch(raw, where=f"epoch {pos['epoch']} batch {pos['batch']}"), aug,
                                     flip=config.flip, mixup_alpha=config.mixup_alpha, mixup_prob=config.mixup_prob,
                                     num_classes=config.num_classes)
                if len(b) != config.batch_size:
                    raise InvalidInputError(f"epoch {pos['epoch']} batch {pos['batch']}: {len(b)} images, the "
                                            f"TF trainer needs global batches of batch_size={config.batch_size}")
                values = step_fn(_distribute(strategy, b, config.num_classes))
                pos["step"] += 1
                pos["batch"] += 1
                step_var.assign(pos["step"])
                if pos["step"] % config.log_every == 0 or pos["step"] == total:
                    vec = values.numpy()
                    metrics = dict(zip(("total", "cross_entropy", "weight_decay", "harmonization", "accuracy"),
                                       map(float, vec)))
                    dt = time.perf_counter() - t0
                    metrics.update(step=pos["step"], epoch=pos["epoch"], lr=lr, images_per_s=len(b) / dt, seconds=dt)
                    log.write(metrics)
                if pos["step"] == total or (config.checkpoint_every and pos["step"] % config.checkpoint_every == 0):
                    _save(ckpt_dir, manager, aug, pos, config, replicas)
                if on_step is not None:
                    on_step(pos["step"], metrics)
                if pos["step"] >= total:
                    break
            else:
                if seen == 0 and pos["batch"] == 0:
                    raise InvalidInputError(f"the data source yielded no batch for epoch {pos['epoch']}")
                pos["epoch"] += 1
                pos["batch"] = 0
    finally:
        log.close()
    export_dir = None
    if export:
        export_dir = export_model(model, out / "export", arch, harmonized=config.harmonize,
                                  training={**config.to_dict(), "steps": pos["step"], "replicas": replicas,
                                            "strategy": type(strategy).__name__})
    return TrainResult(pos["step"], out, export_dir, metrics, resumed_from=resumed_from, total_steps=total)


def _steps_per_epoch(config: TrainConfig, data: D.DataSource) -> int:
    if config.steps_per_epoch:
        return config.steps_per_epoch
    try:
        n = len(D.epoch_batches(data, 0))  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError("steps_per_epoch is needed: the data source has no len(); set "
                                "--steps-per-epoch or steps_per_epoch in the config") from None
    if n < 1:
        raise InvalidInputError("the data source has no batch")
    return n


def _set_lr(optimizer: Any, lr: float) -> None:
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    inner.learning_rate.assign(lr)


def _distribute(strategy: Any, b: D.TrainBatch, num_classes: int) -> Any:
    """Replica r gets rows [r * B/R, (r+1) * B/R) of the global batch. Labels go as float one-hot /
    soft targets so a run with and without mixup traces one step function each."""
    labels = b.labels if b.labels.ndim == 2 else np.eye(num_classes, dtype=np.float32)[b.labels]
    arrays = (b.images, labels.astype(np.float32), b.heatmaps, b.tokens)
    per = len(b) // strategy.num_replicas_in_sync

    def value(ctx: Any) -> tuple[Any, ...]:
        r = ctx.replica_id_in_sync_group
        return tuple(tf.constant(a[r * per:(r + 1) * per]) for a in arrays)

    return strategy.experimental_distribute_values_from_function(value)


def _make_step(strategy: Any, model: Any, optimizer: Any, arch: Architecture, config: TrainConfig,
               decay: list[Any]) -> Callable[[Any], Any]:
    preprocess = TFPreprocess(arch.preprocess)  # the Keras adapter's own function
    replicas = float(strategy.num_replicas_in_sync)
    kw = dict(lambda_harmonization=config.lambda_harmonization, weight_decay=config.weight_decay,
              label_smoothing=config.label_smoothing, levels=config.pyramid_levels,
              saliency_reduction=config.saliency_reduction, saliency_abs=config.saliency_abs,
              token_normalise=config.token_normalise, decay_vars=decay, harmonize=config.harmonize)

    def replica_step(x: Any, y: Any, h: Any, t: Any) -> Any:
        h = preprocess.resize_maps(h)
        x = preprocess(x)
        with tf.GradientTape() as tape:
            terms = loss_tf.harmonizer_loss(model, x, y, h, t, **kw)
            # each replica's terms are means over its slice: the global mean is their sum / R
            scaled = terms["total"] / replicas
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                scaled = optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(terms["logits"], -1), tf.argmax(y, -1)), tf.float32))
        return tf.stack([tf.cast(terms[k], tf.float32) for k in
                         ("total", "cross_entropy", "weight_decay", "harmonization")] + [acc]) / replicas

    @tf.function
    def step(inputs: Any) -> Any:
        per_replica = strategy.run(replica_step, args=inputs)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return step


def _save(ckpt_dir: Path, manager: Any, aug: np.random.Generator, pos: dict[str, int], config: TrainConfig,
          replicas: int) -> None:
    path = manager.save(checkpoint_number=pos["step"])
    # written after the checkpoint it names: a kill in between leaves the previous, still kept one
    atomic_write_json(ckpt_dir / "position.json", {
        "checkpoint": Path(path).name, "position": dict(pos), "rng": aug.bit_generator.state,
        "config": config.to_dict(), "replicas": replicas})


def _restore(ckpt_dir: Path, checkpoint: Any, config: TrainConfig, aug: np.random.Generator,
             replicas: int) -> dict[str, int]:
    where = ckpt_dir / "position.json"
    try:
        state = json.loads(where.read_text(encoding="utf-8"))
        saved, name = state["config"], state["checkpoint"]
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"checkpoint state {where} is unreadable ({exc}); delete {ckpt_dir} to start over") from None
    check_resumable(saved, config, ckpt_dir)
    if state.get("replicas") != replicas:
        # the data position is per global batch, so a different replica count is safe; say so
        print(f"note: resuming {ckpt_dir} (written with {state.get('replicas')} replicas) on {replicas}")
    try:
        checkpoint.restore(str(ckpt_dir / name)).assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise InvalidInputError(f"checkpoint {ckpt_dir / name} does not fit this model: {str(exc)[:300]}") from None
    aug.bit_generator.state = state["rng"]
    return dict(state["position"])
