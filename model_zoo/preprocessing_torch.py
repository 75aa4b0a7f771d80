"""A :class:`~model_zoo.preprocessing.Preprocess` as one differentiable PyTorch function, shared by the
adapter (saliency, predictions) and the trainer, so the two cannot drift apart."""
from __future__ import annotations

from typing import Any

from model_zoo.frameworks import import_torch
from model_zoo.preprocessing import Preprocess

torch = import_torch()
F = torch.nn.functional

# F.interpolate's "nearest" is the legacy floor rule; "nearest-exact" is half-pixel like TensorFlow.
TORCH_MODES = {"bilinear": "bilinear", "bicubic": "bicubic", "nearest": "nearest-exact"}


class TorchPreprocess:
    """``x`` NCHW float in [0, 255] at 224x224 (RGB) -> the model's input, differentiably: RGB->BGR
    when the model wants it (a flip, whose backward is a flip), resize to ``input_size`` unless already
    there (half-pixel centres, no antialias), then ``x * gain + offset`` per channel (scale, mean and std folded into
    one multiply-add, in the model's channel order). ``pre=None``: the identity."""

    def __init__(self, pre: Preprocess | None, device: Any = "cpu") -> None:
        self.pre = pre
        if pre is None:
            return
        gain, offset = pre.affine()
        self.bgr = pre.channel_order == "BGR"
        if self.bgr:  # normalise in RGB, then reorder: fold the reorder into the constants
            gain, offset = gain[::-1], offset[::-1]
        self.gain = torch.tensor(gain, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.offset = torch.tensor(offset, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        mode = TORCH_MODES[pre.interpolation]
        self.resize = {"mode": mode, **({} if mode == "nearest-exact" else {"align_corners": False, "antialias": False})}

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        p = self.pre
        if p is None:
            return x.contiguous()
        if self.bgr:
            x = x.flip(1)
        if x.shape[-2:] != (p.input_size, p.input_size):  # images already at the input size are not resized
            x = F.interpolate(x.contiguous(), size=(p.input_size, p.input_size), **self.resize)
        return torch.addcmul(self.offset, x, self.gain).contiguous()

    def resize_maps(self, h: "torch.Tensor") -> "torch.Tensor":
        """(N, H, W) human maps to the model's input size (bilinear, as the images' frame)."""
        p = self.pre
        if p is None or h.shape[-2:] == (p.input_size, p.input_size):
            return h
        return F.interpolate(h[:, None], (p.input_size, p.input_size), mode="bilinear", align_corners=False,
                             antialias=False)[:, 0]
