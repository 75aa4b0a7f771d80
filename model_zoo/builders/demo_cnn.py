"""The small CNN that ``alignbench demo`` trains on CPU (catalog builder ``demo_cnn``).

Exported model folders name it as ``"architecture": {"source": "demo_cnn", "source_id": "demo_cnn_w24"}``
(the number is the width of the first layer), so ``model_zoo.load(folder)`` and ``alignbench run
--model FOLDER`` rebuild the graph here and load the folder's safetensors weights (``strict``).

The network takes 112x112 RGB images normalised with the ImageNet mean/std (the exported
``preprocess`` resizes the 224x224 benchmark images to 112 inside the differentiated function, so
every saliency map is still in the 224x224 frame: a 2x bilinear shrink reads every input pixel).
Five 3x3/5x5 convolutions (four of stride 2) with group norm and ReLU, global average pooling, a 1000-way linear head
(ImageNet indices, as the ClickMe labels). About 0.2 M parameters, ~40 MFLOP per image.
"""
from __future__ import annotations

import re
from typing import Any

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.weights import Built, WeightsRequest, torch_file_into

INPUT_SIZE = 112
DEFAULT_WIDTH = 24
_SOURCE_ID = re.compile(r"^demo_cnn_w(\d{1,3})(?:_p(\d))?(_nonorm)?$")
NORMS = ("group", "none")


def source_id(width: int = DEFAULT_WIDTH, pool: int = 1, norm: str = "group") -> str:
    """The ``architecture.source_id`` naming a demo CNN of first-layer width ``width`` (and input
    average-pooling ``pool``, when > 1: ``demo_cnn_w8_p2``; no normalisation layers: ``_nonorm``)."""
    return f"demo_cnn_w{int(width)}" + (f"_p{int(pool)}" if pool > 1 else "") + ("_nonorm" if norm == "none" else "")


def demo_cnn(width: int = DEFAULT_WIDTH, num_classes: int = 1000, pool: int = 1, norm: str = "group") -> Any:
    """An untrained demo CNN (``torch.nn.Module``): (N, 3, H, W) normalised images -> (N, num_classes) logits.

    ``pool`` > 1 first averages ``pool`` x ``pool`` blocks of the input: the network runs at a lower
    resolution while every input pixel still gets a gradient (a bilinear resize by more than 2x, e.g.
    224 -> 64, skips pixels, and the skipped ones would read as zero saliency). ``norm``: "group"
    (GroupNorm after each convolution, the demo's) or "none" (biased convolutions, no normalisation;
    a variant tried for issue 15, kept for experiments: ``bench/bench_demo_seeds.py --set norm=none``)."""
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    nn = torch.nn
    if not 1 <= width <= 256:
        raise InvalidInputError(f"demo CNN width must be in 1..256, got {width}")
    widths = [width, 2 * width, 4 * width, 4 * width, 8 * width]
    if not 1 <= pool <= 8:
        raise InvalidInputError(f"demo CNN input pooling must be in 1..8, got {pool}")
    if norm not in NORMS:
        raise InvalidInputError(f"demo CNN norm must be one of {', '.join(NORMS)}, got {norm!r}")
    layers: list[Any] = [nn.AvgPool2d(pool)] if pool > 1 else []
    c_in = 3
    for i, c_out in enumerate(widths):
        k = 5 if i == 0 else 3
        # GroupNorm, not BatchNorm: per image, so the network (and its saliency) is the same function
        # in training and in evaluation; with BatchNorm's batch statistics the harmonized saliency
        # did not carry over to eval mode after a short CPU training
        conv = nn.Conv2d(c_in, c_out, k, stride=2 if i != 3 else 1, padding=k // 2, bias=norm == "none")
        layers += [conv, nn.GroupNorm(4 if c_out % 4 == 0 else 1, c_out)] if norm == "group" else [conv]
        layers.append(nn.ReLU(inplace=False))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    """Catalog-builder entry point: the architecture named by ``spec.source_id``, with random weights or
    the local weights file of ``request`` (there are no published weights: the demo trains them)."""
    match = _SOURCE_ID.match(spec.source_id or "")
    if match is None:
        raise InvalidInputError(f"model {spec.id!r}: architecture source_id {spec.source_id!r} is not a demo CNN "
                                "(expected demo_cnn_w<width>[_p<pool>], e.g. demo_cnn_w24)")
    model = demo_cnn(int(match.group(1)), pool=int(match.group(2) or 1), norm="none" if match.group(3) else "group")
    if request.mode == "file":
        return torch_file_into(model, request.path)
    if request.mode == "pretrained":
        raise InvalidInputError(f"model {spec.id!r}: the demo CNN has no published weights; "
                                "load an exported model folder (`alignbench demo` writes them)")
    return Built(model)
