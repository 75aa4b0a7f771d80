"""Models whose weights are plain checkpoint URLs (``weights_url``), fetched into ``cache_dir("weights")``:

* ``bagnet``: BagNet-9/17/33, a port of ``bagnets.pytorchnet`` (Brendel & Bethge 2019), which has no
  installable package; state-dict keys are the upstream ones;
* ``simclr``: SimCLR ResNet-50 1x/4x as converted to PyTorch (``resnet_wider`` in model-vs-human:
  a torchvision-layout ResNet-50 with every width multiplied); they take [0, 1] pixels without
  normalisation, so the catalog's ImageNet mean/std is undone inside the model, as model-vs-human does;
* ``resnet50_checkpoint``: torchvision ResNet-50 with robustness-library (``ckpt['model']``) or
  texture-vs-shape (``ckpt['state_dict']``) weights.

Checkpoints are read with ``torch.load(weights_only=True)``; see :mod:`model_zoo.weights`.
"""
from __future__ import annotations

import re

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.frameworks import import_torch
from model_zoo.weights import Built, WeightsRequest, fetch_url, torch_file_into

torch = import_torch()
nn = torch.nn


# --- BagNet (bagnets.pytorchnet) -------------------------------------------------------------------
class BagNetBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 kernel_size: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        # padding 0: each output unit sees a bounded patch (the point of BagNets)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=kernel_size, stride=stride, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = self.downsample(x) if self.downsample is not None else x
        diff = residual.size(-1) - out.size(-1)
        if diff:  # unpadded 3x3 convs shrink the map: crop the shortcut to match (upstream does the same)
            residual = residual[:, :, :-diff, :-diff]
        return self.relu(out + residual)


class BagNet(nn.Module):
    """BagNet: ResNet-50 layout whose 3x3 convs are replaced by 1x1 in the last blocks of each stage,
    limiting the receptive field to 9, 17 or 33 pixels. Input (N,3,224,224) -> logits (N,1000)."""

    def __init__(self, layers=(3, 4, 6, 3), strides=(2, 2, 2, 1), kernel3=(1, 1, 1, 1), num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=1, stride=1, padding=0, bias=False)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=0.001)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(64, layers[0], strides[0], kernel3[0])
        self.layer2 = self._make_layer(128, layers[1], strides[1], kernel3[1])
        self.layer3 = self._make_layer(256, layers[2], strides[2], kernel3[2])
        self.layer4 = self._make_layer(512, layers[3], strides[3], kernel3[3])
        self.fc = nn.Linear(512 * BagNetBottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _make_layer(self, planes: int, blocks: int, stride: int, kernel3: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BagNetBottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4),
            )
        layers = [BagNetBottleneck(self.inplanes, planes, stride, downsample, kernel_size=1 if kernel3 == 0 else 3)]
        self.inplanes = planes * 4
        for i in range(1, blocks):
            layers.append(BagNetBottleneck(self.inplanes, planes, kernel_size=1 if kernel3 <= i else 3))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv2(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))  # = upstream AvgPool2d(full size) + flatten


BAGNET_KERNEL3 = {9: (1, 1, 0, 0), 17: (1, 1, 1, 0), 33: (1, 1, 1, 1)}


def bagnet(patch: int) -> BagNet:
    return BagNet(kernel3=BAGNET_KERNEL3[patch])


# --- SimCLR ResNet-50 (resnet_wider) ------------------------------------------------------------------
class _WideBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class WideResNet50(nn.Module):
    """torchvision-layout ResNet-50 with all widths x ``width_mult`` (SimCLR's 1x/2x/4x)."""

    def __init__(self, width_mult: int = 1, num_classes: int = 1000):
        super().__init__()
        w = 64 * width_mult
        self.inplanes = w
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(w, 3)
        self.layer2 = self._make_layer(w * 2, 4, stride=2)
        self.layer3 = self._make_layer(w * 4, 6, stride=2)
        self.layer4 = self._make_layer(w * 8, 3, stride=2)
        self.fc = nn.Linear(w * 8 * 4, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * 4:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
        layers = [_WideBottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * 4
        layers += [_WideBottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x.mean(dim=(2, 3), keepdim=True), 1))


class Unnormalize(nn.Module):
    """``x * std + mean``: hands [0, 1] pixels to a model that expects them, while the adapter applies
    the catalog's ImageNet normalisation (model-vs-human's SimCLR wrapper does the same)."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return self.net(x * self.std + self.mean)


# --- dispatch --------------------------------------------------------------------------------------------
def architecture(spec: ModelSpec) -> nn.Module:
    """The randomly initialised architecture of a checkpoint row."""
    if spec.builder == "bagnet":
        match = re.fullmatch(r"bagnet(9|17|33)", spec.id) or re.search(r"bagnet(9|17|33)\b", spec.source_id)
        if not match:
            raise InvalidInputError(f"catalog row {spec.id!r}: cannot tell the BagNet patch size (9, 17 or 33)")
        return bagnet(int(match.group(1)))
    if spec.builder == "simclr":
        match = re.search(r"resnet50x(\d+)", spec.source_id)
        if not match:
            raise InvalidInputError(f"catalog row {spec.id!r}: cannot tell the SimCLR width from {spec.source_id!r}")
        return WideResNet50(int(match.group(1)))
    if spec.builder == "resnet50_checkpoint":
        import torchvision

        return torchvision.models.resnet50(weights=None)
    raise InvalidInputError(f"catalog row {spec.id!r}: builder {spec.builder!r} is not a checkpoint builder")


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    net = architecture(spec)
    if request.random:
        built = Built(net)
    else:
        path = request.path if request.mode == "file" else fetch_url(
            spec.weights_url, model_id=spec.id, sha256=spec.weights_sha256 or None)
        built = torch_file_into(net, path)
    if spec.builder == "simclr":
        if spec.mean is None or spec.std is None:
            raise InvalidInputError(f"catalog row {spec.id!r}: SimCLR rows need the mean/std the model undoes")
        built.model = Unnormalize(built.model, spec.mean, spec.std)
    return built
