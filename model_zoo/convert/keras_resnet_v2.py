"""``keras.applications.ResNet50V2`` in PyTorch (no timm or torchvision model has its layout).

What differs from timm's ``resnetv2_50`` (BiT layout), and is reproduced here:

* the stride of a stage sits in its *last* block (3x3 conv of stride 2, identity shortcut through a
  1x1 max pooling of stride 2, i.e. every other pixel), not in the first;
* the 7x7 stem convolution has a bias and no norm (pre-activation), and the max pooling after it
  pads with zeros (Keras's ``ZeroPadding2D``), not with -inf, which matters because the stem output
  is not rectified;
* batch norms use Keras's ``epsilon=1.001e-5``; the stage convolutions pad symmetrically, as Keras's
  explicit ``ZeroPadding2D`` + ``valid`` does (unlike TF ``same`` padding).

Names are PyTorch-style (``stages.0.0.conv1``: stage 0, block 0); :mod:`model_zoo.convert.weight_maps` maps the
Keras layer names (``conv2_block1_1_conv``) onto them.
"""
from __future__ import annotations

from typing import Sequence

from model_zoo.frameworks import import_torch

torch = import_torch()
nn, F = torch.nn, torch.nn.functional

BN_EPS = 1.001e-5


class PreActBottleneck(nn.Module):
    """Keras's ``block2``: BN-ReLU pre-activation, 1x1 -> 3x3 (stride) -> 1x1 (4x width)."""

    def __init__(self, in_chs: int, width: int, *, stride: int = 1, conv_shortcut: bool = False) -> None:
        super().__init__()
        self.stride = stride
        self.preact_bn = nn.BatchNorm2d(in_chs, eps=BN_EPS)
        self.shortcut = nn.Conv2d(in_chs, 4 * width, 1, stride=stride) if conv_shortcut else None
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width, eps=BN_EPS)
        self.conv3 = nn.Conv2d(width, 4 * width, 1)

    def forward(self, x: "torch.Tensor") -> "torch.Tensor":
        preact = F.relu(self.preact_bn(x))
        if self.shortcut is not None:
            shortcut = self.shortcut(preact)
        else:  # Keras: MaxPooling2D(1, strides=stride) on the block input
            shortcut = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
        y = F.relu(self.bn1(self.conv1(preact)))
        y = F.relu(self.bn2(self.conv2(y)))
        return shortcut + self.conv3(y)


class KerasResNetV2(nn.Module):
    """(N, 3, H, W) normalised images -> (N, num_classes) logits; ``depths`` (3, 4, 6, 3) is ResNet50V2."""

    def __init__(self, depths: Sequence[int] = (3, 4, 6, 3), widths: Sequence[int] = (64, 128, 256, 512),
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        stages, in_chs = [], 64
        for i, (depth, width) in enumerate(zip(depths, widths)):
            last_stride = 2 if i < len(depths) - 1 else 1
            blocks = [PreActBottleneck(in_chs if j == 0 else 4 * width, width, conv_shortcut=j == 0,
                                       stride=last_stride if j == depth - 1 else 1) for j in range(depth)]
            stages.append(nn.Sequential(*blocks))
            in_chs = 4 * width
        self.stages = nn.Sequential(*stages)
        self.post_bn = nn.BatchNorm2d(in_chs, eps=BN_EPS)
        self.fc = nn.Linear(in_chs, num_classes)

    def forward(self, x: "torch.Tensor") -> "torch.Tensor":
        x = F.max_pool2d(F.pad(self.stem(x), (1, 1, 1, 1)), 3, stride=2)  # zero padding, as Keras
        x = F.relu(self.post_bn(self.stages(x)))
        return self.fc(x.mean(dim=(2, 3)))
