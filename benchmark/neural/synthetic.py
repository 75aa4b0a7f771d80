"""Generated recordings with known ground truth, in the release format (tests and the offline demo).

Nothing here is real data. Three pieces:

* :func:`random_convnet` -- a small PyTorch network with random (seeded) weights whose four stages
  (``stages.0`` .. ``stages.3``, 56x56 down to 7x7) are the layers to read out;
* :func:`readout_responses` -- "neurons" that are a fixed random linear read-out of one layer's
  features *as the benchmark sees them* (on the grid, min-max normalised per image), plus
  Gaussian trial noise: the ground truth for "the right layer predicts best, near the ceiling";
* :func:`write_release` / :func:`write_release_zip` -- the Arcaro 2020 release layout
  (``George/george_060118_data.mat`` with ``imageRF`` (X, Y, time, channel, image) and
  ``UniqueNames``, images in ``George/natural_test/``; the same for Red), so the loader, the
  download path and the task run on it unchanged. Responses are stored flipped on both spatial
  axes (the loader flips them back) and are constant inside the time window, zero outside, so the
  window mean returns them exactly and the file compresses well.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from benchmark.neural.arcaro import CHANNEL_SPLITS, MONKEYS, SYNTHETIC_MARKER, WINDOWS
from benchmark.neural.predictivity import pearson_columns, prepare_features
from model_zoo.errors import InvalidInputError

STAGE_STRIDES = (4, 2, 2, 2)


def random_convnet(seed: int = 0, widths: tuple[int, ...] = (16, 24, 32, 48), n_classes: int = 10) -> Any:
    """A torch ``nn.Module`` taking NCHW images in [0, 255]: ``stages.k`` (conv + ReLU, strides
    4, 2, 2, 2 -> 56, 28, 14, 7 pixels), then global pooling and a linear head. Random weights
    from ``seed`` (He-scaled so that activations neither vanish nor explode)."""
    from model_zoo.frameworks import import_torch

    torch = import_torch()
    nn = torch.nn

    class Stage(nn.Module):  # a block whose children are attributes, like a ResNet block
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel_size=stride + 1, stride=stride, padding=stride // 2)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(x))

    class RandomConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = (3, *widths)
            self.stages = nn.Sequential(*[Stage(chans[i], chans[i + 1], s) for i, s in enumerate(STAGE_STRIDES)])
            self.head = nn.Linear(widths[-1], n_classes)

        def forward(self, x):
            return self.head(self.stages(x / 127.5 - 1.0).mean((2, 3)))

    gen = torch.Generator().manual_seed(seed)
    net = RandomConvNet()
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 1:
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(torch.randn(p.shape, generator=gen) * np.sqrt(2.0 / fan_in))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return net.eval()


def make_images(n: int, seed: int = 0, size: int = 224) -> np.ndarray:
    """uint8 (n, size, size, 3) images: smooth random colour fields plus fine texture, so that
    every layer's features vary over space and between images."""
    from benchmark.neural.resample import bilinear_resize

    rng = np.random.default_rng(seed)
    coarse = bilinear_resize(rng.uniform(0, 255, (n, 7, 7, 3)).astype(np.float32), size)
    mid = bilinear_resize(rng.uniform(-60, 60, (n, 28, 28, 3)).astype(np.float32), size)
    fine = rng.uniform(-25, 25, (n, size, size, 3))
    return np.clip(np.round(coarse + mid + fine), 0, 255).astype(np.uint8)


