"""The PyTorch architecture equivalent to each released harmonized model's Keras architecture.

| harmonized id | PyTorch architecture | why it is the same function |
|---|---|---|
| harmonized_vgg16 | torchvision ``vgg16`` without its adaptive pooling | 3x3 convs pad 1 (= Keras ``same`` at stride 1), 2x2 max pools; torchvision's ``AdaptiveAvgPool2d(7)`` is the identity at 224 px and is dropped so other sizes keep Keras's flatten size |
| harmonized_resnet50v2 | :class:`model_zoo.convert.keras_resnet_v2.KerasResNetV2` | no library model has Keras's layout (stride in the last block, bias in the stem conv, zero-padded stem pooling) |
| harmonized_efficientnet_b0 | timm ``tf_efficientnet_b0`` | the port of TensorFlow's EfficientNet: ``same`` padding, BN eps 1e-3, swish, the same SE |
| harmonized_vit_b16 | timm ``vit_base_patch16_224`` | pre-norm blocks, LayerNorm eps 1e-6, exact GELU, class-token head |
| harmonized_convnext_tiny | timm ``convnext_tiny`` | kecam ports the same (Facebook) model: LayerNorm eps 1e-6, exact GELU, layer scale |
| harmonized_maxvit_tiny | timm ``maxvit_tiny_tf_224`` | both are ports of Google's TensorFlow MaxViT: ``same`` padding, BN eps 1e-3, LayerNorm eps 1e-5, tanh-GELU, tanh pre-logits |
| harmonized_levit_128 | timm ``levit_128`` | both port Facebook's LeViT; the released model has no distillation head, so ``head_dist`` holds a copy of ``head`` and the distilled model's eval output ``(head + head_dist) / 2`` equals it exactly |

Where the input size changes a weight's shape (ViT position embeddings, MaxViT windows, LeViT
attention biases, VGG's first dense layer) the architecture is built for ``input_size``.
"""
from __future__ import annotations

from typing import Any

from model_zoo.errors import InvalidInputError

TIMM_NAMES = {
    "harmonized_efficientnet_b0": "tf_efficientnet_b0",
    "harmonized_vit_b16": "vit_base_patch16_224",
    "harmonized_convnext_tiny": "convnext_tiny",
    "harmonized_maxvit_tiny": "maxvit_tiny_tf_224",
    "harmonized_levit_128": "levit_128",
}
# timm models whose weights depend on the input size take it as ``img_size``
_SIZED = {"harmonized_vit_b16", "harmonized_maxvit_tiny", "harmonized_levit_128"}
PORTED = ("harmonized_vgg16", "harmonized_resnet50v2", *TIMM_NAMES)


def library_name(model_id: str) -> str:
    """What the PyTorch architecture of ``model_id`` is, in words (for docs, folders and messages)."""
    if model_id == "harmonized_vgg16":
        return "torchvision vgg16 (adaptive pooling dropped)"
    if model_id == "harmonized_resnet50v2":
        return "alignbench KerasResNetV2 (keras.applications ResNet50V2 layout)"
    if model_id in TIMM_NAMES:
        return f"timm {TIMM_NAMES[model_id]}"
    raise InvalidInputError(f"model {model_id!r} has no PyTorch port; ported: {', '.join(PORTED)}")


def torch_architecture(model_id: str, input_size: int = 224) -> Any:
    """The randomly initialised ``torch.nn.Module`` equivalent to ``model_id``'s Keras model at
    ``input_size`` px: (N, 3, S, S) normalised images -> (N, 1000) logits, in eval mode."""
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    library_name(model_id)  # unknown ids fail here, with the list of ported ones
    if model_id == "harmonized_vgg16":
        import torchvision

        if input_size % 32:
            raise InvalidInputError(f"VGG16 needs an input size divisible by 32, got {input_size}")
        model = torchvision.models.vgg16(weights=None, num_classes=1000)
        model.avgpool = torch.nn.Identity()
        model.classifier[0] = torch.nn.Linear(512 * (input_size // 32) ** 2, 4096)
    elif model_id == "harmonized_resnet50v2":
        from model_zoo.convert.keras_resnet_v2 import KerasResNetV2

        model = KerasResNetV2()
    else:
        import timm

        kwargs: dict[str, Any] = {"img_size": input_size} if model_id in _SIZED else {}
        model = timm.create_model(TIMM_NAMES[model_id], pretrained=False, num_classes=1000, **kwargs)
    return model.eval()
