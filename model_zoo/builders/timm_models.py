"""timm models: ``source_id`` is a timm tag (``architecture.pretrained_tag``); weights come through timm's
Hugging Face hub integration and its cache (``HF_HOME``), which honours ``HF_HUB_OFFLINE``."""
from __future__ import annotations

from model_zoo.catalog import ModelSpec
from model_zoo.weights import Built, WeightsRequest, downloads_allowed, torch_file_into, unavailable


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    from model_zoo.frameworks import import_torch

    import_torch()
    import timm

    if not request.random and request.mode != "file":
        return _pretrained(spec, timm)
    model = timm.create_model(spec.source_id, pretrained=False, num_classes=1000)
    if request.mode == "file":
        return torch_file_into(model, request.path)
    return Built(model)


def _pretrained(spec: ModelSpec, timm) -> Built:
    model = timm.create_model(spec.source_id, pretrained=False, num_classes=1000)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    hub_id = cfg.get("hf_hub_id") or ""
    where = f"https://huggingface.co/{hub_id}" if hub_id else cfg.get("url", spec.source_id)
    from huggingface_hub import constants

    was_offline = constants.HF_HUB_OFFLINE
    try:
        if not downloads_allowed(constants.ENDPOINT):
            constants.HF_HUB_OFFLINE = True  # timm reads the hub's flag; make ours count too (this call only)
        model = timm.create_model(spec.source_id, pretrained=True, num_classes=1000)
    except Exception as exc:  # hub/HTTP/offline errors all mean "not available here"
        local = f"the Hugging Face cache ({constants.HF_HUB_CACHE})"
        raise unavailable(spec.id, where, local, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    finally:
        constants.HF_HUB_OFFLINE = was_offline
    return Built(model, _hub_sha256(hub_id), None)


def _hub_sha256(hub_id: str) -> str | None:
    """sha256 of the cached hub file timm loaded (None when it cannot be identified)."""
    if not hub_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    from model_zoo.fileio import sha256_file

    repo = "/".join(hub_id.strip("/").split("/")[:2])  # "timm/name.tag" (timm may append "/file")
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors"):
        path = try_to_load_from_cache(repo, name)
        if isinstance(path, str):
            return sha256_file(path)
    return None
