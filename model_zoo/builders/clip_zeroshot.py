"""CLIP zero-shot classifiers (OpenAI weights) through ``open_clip``.

The classifier's logits are CLIP's zero-shot logits: ``logit_scale * <image embedding, class embedding>``
with both embeddings L2-normalised; a class embedding is the normalised mean of the normalised text
embeddings of the class name in OpenAI's 80 ImageNet prompt templates (open_clip's
``zero_shot_metadata``), as in OpenAI's zero-shot notebook. That head (1000 x 80 text passes) is computed
once per weights file and cached under ``cache_dir("clip_heads")`` as safetensors.

Weights: open_clip's ``pretrained="openai"`` (its Hugging Face hub mirror of the OpenAI checkpoints,
cached by the hub). ``weights="random"`` builds the same architecture from open_clip's bundled config;
its head is a fixed random unit-norm matrix (seed 0) instead of 80,000 text passes through a random
text tower, which would cost minutes and mean nothing.
"""
from __future__ import annotations

from pathlib import Path

from model_zoo.catalog import ModelSpec
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_output, cache_dir, sha256_file
from model_zoo.frameworks import import_torch
from model_zoo.weights import Built, WeightsRequest, downloads_allowed, unavailable

torch = import_torch()
nn = torch.nn

# the catalog's source_id names the OpenAI `clip.load` model; open_clip spells it with dashes
_OPEN_CLIP_NAMES = {"ViT-B/32": "ViT-B-32", "ViT-B/16": "ViT-B-16", "ViT-L/14": "ViT-L-14", "RN50": "RN50",
                    "RN101": "RN101", "RN50x4": "RN50x4"}


class ZeroShotCLIP(nn.Module):
    """CLIP image tower + fixed zero-shot head. (N,3,S,S) CLIP-normalised images -> (N,C) logits."""

    def __init__(self, visual: nn.Module, head, logit_scale: float):
        super().__init__()
        self.visual = visual
        self.register_buffer("head", head)  # (C, D), rows unit-norm
        self.logit_scale = float(logit_scale)

    def forward(self, x):
        feats = self.visual(x)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        return self.logit_scale * feats @ self.head.to(feats.dtype).T


def open_clip_name(spec: ModelSpec) -> str:
    arch = spec.source_id.split()[0].split(":", 1)[-1]
    if arch not in _OPEN_CLIP_NAMES:
        raise InvalidInputError(f"catalog row {spec.id!r}: unknown CLIP model {arch!r}; known {sorted(_OPEN_CLIP_NAMES)}")
    return _OPEN_CLIP_NAMES[arch]


def zero_shot_head(model, tokenizer, classnames, templates, *, batch: int = 1000):
    """(len(classnames), D) unit-norm class embeddings (OpenAI's template ensembling)."""
    rows = []
    with torch.no_grad():
        for name in classnames:
            texts = [t(name) if callable(t) else t.format(name) for t in templates]
            emb = torch.cat([model.encode_text(tokenizer(texts[i:i + batch])) for i in range(0, len(texts), batch)])
            emb = emb / emb.norm(dim=-1, keepdim=True)
            mean = emb.mean(dim=0)
            rows.append(mean / mean.norm())
    return torch.stack(rows)


def _cached_head(model, tokenizer, key: str):
    from safetensors.torch import load_file, save_file

    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

    path = cache_dir("clip_heads", f"{key}.safetensors")
    if path.is_file():
        return load_file(str(path))["head"]
    head = zero_shot_head(model, tokenizer, IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES)
    with atomic_output(path, suffix=".safetensors") as tmp:  # a killed run leaves no half-written head
        save_file({"head": head.contiguous()}, str(tmp))
    return head


def build(spec: ModelSpec, request: WeightsRequest) -> Built:
    import open_clip

    name = open_clip_name(spec)
    # OpenAI's checkpoints use QuickGELU; building it in keeps random and pretrained models identical
    model = open_clip.create_model(name, pretrained=None, force_quick_gelu=True)
    sha = path = None
    if request.random:
        gen = torch.Generator().manual_seed(0)
        dim = model.text_projection.shape[1] if model.text_projection is not None else model.visual.output_dim
        head = torch.randn(1000, dim, generator=gen)
        head = head / head.norm(dim=-1, keepdim=True)
        model.eval()
        return Built(ZeroShotCLIP(model.visual, head, model.logit_scale.exp().item()))
    if request.mode == "file":
        path = Path(request.path)
        try:
            open_clip.load_checkpoint(model, str(path), weights_only=True)
        except Exception as exc:
            raise InvalidInputError(f"{path}: not a loadable CLIP {name} checkpoint ({type(exc).__name__}: {str(exc)[:300]})") from None
        sha = sha256_file(path)
    else:
        sha, path = _pretrained_into(spec, name, model, open_clip)
    model.eval()
    head = _cached_head(model, open_clip.get_tokenizer(name), f"{name}-{(sha or 'openai')[:16]}")
    return Built(ZeroShotCLIP(model.visual, head, model.logit_scale.exp().item()), sha, path)


def _pretrained_into(spec: ModelSpec, name: str, model, open_clip):
    cfg = open_clip.get_pretrained_cfg(name, "openai")
    hub = (cfg.get("hf_hub") or "").strip("/")
    from huggingface_hub import constants, hf_hub_download

    was_offline = constants.HF_HUB_OFFLINE
    if not downloads_allowed(constants.ENDPOINT):
        constants.HF_HUB_OFFLINE = True  # for this call only (restored below)
    try:
        for fname in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            try:
                path = Path(hf_hub_download(hub, fname))
                break
            except Exception as exc:  # missing file variant, offline, network: try the next, then give up
                last = exc
        else:
            path = None
    finally:
        constants.HF_HUB_OFFLINE = was_offline
    if path is None:
        raise unavailable(spec.id, f"https://huggingface.co/{hub}", f"the Hugging Face cache ({constants.HF_HUB_CACHE})",
                          f"{type(last).__name__}: {str(last)[:200]}")
    open_clip.load_checkpoint(model, str(path), weights_only=True)
    return sha256_file(path), path
