"""Fold eval-mode BatchNorm into the convolution before it, for the ``fused`` fast path.

In eval mode a BatchNorm2d is the per-channel affine map ``y = (x - mean) / sqrt(var + eps) * w + b``;
after a convolution it can be absorbed into the convolution's weight and bias
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), which saves one memory-bound pass per layer forward
and backward. The algebra is exact; only float32 rounding differs (measured on maps by
``bench/bench_saliency.py --fast-paths fused``).

The network is traced with ``torch.fx`` (timm's "do not trace" modules and functions kept as leaves,
as timm's own feature extraction does), and a pair is folded only when it is safe:

* the convolution is exactly ``nn.Conv2d`` or timm's ``Conv2dSame`` (padding, then the same conv):
  subclasses that transform their weight (weight standardisation, CondConv) are left alone;
* the BatchNorm is exactly ``nn.BatchNorm2d`` or timm's ``BatchNormAct2d`` (its activation and
  dropout are kept, as a small ``nn.Sequential``), tracks running statistics, and takes the
  convolution's output as its only input;
* nothing else reads the convolution's output (a residual branch would see unnormalised values),
  and neither module is called anywhere else (shared weights would change for every call).

The result is a new ``torch.fx.GraphModule`` holding copies of the parameters: the module given is not
changed, and training it afterwards does not reach the folded copy.
"""
from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass
from typing import Any

from model_zoo.errors import InvalidInputError
from model_zoo.frameworks import import_torch

__all__ = ["FoldedModule", "fold_batch_norm"]


@dataclass(frozen=True)
class FoldedModule:
    """`module`: the traced copy with BatchNorm folded; `folded` of `batch_norms` BatchNorm layers."""

    module: Any
    folded: int
    batch_norms: int


def _tracer(timm_layers: Any) -> Any:
    """A torch.fx tracer that keeps timm's untraceable modules (dynamic 'same' padding,
    BatchNormAct2d...) and functions whole, as timm's own feature extraction does."""
    fx = import_torch().fx
    leaves = tuple(timm_layers.get_notrace_modules())
    functions = tuple(timm_layers.get_notrace_functions())

    class _TimmAwareTracer(fx.Tracer):
        def __init__(self) -> None:
            super().__init__(autowrap_functions=functions)

        def is_leaf_module(self, m: Any, qualname: str) -> bool:
            return isinstance(m, leaves) or super().is_leaf_module(m, qualname)

    return _TimmAwareTracer()


def _after_norm(torch: Any, timm_layers: Any, bn: Any) -> Any:
    """What must still run after the folded BatchNorm: None (plain BatchNorm2d), the activation and
    dropout of a timm BatchNormAct2d, or False where the type is not one this pass knows."""
    if type(bn) is torch.nn.BatchNorm2d:
        return None
    if type(bn) is timm_layers.BatchNormAct2d:
        return torch.nn.Sequential(bn.drop, bn.act)
    return False


def fold_batch_norm(module: Any, name: str = "model") -> FoldedModule:
    """A traced copy of `module` (an ``nn.Module`` in eval mode) with every safely foldable
    Conv2d -> BatchNorm2d pair folded (see the module docstring). Raises InvalidInputError naming
    `name` when the network cannot be traced by ``torch.fx``. The copy is in eval mode with its
    parameters frozen (it serves inference and input gradients only)."""
    torch = import_torch()
    fx = torch.fx
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    import timm.layers as timm_layers  # a dependency of the project; imported on first use only

    root = copy.deepcopy(module).eval()
    tracer = _tracer(timm_layers)
    try:
        graph = tracer.trace(root)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means this network has no fused path
        raise InvalidInputError(
            f"fast path fused: {name} cannot be traced by torch.fx ({type(exc).__name__}: {str(exc)[:200]}); "
            "use --fast-path channels_last or compile for it") from exc
    folded_module = fx.GraphModule(root, graph)
    modules = dict(folded_module.named_modules())
    conv_types = (torch.nn.Conv2d, timm_layers.Conv2dSame)  # convs whose output is linear in weight, bias
    batch_norms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in modules.values())
    # a module called at two places (shared weights) is changed for both by a fold: never fold it
    calls = Counter(n.target for n in folded_module.graph.nodes if n.op == "call_module")
    folded = 0
    for node in list(folded_module.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), torch.nn.BatchNorm2d):
            continue
        bn = modules[node.target]
        rest = _after_norm(torch, timm_layers, bn)
        conv_node = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if (rest is False or not bn.track_running_stats or not isinstance(conv_node, fx.Node)
                or conv_node.op != "call_module" or len(conv_node.users) != 1
                or type(modules.get(conv_node.target)) not in conv_types
                or calls[conv_node.target] != 1 or calls[node.target] != 1):
            continue
        fused = fuse_conv_bn_eval(modules[conv_node.target], bn)
        _replace_module(folded_module, conv_node.target, fused)
        if rest is None:
            node.replace_all_uses_with(conv_node)
            folded_module.graph.erase_node(node)
        else:
            _replace_module(folded_module, node.target, rest)
        folded += 1
    folded_module.graph.lint()
    folded_module.recompile()
    folded_module.delete_all_unused_submodules()
    for p in folded_module.parameters():
        p.requires_grad_(False)
    return FoldedModule(folded_module.eval(), folded, batch_norms)


def _replace_module(root: Any, qualified_name: str, new: Any) -> None:
    parent_name, _, attr = qualified_name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)