def readout_responses(features: np.ndarray, n_sites: int, *, noise_sd: float = 0.3, n_trials: int = 10,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(signal (N, g, g, S), trials (T, N, g, g, S)) for sites that read out ``features`` (N, g, g, D).

    signal = ``prepare_features(features) @ W`` with W ~ N(0, 1) of shape (D, S), each site then
    scaled to zero mean and unit SD over all images and locations; each trial adds independent
    N(0, ``noise_sd``^2) noise. The per-image, per-site maps of the trial mean therefore have noise
    variance ``noise_sd^2 / n_trials``.
    """
    rng = np.random.default_rng(seed)
    n, g, _, d = features.shape
    x = prepare_features(features).reshape(n, g, g, d)
    signal = x @ rng.normal(size=(d, n_sites))
    signal = (signal - signal.mean((0, 1, 2))) / signal.std((0, 1, 2))
    trials = signal[None] + rng.normal(0, noise_sd, size=(n_trials, *signal.shape))
    return signal, trials


def oracle_score(signal: np.ndarray, responses: np.ndarray) -> float:
    """The score of a model that predicts ``signal`` exactly: per image, Pearson r per site between
    signal and recorded maps, median over sites, mean over images. What "the ceiling" estimates."""
    n, g, _, s = signal.shape
    per_image = [np.nanmedian(pearson_columns(signal[i].reshape(-1, s), responses[i].reshape(-1, s))) for i in range(n)]
    return float(np.mean(per_image))


def write_release(folder: str | Path, images: Mapping[str, np.ndarray], responses: Mapping[str, np.ndarray], *,
                  window: str = "docstring", n_time: int | None = None) -> Path:
    """Write the release layout into ``folder`` for the monkeys in ``images``/``responses``.

    ``images[monkey]`` uint8 (N, H, W, 3); ``responses[monkey]`` (N, g, g, C) in the loader's frame
    (after its flip). George needs more than 32 channels (its PL/ML split is at 32 or 33).
    ``window``: the named window (arcaro.WINDOWS) whose mean equals the responses. Returns ``folder``.
    """
    import scipy.io
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SYNTHETIC_MARKER).write_text("Generated by alignbench (benchmark.neural.synthetic): not recorded data.\n")
    for monkey, imgs in images.items():
        if monkey not in MONKEYS:
            raise InvalidInputError(f"monkey {monkey!r}: expected one of {sorted(MONKEYS)}")
        resp = np.asarray(responses[monkey], np.float32)
        n, g, _, c = resp.shape
        if monkey == "George" and c <= max(CHANNEL_SPLITS.values()):
            raise InvalidInputError(f"George needs more than {max(CHANNEL_SPLITS.values())} channels, got {c}")
        start, end = WINDOWS[window][monkey]
        t = n_time or end
        rf = np.zeros((g, g, t, c, n), np.float32)
        # (image, X, Y, channel) -> flipped back -> (X, Y, channel, image), constant over the window
        rf[:, :, start:end] = resp[:, ::-1, ::-1].transpose(1, 2, 3, 0)[:, :, None]
        spec = MONKEYS[monkey]
        names = [f"img{i + 1:02d}.png" for i in range(n)]
        img_dir = folder / spec.image_dir
        img_dir.mkdir(parents=True, exist_ok=True)
        for name, im in zip(names, np.asarray(imgs)):
            Image.fromarray(im).save(img_dir / name)
        unique = np.empty((n, 1), dtype=object)  # a MATLAB cell array of Windows paths, as released
        for i, name in enumerate(names):
            unique[i, 0] = f"C:\\stimuli\\{monkey}\\{name}"
        mat = folder / spec.mat
        mat.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(mat, {"imageRF": rf, "UniqueNames": unique}, do_compression=True)
    return folder


def write_release_zip(path: str | Path, source_folder: str | Path, *, top: str = "Arcaro2020") -> Path:
    """Zip a release folder as ``<top>/George/...`` (the archive wraps the data in one folder)."""
    path, source_folder = Path(path), Path(source_folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(source_folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"{top}/{f.relative_to(source_folder).as_posix()}")
    return path


def random_release(folder: str | Path, *, n_images: int = 14, george_grid: int = 9, red_grid: int = 9,
                   george_channels: int = 40, red_channels: int = 8, seed: int = 0) -> Path:
    """A release with random smooth responses (no ground truth): for loader and plumbing tests."""
    from benchmark.neural.resample import bilinear_resize

    rng = np.random.default_rng(seed)
    images = {m: make_images(n_images, seed + k) for k, m in enumerate(("George", "Red"))}
    responses = {}
    for m, g, c in (("George", george_grid, george_channels), ("Red", red_grid, red_channels)):
        responses[m] = bilinear_resize(rng.normal(size=(n_images, 3, 3, c)).astype(np.float32), g) \
            + 0.2 * rng.normal(size=(n_images, g, g, c))
    return write_release(folder, images, responses)


def write_synthetic_recordings(path: str | Path, *, n_images: int = 24, grid: int = 5, n_sites: int = 16,
                               n_trials: int = 6, seed: int = 0) -> Path:
    """Write generated recordings in the users' ``.npz`` format (:mod:`benchmark.neural.recordings`),
    marked ``synthetic``: smooth random site maps on a ``grid x grid`` of positions, ``n_trials`` noisy
    trials each (so the split-half ceiling applies), one region "IT". Written atomically."""
    import io

    from benchmark.neural.resample import bilinear_resize
    from model_zoo.fileio import atomic_write_bytes

    if n_images < 3 or grid < 2 or n_sites < 1 or n_trials < 2:
        raise InvalidInputError("synthetic recordings need >= 3 images, grid >= 2, >= 1 site and >= 2 trials")
    rng = np.random.default_rng(seed)
    images = make_images(n_images, seed)
    mean = bilinear_resize(rng.normal(size=(n_images, 3, 3, n_sites)).astype(np.float32), grid)
    trials = mean[None] + 0.5 * rng.normal(size=(n_trials, n_images, grid, grid, n_sites))
    buf = io.BytesIO()
    np.savez_compressed(buf, trials=trials.astype(np.float32), images=np.clip(images, 0, 255).astype(np.uint8),
                        region=np.asarray("IT"), subject=np.asarray(Path(path).stem), synthetic=np.asarray(True))
    return atomic_write_bytes(path, buf.getvalue())
