"""The paper's ClickMe preprocessing as TensorFlow ops (serre-lab/Harmonization v0.0.9).

These functions ARE the reference pipeline, not an approximation of it: TF's default ``decode_jpeg``
(libjpeg's fast integer IDCT), ``tf.image.resize(..., "bilinear")`` (half-pixel centres, no
antialias, also when shrinking) and the off-centre 10x10 Gaussian applied by ``tf.nn.conv2d(...,
"SAME")`` (zero padding 4 top/left, 5 bottom/right). See ``shared/reference/conventions.md``.

They take and return TF tensors and are used both inside ``tf.data`` (the loader) and by the numpy
entry points in :mod:`benchmark.datasets.clickme`, so the two can never drift apart.

One deliberate addition to the paper's chain (:func:`keep_constant`): a map that is constant
*before* the chain (every pixel equal) leaves it exactly constant, at its own value. The paper's
zero-padded blur would darken its border, so a map with no spatial information got a defined
Spearman rho (a dataset of constant maps: ceiling 1.000, centre-bias 100 %). Exactly constant, it
has no rho anywhere downstream (scores, centre-bias baseline, split-half ceiling) and is counted as
undefined; any other map is untouched, bit for bit.
TensorFlow is imported on first use (through ``model_zoo.frameworks.import_tensorflow``).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

IMAGE_SIZE = 256  # stored ClickMe images and heatmaps are 256x256
OUT_SIZE = 224  # what the models and the metrics see
BLUR_SIZE = 64  # heatmaps are blurred at 64x64
BLUR_KERNEL_SIZE = 10
BLUR_SIGMA = 10.0


def tf_module() -> Any:
    """TensorFlow, imported on first use through the framework import guard."""
    from model_zoo.frameworks import import_tensorflow

    return import_tensorflow()


def gaussian_kernel(size: int = BLUR_KERNEL_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """The paper's ``gaussian_kernel``: (size, size) float32, sum 1.

    x runs ``-(size-1)//2 .. (size-1)//2`` left to right and y runs the other way top to bottom, with
    Python's floor division: for size 10 that is x = -5..4, y = 4..-5, so the peak sits at row 4,
    column 5 (off-centre). Computed in float64 then cast, as the reference does.
    """
    half = (size - 1) // 2
    xs, ys = np.meshgrid(np.arange(-(size - 1) // 2, half + 1), np.arange(half, -(size - 1) // 2 - 1, -1))
    kernel = np.exp(-(xs**2 + ys**2) / (2.0 * sigma**2)) / (2.0 * np.pi * sigma**2)
    return (kernel / kernel.sum()).astype(np.float32)


@lru_cache(maxsize=None)
def _kernel_hwio(size: int, sigma: float) -> np.ndarray:
    # numpy, not a cached tensor: a tensor made while tracing one tf.data graph is unusable in another
    return gaussian_kernel(size, sigma)[:, :, None, None]


def resize_bilinear(x: Any, size: int) -> Any:
    """``tf.image.resize`` bilinear (half-pixel centres, no antialias) of NHWC or HWC to size x size."""
    return tf_module().image.resize(x, (size, size), method="bilinear", antialias=False)


def blur_same(x: Any, size: int = BLUR_KERNEL_SIZE, sigma: float = BLUR_SIGMA) -> Any:
    """Cross-correlate (N,H,W,1) float32 with :func:`gaussian_kernel` under TF 'SAME' zero padding."""
    return tf_module().nn.conv2d(x, tf_module().constant(_kernel_hwio(size, sigma)), strides=1, padding="SAME")


def keep_constant(before: Any, after: Any) -> Any:
    """``after`` (N,H',W',1), except that each map constant in ``before`` (N,H,W,1) is replaced by
    that constant: undefined stays undefined (see the module docstring). Other maps pass unchanged."""
    tf = tf_module()
    lo = tf.reduce_min(before, axis=[1, 2, 3], keepdims=True)
    hi = tf.reduce_max(before, axis=[1, 2, 3], keepdims=True)
    return tf.where(tf.equal(lo, hi), tf.broadcast_to(lo, tf.shape(after)), after)


def preprocess_heatmaps_tf(h: Any, *, blur: bool = True) -> Any:
    """(N,256,256,1) float32 heatmaps -> (N,224,224) float32: resize 64, blur, resize 224 (the
    paper's chain; ``blur=False``: resize 224 only). Constant maps stay constant (:func:`keep_constant`)."""
    out = resize_bilinear(blur_same(resize_bilinear(h, BLUR_SIZE)), OUT_SIZE) if blur else resize_bilinear(h, OUT_SIZE)
    return keep_constant(h, out)[..., 0]


def preprocess_images_tf(x: Any) -> Any:
    """(N,256,256,3) float32 in [0,255] -> (N,224,224,3) float32 (bilinear, no antialias, no crop)."""
    return resize_bilinear(x, OUT_SIZE)


def decode_jpeg(data: Any) -> Any:
    """TF's default JPEG decoder (fast integer IDCT, channels as stored), uint8 HWC."""
    return tf_module().io.decode_jpeg(data)
