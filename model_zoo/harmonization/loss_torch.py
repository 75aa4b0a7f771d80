"""The neural harmonizer loss in PyTorch (same numbers as :mod:`model_zoo.harmonization.loss_tf`).

Follows the paper's release code (serre-lab/Harmonization ``training/loss.py``, ``pyramid.py``) by
default; every place where that code differs from the paper's text is a keyword option:

* saliency: the **signed** input gradient **averaged** over colour channels (the text and the
  evaluation use abs -> max): ``saliency_reduction="mean"|"max"``, ``saliency_abs=False``;
* pyramid: 5 maps (224 -> 14); the pre-release code used 6 (``levels=6``);
* the token-weighted MSE divides by all N, not by the number of images with a map, so with 20 %
  ClickMe images the effective lambda is about 0.2 lambda: ``token_normalise=True`` divides by sum(t);
* weight decay is a loss term ``wd * sum(v**2) / 2`` (not the optimizer's), skipping normalisation
  layers, embeddings and class tokens. Selected by module type and parameter role
  (:func:`decay_parameters`) since torch names (``downsample.1.weight``) don't reveal a BatchNorm.

Images are whatever the model takes: NCHW, already normalised (mean/std) unless the model normalises
itself. The saliency is the gradient w.r.t. exactly that tensor, as in the paper's code.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STD_EPS = 1e-5  # standardize_cut: (m - mean) / (std + 1e-5)
MAX_EPS = 1e-6  # human map rescale: h / (max h + 1e-6) * (max s + 1e-6)

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def standardize_cut(maps: Tensor, eps: float = STD_EPS) -> Tensor:
    """relu((m - mean) / (std + eps)) per map over (H, W); population std (TF ``reduce_std``).

    maps: (N, H, W) float. Returns (N, H, W)."""
    _check_maps(maps, "maps")
    mean = maps.mean(dim=(1, 2), keepdim=True)
    std = maps.std(dim=(1, 2), keepdim=True, correction=0)
    return F.relu((maps - mean) / (std + eps))


def _same_pad(size: int, kernel: int = 5, stride: int = 2) -> tuple[int, int]:
    """TF 'SAME' padding (before, after): the extra pixel goes after (even 224 -> 1, 2)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _downsample(x: Tensor) -> Tensor:
    """One pyramid step on (N, H, W): 5x5 binomial blur, stride 2, zero 'SAME' padding.

    Separable (two 1-D convs): the 5x5 kernel is outer([1,4,6,4,1])/256 = k1 (x) k1."""
    k = _BINOMIAL.to(dtype=x.dtype, device=x.device)
    top, bottom = _same_pad(x.shape[1])
    left, right = _same_pad(x.shape[2])
    x = F.pad(x.unsqueeze(1), (left, right, top, bottom))
    x = F.conv2d(x, k.view(1, 1, 5, 1), stride=(2, 1))
    x = F.conv2d(x, k.view(1, 1, 1, 5), stride=(1, 2))
    return x.squeeze(1)


def pyramid(maps: Tensor, levels: int = 5) -> list[Tensor]:
    """Gaussian pyramid of (N, H, W) maps: ``levels`` maps, the input first, each half the size.

    ``pyramid(m, 5)`` = the paper's ``pyramidal_representation(m, 5)[:5]`` (the maps its loss uses);
    its sixth level, unused by the release loss, is ``pyramid(m, 6)[5]``."""
    _check_maps(maps, "maps")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    out = [maps]
    for _ in range(levels - 1):
        out.append(_downsample(out[-1]))
    return out


def pyramidal_mse(
    true: Tensor, pred: Tensor, tokens: Tensor, levels: int = 5, *, token_normalise: bool = False
) -> Tensor:
    """Mean over ``levels`` pyramid levels of ``mean((true_l - pred_l)**2 * token[n])``.

    true, pred: (N, H, W); tokens: (N,) weights (1 = image has a human map, 0 = none). The mean runs
    over all N (the paper's code); ``token_normalise=True`` divides by sum(tokens) instead."""
    return _pyramidal_mse_from(pyramid(true, levels), pyramid(pred, levels), tokens, token_normalise)


