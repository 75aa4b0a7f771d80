"""Where each Keras layer of a released harmonized model goes in its PyTorch port: data only.

A :class:`Rule` matches a Keras *layer path* (a variable's path without its last component: the
``stack_1_block_1/mbconv/preact_bn`` of ``stack_1_block_1/mbconv/preact_bn/gamma:0``) in full and
names the PyTorch module (or, for ``kind="tensor"``, the tensor) it fills. Targets refer to the
pattern's groups as ``{1}``, with an offset as ``{1-1}`` (Keras counts blocks from 1, PyTorch from 0),
or as ``{2:letter}`` (``a`` -> 0, ``b`` -> 1: EfficientNet's block letters). ``kind`` says how the
layer's variables map (:data:`model_zoo.convert.keras_to_torch.KINDS`). A rule with ``concat`` fills
one tensor from several layers: the group named ``part`` picks the slot (ViT's separate query, key
and value become timm's one ``qkv``). A rule with several targets fills each (LeViT's single head
also fills timm's distillation head, see :mod:`model_zoo.convert.ports`).

The first matching rule wins. The layer names are those of the authors' files: Keras 2 builds of
keras.applications, the ``efficientnet`` package, vit_keras 0.1 and keras-cv-attention-models 1.4
(checked by ``tests/test_zoo_harmonized.py`` against those packages).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    keras: str
    torch: str | tuple[str, ...]
    kind: str
    concat: tuple[str, ...] = ()


_VGG_FEATURES = {"block1_conv1": 0, "block1_conv2": 2, "block2_conv1": 5, "block2_conv2": 7,
                 "block3_conv1": 10, "block3_conv2": 12, "block3_conv3": 14, "block4_conv1": 17,
                 "block4_conv2": 19, "block4_conv3": 21, "block5_conv1": 24, "block5_conv2": 26,
                 "block5_conv3": 28}

VGG16 = (
    *(Rule(name, f"features.{index}", "conv") for name, index in _VGG_FEATURES.items()),
    Rule("fc1", "classifier.0", "dense_after_nhwc_flatten"),
    Rule("fc2", "classifier.3", "dense"),
    Rule("predictions", "classifier.6", "dense"),
)

# keras.applications ResNet50V2 -> model_zoo.convert.keras_resnet_v2.KerasResNetV2 (Keras stages conv2..conv5)
RESNET50V2 = (
    Rule("conv1_conv", "stem", "conv"),
    Rule(r"conv(\d)_block(\d+)_preact_bn", "stages.{1-2}.{2-1}.preact_bn", "bn"),
    Rule(r"conv(\d)_block(\d+)_0_conv", "stages.{1-2}.{2-1}.shortcut", "conv"),
    Rule(r"conv(\d)_block(\d+)_([123])_conv", "stages.{1-2}.{2-1}.conv{3}", "conv"),
    Rule(r"conv(\d)_block(\d+)_([12])_bn", "stages.{1-2}.{2-1}.bn{3}", "bn"),
    Rule("post_bn", "post_bn", "bn"),
    Rule("predictions", "fc", "dense"),
)

# the `efficientnet` package's EfficientNetB0 (keras.applications' names; head "probs") -> timm tf_efficientnet_b0
EFFICIENTNET_B0 = (
    Rule("stem_conv", "conv_stem", "conv"),
    Rule("stem_bn", "bn1", "bn"),
    # stage 1 has no expansion: timm's DepthwiseSeparableConv (conv_dw, bn1, se, conv_pw, bn2)
    Rule("block1a_dwconv", "blocks.0.0.conv_dw", "dwconv"),
    Rule("block1a_bn", "blocks.0.0.bn1", "bn"),
    Rule("block1a_project_conv", "blocks.0.0.conv_pw", "conv"),
    Rule("block1a_project_bn", "blocks.0.0.bn2", "bn"),
    # the others are InvertedResidual (conv_pw, bn1, conv_dw, bn2, se, conv_pwl, bn3)
    Rule(r"block(\d)([a-z])_expand_conv", "blocks.{1-1}.{2:letter}.conv_pw", "conv"),
    Rule(r"block(\d)([a-z])_expand_bn", "blocks.{1-1}.{2:letter}.bn1", "bn"),
    Rule(r"block(\d)([a-z])_dwconv", "blocks.{1-1}.{2:letter}.conv_dw", "dwconv"),
    Rule(r"block(\d)([a-z])_bn", "blocks.{1-1}.{2:letter}.bn2", "bn"),
    Rule(r"block(\d)([a-z])_se_reduce", "blocks.{1-1}.{2:letter}.se.conv_reduce", "conv"),
    Rule(r"block(\d)([a-z])_se_expand", "blocks.{1-1}.{2:letter}.se.conv_expand", "conv"),
    Rule(r"block(\d)([a-z])_project_conv", "blocks.{1-1}.{2:letter}.conv_pwl", "conv"),
    Rule(r"block(\d)([a-z])_project_bn", "blocks.{1-1}.{2:letter}.bn3", "bn"),
    Rule("top_conv", "conv_head", "conv"),
    Rule("top_bn", "bn2", "bn"),
    Rule("probs|predictions", "classifier", "dense"),
)

# vit_keras 0.1 vit_b16 -> timm vit_base_patch16_224
VIT_B16 = (
    Rule("embedding", "patch_embed.proj", "conv"),
    Rule("class_token", "cls_token", "tensor"),
    Rule("Transformer/posembed_input", "pos_embed", "tensor"),
    Rule(r"Transformer/encoderblock_(\d+)/LayerNorm_0", "blocks.{1}.norm1", "ln"),
    Rule(r"Transformer/encoderblock_(\d+)/LayerNorm_2", "blocks.{1}.norm2", "ln"),
    Rule(r"Transformer/encoderblock_(\d+)/MultiHeadDotProductAttention_1/(?P<part>query|key|value)",
         "blocks.{1}.attn.qkv", "dense", concat=("query", "key", "value")),
    Rule(r"Transformer/encoderblock_(\d+)/MultiHeadDotProductAttention_1/out", "blocks.{1}.attn.proj", "dense"),
    Rule(r"Transformer/encoderblock_(\d+)/Dense_0", "blocks.{1}.mlp.fc1", "dense"),
    Rule(r"Transformer/encoderblock_(\d+)/Dense_1", "blocks.{1}.mlp.fc2", "dense"),
    Rule("Transformer/encoder_norm", "norm", "ln"),
    Rule("head", "head", "dense"),
)

# keras-cv-attention-models ConvNeXtTiny -> timm convnext_tiny
CONVNEXT_TINY = (
    Rule("stem_conv", "stem.0", "conv"),
    Rule("stem_ln", "stem.1", "ln"),
    Rule(r"stack(\d)_downsample_ln", "stages.{1-1}.downsample.0", "ln"),
    Rule(r"stack(\d)_downsample_conv", "stages.{1-1}.downsample.1", "conv"),
    Rule(r"stack(\d)_block(\d+)_dw_conv", "stages.{1-1}.blocks.{2-1}.conv_dw", "dwconv"),
    Rule(r"stack(\d)_block(\d+)_ln", "stages.{1-1}.blocks.{2-1}.norm", "ln"),
    Rule(r"stack(\d)_block(\d+)_up_dense", "stages.{1-1}.blocks.{2-1}.mlp.fc1", "dense"),
    Rule(r"stack(\d)_block(\d+)_down_dense", "stages.{1-1}.blocks.{2-1}.mlp.fc2", "dense"),
    Rule(r"stack(\d)_block(\d+)_gamma", "stages.{1-1}.blocks.{2-1}.gamma", "tensor"),
    Rule("head_ln", "head.norm", "ln"),
    Rule("predictions", "head.fc", "dense"),
)

_MAXVIT_BLOCK = r"stack_(\d)_block_(\d+)/"
_MAXVIT_TORCH = "stages.{1-1}.blocks.{2-1}."
# keras-cv-attention-models MaxViT_Tiny -> timm maxvit_tiny_tf_224
MAXVIT_TINY = (
    Rule(r"stem_(\d)_conv", "stem.conv{1}", "conv"),
    Rule("stem_1_bn", "stem.norm1", "bn"),
    Rule(_MAXVIT_BLOCK + "mbconv/preact_bn", _MAXVIT_TORCH + "conv.pre_norm", "bn"),
    Rule(_MAXVIT_BLOCK + "mbconv/shortcut_conv", _MAXVIT_TORCH + "conv.shortcut.expand", "conv"),
    Rule(_MAXVIT_BLOCK + "mbconv/expand_conv", _MAXVIT_TORCH + "conv.conv1_1x1", "conv"),
    Rule(_MAXVIT_BLOCK + "mbconv/expand_bn", _MAXVIT_TORCH + "conv.norm1", "bn"),
    Rule(_MAXVIT_BLOCK + "mbconv/MB_dw_conv", _MAXVIT_TORCH + "conv.conv2_kxk", "dwconv"),
    Rule(_MAXVIT_BLOCK + "mbconv/MB_dw_bn", _MAXVIT_TORCH + "conv.norm2", "bn"),
    Rule(_MAXVIT_BLOCK + r"mbconv/se/([12])_conv", _MAXVIT_TORCH + "conv.se.fc{3}", "conv"),
    Rule(_MAXVIT_BLOCK + "mbconv/MB_pw_conv", _MAXVIT_TORCH + "conv.conv3_1x1", "conv"),
    Rule(_MAXVIT_BLOCK + "(block|grid)_attn_preact_ln", _MAXVIT_TORCH + "attn_{3}.norm1", "ln"),
    Rule(_MAXVIT_BLOCK + "(block|grid)_window_mhsa/qkv_conv", _MAXVIT_TORCH + "attn_{3}.attn.qkv", "conv1x1_as_dense"),
    Rule(_MAXVIT_BLOCK + "(block|grid)_window_mhsa/pos_emb", _MAXVIT_TORCH + "attn_{3}.attn.rel_pos", "maxvit_rel_pos"),
    Rule(_MAXVIT_BLOCK + "(block|grid)_window_mhsa/output", _MAXVIT_TORCH + "attn_{3}.attn.proj", "dense"),
    Rule(_MAXVIT_BLOCK + "(block|grid)_ffn_preact_ln", _MAXVIT_TORCH + "attn_{3}.norm2", "ln"),
    Rule(_MAXVIT_BLOCK + r"(block|grid)_ffn/([12])_dense", _MAXVIT_TORCH + "attn_{3}.mlp.fc{4}", "dense"),
    Rule("post_ln", "head.norm", "ln"),
    Rule("features", "head.pre_logits.fc", "dense"),
    Rule("predictions", "head.fc", "dense"),
)

# keras-cv-attention-models LeViT128(use_distillation=False) -> timm levit_128. Keras's stack N ends
# with the downsampling of stage N+1 (timm's stages[N].downsample, 0-based).
LEVIT_128 = (
    Rule(r"stem_(\d)_conv", "stem.conv{1}.linear", "conv"),
    Rule(r"stem_(\d)_bn", "stem.conv{1}.bn", "bn"),
    Rule(r"stack(\d)_block(\d+)_qkv", "stages.{1-1}.blocks.{2-1}.attn.qkv.linear", "dense"),
    Rule(r"stack(\d)_block(\d+)_qkv_bn", "stages.{1-1}.blocks.{2-1}.attn.qkv.bn", "bn"),
    Rule(r"stack(\d)_block(\d+)_attn_pos", "stages.{1-1}.blocks.{2-1}.attn", "levit_bias"),
    Rule(r"stack(\d)_block(\d+)_out", "stages.{1-1}.blocks.{2-1}.attn.proj.ln.linear", "dense"),
    Rule(r"stack(\d)_block(\d+)_out_bn", "stages.{1-1}.blocks.{2-1}.attn.proj.ln.bn", "bn"),
    Rule(r"stack(\d)_block(\d+)_mlp_([12])_dense", "stages.{1-1}.blocks.{2-1}.mlp.ln{3}.linear", "dense"),
    Rule(r"stack(\d)_block(\d+)_mlp_([12])_bn", "stages.{1-1}.blocks.{2-1}.mlp.ln{3}.bn", "bn"),
    Rule(r"stack(\d)_downsample_kv", "stages.{1}.downsample.attn_downsample.kv.linear", "dense"),
    Rule(r"stack(\d)_downsample_kv_bn", "stages.{1}.downsample.attn_downsample.kv.bn", "bn"),
    Rule(r"stack(\d)_downsample_q", "stages.{1}.downsample.attn_downsample.q.ln.linear", "dense"),
    Rule(r"stack(\d)_downsample_q_bn", "stages.{1}.downsample.attn_downsample.q.ln.bn", "bn"),
    Rule(r"stack(\d)_downsample_attn_pos", "stages.{1}.downsample.attn_downsample", "levit_bias"),
    Rule(r"stack(\d)_downsample_out", "stages.{1}.downsample.attn_downsample.proj.ln.linear", "dense"),
    Rule(r"stack(\d)_downsample_out_bn", "stages.{1}.downsample.attn_downsample.proj.ln.bn", "bn"),
    Rule(r"stack(\d)_downsample_mlp_([12])_dense", "stages.{1}.downsample.mlp.ln{2}.linear", "dense"),
    Rule(r"stack(\d)_downsample_mlp_([12])_bn", "stages.{1}.downsample.mlp.ln{2}.bn", "bn"),
    Rule("head_bn", ("head.bn", "head_dist.bn"), "bn"),
    Rule("head", ("head.linear", "head_dist.linear"), "dense"),
)

WEIGHT_MAPS: dict[str, tuple[Rule, ...]] = {
    "harmonized_vgg16": VGG16,
    "harmonized_resnet50v2": RESNET50V2,
    "harmonized_efficientnet_b0": EFFICIENTNET_B0,
    "harmonized_vit_b16": VIT_B16,
    "harmonized_convnext_tiny": CONVNEXT_TINY,
    "harmonized_maxvit_tiny": MAXVIT_TINY,
    "harmonized_levit_128": LEVIT_128,
}
