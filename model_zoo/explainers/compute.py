"""Framework-neutral arithmetic of the gradient explainers, on numpy arrays.

Each framework adapter supplies one primitive, ``gradients(z, labels) -> (logits (m, C), dz (m, 224,
224, 3))``: the gradient of the explainer's target with respect to ``z``, the differentiated input
(the image, or the normalised image ``x * gain + offset``; see :mod:`model_zoo.explainers.spec`),
for m rows at a time. This module builds the rows (noisy copies, integration paths), combines the
gradients and reduces the colour channels, so that PyTorch and Keras compute every method the same
way. All copies of a chunk of images go through ``gradients`` together (batched, not one by one).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from model_zoo.explainers.spec import Explainer

Gradients = Callable[[np.ndarray, np.ndarray], "tuple[np.ndarray, np.ndarray]"]


def reduce_channels(attribution: np.ndarray, reduction: str) -> np.ndarray:
    """(N, H, W, 3) attribution -> (N, H, W) float32 map by ``reduction`` (spec.REDUCTIONS)."""
    if reduction == "max-abs":
        out = np.abs(attribution).max(axis=-1)
    elif reduction == "mean-abs":
        out = np.abs(attribution).mean(axis=-1)
    elif reduction == "abs-mean":
        out = np.abs(attribution.mean(axis=-1))
    elif reduction == "signed-mean":
        out = attribution.mean(axis=-1)
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    return out.astype(np.float32, copy=False)


def smoothgrad_noise(seed: int, first: int, count: int, samples: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal noise (count, samples, *shape) float32 for images ``first .. first+count-1`` of a
    call: image i's noise depends only on (seed, i), so it does not change with the batch size."""
    out = np.empty((count, samples, *shape), np.float32)
    for i in range(count):
        out[i] = np.random.default_rng([seed, first + i]).standard_normal((samples, *shape), dtype=np.float32)
    return out


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(alphas, weights) of the ``steps``-point Gauss-Legendre rule on [0, 1] (captum's default for IG)."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (0.5 * (1 + nodes)).astype(np.float32), (0.5 * weights).astype(np.float32)


def attribute(explainer: Explainer, z: np.ndarray, labels: np.ndarray, gradients: Gradients, *,
              first: int = 0) -> tuple[np.ndarray | None, np.ndarray]:
    """(logits of ``z`` or None when no pass saw the clean input, (n, 224, 224, 3) attribution) of
    ``explainer`` (not grad-cam) for the differentiated inputs ``z`` (n, 224, 224, 3) float32;
    ``first``: the index of ``z[0]`` in the caller's batch (seeds SmoothGrad's noise)."""
    method, n = explainer.method, len(z)
    if method in ("saliency", "gradient-x-input"):
        logits, grad = gradients(z, labels)
        return logits, grad if method == "saliency" else z * grad
    k = explainer.samples
    rows_labels = np.repeat(labels, k)
    if method == "smoothgrad":
        noise = smoothgrad_noise(explainer.param("seed"), first, n, k, z.shape[1:])
        spread = (z.reshape(n, -1).max(axis=1) - z.reshape(n, -1).min(axis=1)) * explainer.param("sigma")
        rows = z[:, None] + noise * spread.reshape(n, 1, 1, 1, 1).astype(np.float32)
        _, grad = gradients(rows.reshape(n * k, *z.shape[1:]), rows_labels)
        return None, grad.reshape(n, k, *z.shape[1:]).mean(axis=1)
    if method == "integrated-gradients":  # zero baseline in z: (z - 0) * integral of dz along 0 -> z
        alphas, weights = gauss_legendre(k)
        rows = z[:, None] * alphas.reshape(1, k, 1, 1, 1)
        _, grad = gradients(rows.reshape(n * k, *z.shape[1:]), rows_labels)
        integral = np.tensordot(weights, grad.reshape(n, k, *z.shape[1:]), axes=([0], [1]))
        return None, z * integral
    raise ValueError(f"attribute: {method!r} is not a gradient method")
