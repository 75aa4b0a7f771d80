"""A :class:`~model_zoo.preprocessing.Preprocess` as one differentiable TensorFlow function, shared by
the Keras adapter and the TensorFlow trainer, so the two cannot drift apart."""
from __future__ import annotations

from typing import Any

from model_zoo.frameworks import import_tensorflow
from model_zoo.preprocessing import Preprocess

tf = import_tensorflow()

TF_METHODS = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest"}


class TFPreprocess:
    """``x`` NHWC float in [0, 255] at 224x224 (RGB) -> the model's input, differentiably: RGB->BGR
    when the model wants it (a reverse, which differentiates as a reverse; gather's gradient is a
    scatter), resize to ``input_size`` unless already there (``tf.image.resize``: half-pixel centres, no
    antialias), then
    ``x * gain + offset`` per channel in the model's channel order. ``pre=None``: the identity."""

    def __init__(self, pre: Preprocess | None) -> None:
        self.pre = pre
        if pre is None:
            return
        gain, offset = pre.affine()
        self.bgr = pre.channel_order == "BGR"
        if self.bgr:
            gain, offset = gain[::-1], offset[::-1]
        self.gain, self.offset = tf.constant(gain, tf.float32), tf.constant(offset, tf.float32)

    def __call__(self, x: Any) -> Any:
        p = self.pre
        if p is None:
            return x
        if self.bgr:
            x = tf.reverse(x, axis=[-1])
        if tuple(x.shape[1:3]) != (p.input_size, p.input_size):  # already at the input size: not resized
            x = tf.image.resize(x, (p.input_size, p.input_size), method=TF_METHODS[p.interpolation], antialias=False)
        return x * self.gain + self.offset

    def resize_maps(self, h: Any) -> Any:
        """(N, H, W) human maps to the model's input size (bilinear, as the images' frame)."""
        p = self.pre
        if p is None or tuple(h.shape[1:3]) == (p.input_size, p.input_size):
            return h
        return tf.image.resize(h[..., None], (p.input_size, p.input_size), method="bilinear", antialias=False)[..., 0]