def _pyramidal_mse_from(
    true_levels: list[Tensor], pred_levels: list[Tensor], tokens: Tensor, token_normalise: bool
) -> Tensor:
    tokens = tokens.to(dtype=pred_levels[0].dtype).reshape(-1, 1, 1)
    if tokens.shape[0] != pred_levels[0].shape[0]:
        raise ValueError(f"tokens has {tokens.shape[0]} entries for {pred_levels[0].shape[0]} maps")
    terms = []
    for a, b in zip(true_levels, pred_levels):
        sq = (a - b).square() * tokens
        if token_normalise:
            terms.append(sq.sum() / (tokens.sum().clamp_min(1.0) * a.shape[1] * a.shape[2]))
        else:
            terms.append(sq.mean())
    return torch.stack(terms).mean()


# --- weight decay ---------------------------------------------------------------------------------

_NORM_TYPES: tuple[type, ...] = (
    nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
)
# parameter/attribute names excluded by role, as the paper's substrings 'embed', 'class_token', 'norm'
_EXCLUDED_NAME_PARTS = ("embed", "token", "norm")


def _excluded_module(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, (*_NORM_TYPES, nn.Embedding)) or "Norm" in name or "Embed" in name


def decay_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Yield the trainable parameters the harmonizer's weight decay applies to.

    Excluded, matching the paper's name filter ('bn/', 'normalization', 'embed', 'Norm', 'norm',
    'class_token') by role: every parameter of a normalisation layer (BatchNorm*, LayerNorm,
    GroupNorm, any class named *Norm*), of an embedding module (nn.Embedding, timm PatchEmbed ...),
    and parameters whose own path contains 'embed', 'token' or 'norm' (pos_embed, cls_token)."""
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        if mod_name and _excluded_module(module):  # the root's class name says nothing of its role
            for p in module.parameters():
                seen.add(id(p))
            continue
        for p_name, p in module.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}".lower() if mod_name else p_name.lower()
            if id(p) in seen or not p.requires_grad or any(s in full for s in _EXCLUDED_NAME_PARTS):
                seen.add(id(p))
                continue
            seen.add(id(p))
            yield (f"{mod_name}.{p_name}" if mod_name else p_name), p


def weight_decay_term(params: list[Tensor] | None = None, *, model: nn.Module | None = None) -> Tensor:
    """sum(v**2) / 2 over ``params`` (default: :func:`decay_parameters` of ``model``), float32."""
    if params is None:
        if model is None:
            raise ValueError("pass params or model")
        params = [p for _, p in decay_parameters(model)]
    if not params:
        return torch.zeros(())
    return torch.stack([p.float().square().sum() for p in params]).sum() / 2


# --- the loss -------------------------------------------------------------------------------------

def _check_maps(maps: Tensor, name: str) -> None:
    if maps.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W), got shape {tuple(maps.shape)}")


def _f32(t: Tensor) -> Tensor:
    """Half-precision (autocast) tensors up to float32; float64 stays float64."""
    return t if t.dtype == torch.float64 else t.float()


def _targets(labels: Tensor, num_classes: int) -> Tensor:
    """Integer (N,) labels -> one-hot; (N, C) soft targets (mixup) pass through. float32."""
    if labels.ndim == 1:
        if labels.dtype.is_floating_point:
            raise ValueError("labels must be integer class indices (N,) or soft targets (N, C)")
        return F.one_hot(labels.long(), num_classes).float()
    if labels.ndim == 2 and labels.shape[1] == num_classes:
        return _f32(labels)
    raise ValueError(f"labels shape {tuple(labels.shape)} fits neither (N,) nor (N, {num_classes})")


def saliency_maps(
    logits: Tensor, images: Tensor, targets: Tensor, *, reduction: str = "mean", absolute: bool = False,
    create_graph: bool = True,
) -> Tensor:
    """d sum(logits * targets) / d images, reduced over channels -> (N, H, W) float32.

    ``images`` (N, C, H, W) must require grad and ``logits`` come from them. With ``create_graph``
    the map stays differentiable w.r.t. the parameters (double backward). Only the input gradient
    is taken (``autograd.grad`` w.r.t. images), so DDP's parameter hooks don't fire here."""
    (grad,) = torch.autograd.grad((_f32(logits) * targets).sum(), images, create_graph=create_graph)
    grad = _f32(grad)
    if absolute:
        grad = grad.abs()
    if reduction == "mean":
        return grad.mean(dim=1)
    if reduction == "max":
        return grad.amax(dim=1)
    raise ValueError(f"saliency_reduction must be 'mean' or 'max', got {reduction!r}")


def harmonization_term(
    saliency: Tensor, heatmaps: Tensor, tokens: Tensor, *, levels: int = 5, token_normalise: bool = False
) -> Tensor:
    """Pyramidal token-weighted MSE between the cut saliency and the human map rescaled to its max.

    The human branch carries no gradient: its pyramid is built once without autograd and scaled
    by the (stop-gradient) saliency max afterwards (the pyramid is linear, so this equals the
    pyramid of the rescaled map)."""
    _check_maps(saliency, "saliency")
    _check_maps(heatmaps, "heatmaps")
    if heatmaps.shape != saliency.shape:
        raise ValueError(f"heatmaps {tuple(heatmaps.shape)} and saliency {tuple(saliency.shape)} differ")
    sal = standardize_cut(saliency)
    scale = (sal.detach().amax(dim=(1, 2)) + MAX_EPS).view(-1, 1, 1)
    with torch.no_grad():
        hm = standardize_cut(heatmaps.to(sal.dtype))
        hm = hm / (hm.amax(dim=(1, 2), keepdim=True) + MAX_EPS)
        hm_levels = pyramid(hm, levels)
    hm_levels = [h * scale for h in hm_levels]
    return _pyramidal_mse_from(hm_levels, pyramid(sal, levels), tokens.to(sal.device), token_normalise)


def harmonizer_loss(
    model: nn.Module | Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    heatmaps: Tensor,
    tokens: Tensor,
    *,
    lambda_harmonization: float = 1.0,
    weight_decay: float = 1e-5,
    label_smoothing: float = 0.1,
    levels: int = 5,
    saliency_reduction: str = "mean",
    saliency_abs: bool = False,
    token_normalise: bool = False,
    decay_params: list[Tensor] | None = None,
    harmonize: bool = True,
) -> dict[str, Tensor]:
    """The harmonizer loss: CE (label smoothing) + wd * sum(v**2)/2 + lambda * pyramidal MSE.

    images (N, C, H, W) as ``model`` takes them (normalised); labels int (N,) or soft (N, K);
    heatmaps (N, H, W) human maps (any scale, standardised here); tokens (N,) 1 where the image has
    a map. One forward pass serves both the CE and the saliency. Returns ``total`` (differentiable
    w.r.t. the parameters, through the saliency), ``cross_entropy``, ``weight_decay``,
    ``harmonization`` and, detached, ``logits``. ``harmonize=False`` skips the saliency (the
    matched baseline) and reports a zero harmonization term."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if harmonize:
        images = images.detach().requires_grad_(True)
    logits = model(images)
    targets = _targets(labels, logits.shape[1])
    ce = F.cross_entropy(_f32(logits), targets.to(_f32(logits).dtype), label_smoothing=label_smoothing)
    if decay_params is None:
        if not isinstance(model, nn.Module):
            raise ValueError("pass decay_params when model is not an nn.Module")
        decay_params = [p for _, p in decay_parameters(model)]
    wd = weight_decay * weight_decay_term(decay_params).to(ce.device) if weight_decay else ce.new_zeros(())
    if harmonize and lambda_harmonization:
        sal = saliency_maps(logits, images, targets, reduction=saliency_reduction, absolute=saliency_abs)
        harm = harmonization_term(sal, heatmaps.to(sal.device), tokens, levels=levels,
                                  token_normalise=token_normalise)
    else:
        harm = ce.new_zeros(())
    total = ce + wd + lambda_harmonization * harm
    return {"total": total, "cross_entropy": ce, "weight_decay": wd, "harmonization": harm,
            "logits": logits.detach()}
