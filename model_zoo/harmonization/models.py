"""Which architecture to train: a catalog/registry id, or a timm model name, built untrained
(``init="random"``, as the paper trains from scratch) or from its published weights."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_zoo.errors import InvalidInputError, UnknownModelError
from model_zoo.preprocessing import Preprocess


@dataclass
class Architecture:
    """What the export records about the trained network."""

    model_id: str
    display_name: str
    family: str
    framework: str  # "torch" | "keras"
    source: str
    source_id: str
    preprocess: Preprocess = field(default_factory=lambda: Preprocess(
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    base_model: str | None = None

    def preprocess_dict(self) -> dict[str, Any]:
        p = self.preprocess
        return {"input_size": p.input_size, "interpolation": p.interpolation,
                "mean": list(p.mean) if p.mean else None, "std": list(p.std) if p.std else None,
                "scale": p.scale, "channel_order": p.channel_order}


def build(model_id: str, *, framework: str, num_classes: int = 1000, init: str = "random") -> tuple[Any, Architecture]:
    """(untrained or pretrained model, its :class:`Architecture`). Catalog ids first, then (torch)
    any timm model name. ``framework`` must match the catalog row's."""
    from model_zoo.registry import catalog_builder, lookup
    from model_zoo.weights import WeightsRequest

    if init not in ("random", "pretrained"):
        raise InvalidInputError(f"init must be 'random' or 'pretrained', got {init!r}")
    want = "keras" if framework == "tf" else framework
    try:
        entry = lookup(model_id)
    except UnknownModelError:
        if want == "torch":
            return _timm(model_id, num_classes, init)
        raise
    spec = entry.spec
    if spec.framework != want:
        other = "tf" if spec.framework == "keras" else "torch"
        raise InvalidInputError(f"--model {model_id} is a {spec.framework} model: use --framework {other}")
    if entry.kind == "user":
        model = entry.builder(init == "pretrained", None)
    else:
        model = catalog_builder(spec)(spec, WeightsRequest(init)).model
    if num_classes != 1000:
        model = _reset_head(model, num_classes, model_id)
    arch = Architecture(
        model_id=f"{spec.id}-harmonized", display_name=f"{spec.display_name} (harmonized)", family=spec.family,
        framework=spec.framework, source=spec.source, source_id=spec.source_id,
        preprocess=Preprocess(input_size=spec.input_size, interpolation=spec.interpolation or "bilinear",
                              mean=spec.mean, std=spec.std, scale=spec.scale, channel_order=spec.channel_order),
        base_model=spec.id)
    return model, arch


def _timm(name: str, num_classes: int, init: str) -> tuple[Any, Architecture]:
    from model_zoo.frameworks import import_torch

    import_torch()
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0]}*")[:5]
        raise UnknownModelError(f"--model {name!r} is neither a catalog id nor a timm model"
                                + (f"; timm has {', '.join(close)}" if close else ""))
    model = timm.create_model(name, pretrained=init == "pretrained", num_classes=num_classes)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = int((cfg.get("input_size") or (3, 224, 224))[-1])
    pre = Preprocess(input_size=size, interpolation=cfg.get("interpolation", "bilinear") if cfg.get(
        "interpolation") in ("bilinear", "bicubic", "nearest") else "bilinear",
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))), std=tuple(cfg.get("std", (0.229, 0.224, 0.225))))
    return model, Architecture(model_id=f"{name}-harmonized", display_name=f"{name} (harmonized)", family="cnn",
                               framework="torch", source="timm", source_id=name, preprocess=pre, base_model=None)


def _reset_head(model: Any, num_classes: int, model_id: str) -> Any:
    if hasattr(model, "reset_classifier"):  # timm
        model.reset_classifier(num_classes)
        return model
    raise InvalidInputError(f"--num-classes {num_classes}: cannot replace the classifier of {model_id}; "
                            "use 1000 or a timm model")
