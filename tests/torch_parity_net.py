"""The small network of the Keras/PyTorch parity tests, in PyTorch (NCHW), with TensorFlow's SAME
padding written out with F.pad: the zoo's parity test copies a Keras model's weights into it, the
explainer tests run captum on it."""
from __future__ import annotations

from model_zoo.frameworks import import_torch

torch = import_torch()
F = torch.nn.functional


class TorchParityNet(torch.nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.bn1 = torch.nn.BatchNorm2d(8, eps=1e-3)
        self.conv2 = torch.nn.Conv2d(8, 12, 4)
        self.head = torch.nn.Linear(12, classes)

    def forward(self, x):
        x = self.conv1(F.pad(x, (0, 1, 0, 1)))
        x = F.relu(self.bn1(x))
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, stride=2)
        x = F.relu(self.conv2(F.pad(x, (1, 2, 1, 2))))
        return self.head(x.mean(dim=(2, 3)))
