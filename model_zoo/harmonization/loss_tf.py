"""The neural harmonizer loss in TensorFlow / Keras 3 (same numbers as :mod:`.loss_torch`).

A port of the paper's release code (serre-lab/Harmonization ``training/loss.py``, ``pyramid.py``)
with its defaults; see :mod:`model_zoo.harmonization.loss_torch` for the options that select the
paper's text instead of its code. Differences from that code, on purpose:

* ``harmonizer_loss`` returns the loss terms (the caller owns the outer ``GradientTape``, the
  optimizer step and the replica scaling) instead of the gradients;
* human maps may be (N, H, W) or (N, H, W, 1) (the ClickMe loader's shape, which broke the
  original: paper-notes bug 3);
* weight-decay exclusions use the layer type and the variable path, because Keras 3 variable
  names (``kernel``, ``gamma``) have lost the ``bn/`` prefixes the original filter looked for.

Images are NHWC, as the model takes them (normalised unless the model normalises itself).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from model_zoo.frameworks import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402  (after TensorFlow, through the safe import above)

STD_EPS = 1e-5
MAX_EPS = 1e-6
_KERNEL = (np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0).astype(np.float32)


def standardize_cut(maps: Any, eps: float = STD_EPS) -> tf.Tensor:
    """relu((m - mean) / (std + eps)) per (N, H, W) map over H, W; population std."""
    maps = tf.convert_to_tensor(maps)
    mean = tf.reduce_mean(maps, axis=(1, 2), keepdims=True)
    std = tf.math.reduce_std(maps, axis=(1, 2), keepdims=True)
    return tf.nn.relu((maps - mean) / (std + eps))


def _downsample(x: tf.Tensor) -> tf.Tensor:
    k = tf.constant(_KERNEL, dtype=x.dtype)[:, :, None, None]
    return tf.nn.conv2d(x[..., None], k, strides=2, padding="SAME")[..., 0]


def pyramid(maps: Any, levels: int = 5) -> list[tf.Tensor]:
    """``levels`` maps (input first) of a 5x5 binomial stride-2 'SAME' pyramid of (N, H, W) maps."""
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    out = [tf.convert_to_tensor(maps)]
    for _ in range(levels - 1):
        out.append(_downsample(out[-1]))
    return out


def _pyramidal_mse_from(true_levels, pred_levels, tokens, token_normalise: bool) -> tf.Tensor:
    tokens = tf.reshape(tf.cast(tokens, pred_levels[0].dtype), (-1, 1, 1))
    terms = []
    for a, b in zip(true_levels, pred_levels):
        sq = tf.square(a - b) * tokens
        if token_normalise:
            hw = tf.cast(tf.shape(a)[1] * tf.shape(a)[2], sq.dtype)
            terms.append(tf.reduce_sum(sq) / (tf.maximum(tf.reduce_sum(tokens), 1.0) * hw))
        else:
            terms.append(tf.reduce_mean(sq))
    return tf.reduce_mean(tf.stack(terms))


def pyramidal_mse(true: Any, pred: Any, tokens: Any, levels: int = 5, *,
                  token_normalise: bool = False) -> tf.Tensor:
    """Mean over levels of ``mean((true_l - pred_l)**2 * token[n])`` (mean over all N by default)."""
    return _pyramidal_mse_from(pyramid(true, levels), pyramid(pred, levels), tokens, token_normalise)


# --- weight decay ---------------------------------------------------------------------------------

_EXCLUDED_PATH_PARTS = ("embed", "token", "norm")


def _excluded_layer(layer: Any) -> bool:
    name = type(layer).__name__
    return (isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                               keras.layers.GroupNormalization, keras.layers.Embedding))
            or "Norm" in name or "Embed" in name)


def decay_variables(model: Any) -> list[Any]:
    """Trainable variables the weight decay applies to: all but those of normalisation and embedding
    layers (by type) and those whose path contains 'embed', 'token' or 'norm' (class tokens,
    position embeddings, custom norms)."""
    excluded: set[int] = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if _excluded_layer(layer):
            excluded.update(id(v) for v in layer.weights)
    out = []
    for v in model.trainable_variables:
        path = str(getattr(v, "path", v.name)).lower()
        if id(v) not in excluded and not any(s in path for s in _EXCLUDED_PATH_PARTS):
            out.append(v)
    return out


def weight_decay_term(variables: list[Any]) -> tf.Tensor:
    """sum(v**2) / 2 (``tf.nn.l2_loss``) over ``variables``, float32."""
    if not variables:
        return tf.constant(0.0)
    return tf.add_n([tf.nn.l2_loss(_f32(v)) for v in variables])


# --- the loss -------------------------------------------------------------------------------------

def _f32(t: Any) -> tf.Tensor:
    """Half-precision (mixed precision) tensors up to float32; float64 stays float64."""
    t = tf.convert_to_tensor(t)
    return t if t.dtype == tf.float64 else tf.cast(t, tf.float32)


def _targets(labels: Any, num_classes: int, dtype: Any = tf.float32) -> tf.Tensor:
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 1:
        if labels.dtype.is_floating:
            raise ValueError("labels must be integer class indices (N,) or soft targets (N, C)")
        return tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=dtype)
    if labels.shape.rank == 2 and labels.shape[1] == num_classes:
        return tf.cast(labels, dtype)
    raise ValueError(f"labels shape {labels.shape} fits neither (N,) nor (N, {num_classes})")


def harmonization_term(saliency: Any, heatmaps: Any, tokens: Any, *, levels: int = 5,
                       token_normalise: bool = False) -> tf.Tensor:
    """Pyramidal token-weighted MSE of the cut saliency and the cut human map rescaled to the
    saliency's max (the scale held out of the gradient)."""
    sal = standardize_cut(saliency)
    heatmaps = tf.cast(heatmaps, sal.dtype)
    if heatmaps.shape.rank == 4:
        heatmaps = heatmaps[..., 0]
    hm = tf.stop_gradient(standardize_cut(heatmaps))
    hm = hm / (tf.reduce_max(hm, axis=(1, 2), keepdims=True) + MAX_EPS)
    hm = hm * tf.stop_gradient(tf.reduce_max(sal, axis=(1, 2), keepdims=True) + MAX_EPS)
    return _pyramidal_mse_from(pyramid(hm, levels), pyramid(sal, levels), tokens, token_normalise)


