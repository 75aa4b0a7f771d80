"""torchvision models: ``source_id`` is ``name:WEIGHTS_ENUM_MEMBER`` (e.g. ``vgg11:IMAGENET1K_V1``).
Pretrained weights go through torchvision's URL and torch's hub cache (``$TORCH_HOME/hub/checkpoints``),
read with ``weights_only=True`` and checked against the hash prefix torchvision puts in the file name."""
from __future__ import annotations

from pathlib import Path

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from model_zoo.weights import Built, WeightsRequest, downloads_allowed, load_into, offline, torch_file_into, unavailable


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    import torchvision

    name, _, tag = spec.source_id.partition(":")
    model = torchvision.models.get_model(name, weights=None, num_classes=1000)
    if request.mode == "file":
        return torch_file_into(model, request.path)
    if request.random:
        return Built(model)
    try:
        enum = torchvision.models.get_model_weights(name)[tag or "DEFAULT"]
    except KeyError:
        raise InvalidInputError(f"catalog row {spec.id!r}: torchvision has no weights {tag!r} for {name!r}") from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    if not cached.is_file() and not downloads_allowed(enum.url):
        why = "offline mode" if offline() else "no network (the download host is unreachable)"
        raise unavailable(spec.id, enum.url, cached, f"{why} and not in torch's hub cache")
    try:
        state = torch.hub.load_state_dict_from_url(enum.url, progress=False, check_hash=True, weights_only=True)
    except Exception as exc:
        raise unavailable(spec.id, enum.url, cached, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    load_into(model, state, where=str(cached))
    return Built(model, sha256_file(cached) if cached.is_file() else None, cached)