def harmonizer_loss(
    model: Any,
    images: Any,
    labels: Any,
    heatmaps: Any,
    tokens: Any,
    *,
    lambda_harmonization: float = 1.0,
    weight_decay: float = 1e-5,
    label_smoothing: float = 0.1,
    levels: int = 5,
    saliency_reduction: str = "mean",
    saliency_abs: bool = False,
    token_normalise: bool = False,
    decay_vars: list[Any] | None = None,
    harmonize: bool = True,
    training: bool = True,
) -> dict[str, tf.Tensor]:
    """The harmonizer loss; call it inside the caller's ``tf.GradientTape``.

    images (N, H, W, C) NHWC as the model takes them; labels int (N,) or soft (N, K); heatmaps
    (N, H, W) or (N, H, W, 1); tokens (N,). Returns ``total`` = cross_entropy + weight_decay +
    lambda * harmonization, the three terms (weight_decay already times ``weight_decay``) and the
    logits. The model runs once (``training``); its logits give both the CE and the saliency."""
    images = tf.convert_to_tensor(images)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        logits = _f32(model(images, training=training))
        targets = _targets(labels, logits.shape[-1], logits.dtype)
        score = tf.reduce_sum(logits * targets)
    ce = tf.reduce_mean(keras.losses.categorical_crossentropy(
        targets, logits, from_logits=True, label_smoothing=label_smoothing))
    if decay_vars is None:
        decay_vars = decay_variables(model)
    wd = (tf.cast(weight_decay * weight_decay_term(decay_vars), ce.dtype) if weight_decay
          else tf.zeros((), ce.dtype))
    if harmonize and lambda_harmonization:
        grad = _f32(tape.gradient(score, images))
        if saliency_abs:
            grad = tf.abs(grad)
        if saliency_reduction == "mean":
            sal = tf.reduce_mean(grad, axis=-1)
        elif saliency_reduction == "max":
            sal = tf.reduce_max(grad, axis=-1)
        else:
            raise ValueError(f"saliency_reduction must be 'mean' or 'max', got {saliency_reduction!r}")
        harm = harmonization_term(sal, heatmaps, tokens, levels=levels, token_normalise=token_normalise)
    else:
        harm = tf.zeros((), ce.dtype)
    total = ce + wd + lambda_harmonization * harm
    return {"total": total, "cross_entropy": ce, "weight_decay": wd, "harmonization": harm,
            "logits": tf.stop_gradient(logits)}
