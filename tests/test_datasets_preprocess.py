"""The paper's ClickMe preprocessing, checked against independent re-implementations of
shared/reference/conventions.md (plain numpy, and PyTorch), and shown to differ from the
plausible-but-wrong variants (antialiased/PIL resize, centred blur, accurate IDCT)."""
from __future__ import annotations

import io

import numpy as np
import pytest

from benchmark.datasets import preprocess_heatmaps, preprocess_images
from benchmark.datasets.tf_ops import gaussian_kernel
from model_zoo.errors import InvalidInputError

pytestmark = pytest.mark.tf


# ---------------------------------------------------------------- independent numpy reference

def ref_kernel() -> np.ndarray:
    """conventions.md: x runs -5..4 (columns), y runs 4..-5 (rows), sigma 10, sum 1."""
    x = np.arange(-5, 5)
    y = np.arange(4, -6, -1)
    k = np.exp(-(x[None, :] ** 2 + y[:, None] ** 2) / (2 * 10.0**2))
    return k / k.sum()


def ref_resize_axis(a: np.ndarray, out: int, axis: int) -> np.ndarray:
    """Bilinear with half-pixel centres and no antialias along one axis. The source coordinates are
    computed in float32 as TF does (float64 would differ by up to 0.01 on noisy 0..255 images)."""
    n = a.shape[axis]
    f32 = np.float32
    src = np.clip((np.arange(out, dtype=f32) + f32(0.5)) * f32(n / out) - f32(0.5), 0, n - 1).astype(np.float64)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = src - i0
    shape = [1] * a.ndim
    shape[axis] = out
    return np.take(a, i0, axis=axis) * (1 - w).reshape(shape) + np.take(a, i1, axis=axis) * w.reshape(shape)


def ref_resize(a: np.ndarray, out: int) -> np.ndarray:
    """(N,H,W[,C]) -> (N,out,out[,C])."""
    return ref_resize_axis(ref_resize_axis(a.astype(np.float64), out, 1), out, 2)


def ref_blur(a: np.ndarray) -> np.ndarray:
    """Cross-correlation with zero padding 4 top/left, 5 bottom/right (TF 'SAME' for a 10x10 kernel)."""
    k = ref_kernel()
    n, h, w = a.shape
    padded = np.pad(a, ((0, 0), (4, 5), (4, 5)))
    out = np.zeros_like(a, dtype=np.float64)
    for dy in range(10):
        for dx in range(10):
            out += k[dy, dx] * padded[:, dy:dy + h, dx:dx + w]
    return out


def ref_heatmaps(h: np.ndarray) -> np.ndarray:
    return ref_resize(ref_blur(ref_resize(h, 64)), 224)


@pytest.fixture(scope="module")
def maps() -> np.ndarray:
    """Blobby maps with sharp edges and noise, values 0..255 like decoded heatmaps."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:256, 0:256]
    out = []
    for _ in range(3):
        cy, cx, r = rng.uniform(60, 200), rng.uniform(60, 200), rng.uniform(20, 60)
        blob = 255.0 * ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2)
        out.append(np.clip(blob + rng.normal(0, 30, (256, 256)), 0, 255).round())
    return np.stack(out).astype(np.float32)


# ---------------------------------------------------------------- kernel

def test_kernel_is_the_papers_off_centre_kernel():
    k = gaussian_kernel()
    assert k.shape == (10, 10) and k.dtype == np.float32
    assert np.unravel_index(np.argmax(k), k.shape) == (4, 5)
    np.testing.assert_allclose(k.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(k, ref_kernel(), rtol=1e-6)
    assert not np.allclose(k, k[::-1, ::-1])  # even size: no centre, so not point-symmetric


# ---------------------------------------------------------------- heatmap chain

def test_heatmaps_match_numpy_reference(maps):
    out = preprocess_heatmaps(maps)
    assert out.shape == (3, 224, 224) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref_heatmaps(maps), atol=5e-4, rtol=1e-5)


def test_heatmaps_accept_channel_axis(maps):
    np.testing.assert_array_equal(preprocess_heatmaps(maps[..., None]), preprocess_heatmaps(maps))


@pytest.mark.torch
def test_heatmaps_match_torch_reference(maps):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(maps)[:, None].double()
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=False)
    x = F.conv2d(F.pad(x, (4, 5, 4, 5)), torch.from_numpy(ref_kernel())[None, None])
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    np.testing.assert_allclose(preprocess_heatmaps(maps), x[:, 0].numpy(), atol=5e-4, rtol=1e-5)


def test_blur_padding_darkens_borders_as_documented():
    # paper-notes: a flat map becomes 0.37 in the corners, about 0.60 at edge midpoints (64x64 stage);
    # one pixel differs, so the map is not constant (constant maps stay constant: next test)
    flat = np.full((1, 256, 256), 100.0, np.float32)
    flat[0, 128, 128] = 101.0
    out = preprocess_heatmaps(flat)[0]
    ref = ref_heatmaps(flat.astype(np.float64))[0]
    np.testing.assert_allclose(out, ref, atol=5e-4)
    assert out[112, 112] == pytest.approx(100.0, abs=0.1)
    assert out[0, 0] < 45 and out[-1, -1] < out[0, 0]  # bottom/right get 5 zero rows, top/left 4


@pytest.mark.parametrize("value", [0.0, 1.0, 100.0, 255.0])
def test_constant_maps_stay_exactly_constant(maps, value):
    """A map constant before the blur has no spatial information: the chain keeps it exactly
    constant (the zero-padded blur alone would darken its border and give it a defined rho);
    the other maps of the same batch are untouched, bit for bit."""
    from benchmark.datasets.tf_ops import preprocess_heatmaps_tf

    batch = np.concatenate([maps[:2], np.full((1, 256, 256), value, np.float32), maps[2:]])
    out = preprocess_heatmaps(batch)
    assert np.all(out[2] == np.float32(value))
    np.testing.assert_array_equal(np.delete(out, 2, axis=0), preprocess_heatmaps(maps))
    resized = preprocess_heatmaps_tf(batch[..., None], blur=False).numpy()
    assert np.all(resized[2] == np.float32(value))


def test_wrong_variants_do_not_match(maps):
    """The comparison above could fail: plausible alternatives differ by far more than its tolerance."""
    from scipy.ndimage import gaussian_filter

    ours = preprocess_heatmaps(maps).astype(np.float64)
    variants = {
        # truncate 0.45: an 11x11 centred Gaussian, the closest scipy gets to the paper's 10x10
        "scipy gaussian_filter": ref_resize(gaussian_filter(ref_resize(maps, 64), sigma=(0, 10, 10), mode="constant",
                                                            truncate=0.45), 224),
        "centred padding 5/4": ref_resize(_blur_with_padding(ref_resize(maps, 64), (5, 4)), 224),
        "antialiased resize": _torch_antialiased_chain(maps),
    }
    for name, alt in variants.items():
        assert np.abs(ours - alt).max() > 0.5, name


def _blur_with_padding(a: np.ndarray, pad: tuple[int, int]) -> np.ndarray:
    k = ref_kernel()
    padded = np.pad(a, ((0, 0), pad, pad))
    n, h, w = a.shape
    return sum(k[dy, dx] * padded[:, dy:dy + h, dx:dx + w] for dy in range(10) for dx in range(10))


def _torch_antialiased_chain(maps: np.ndarray) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(maps)[:, None].double()
    x = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
    x = F.conv2d(F.pad(x, (4, 5, 4, 5)), torch.from_numpy(ref_kernel())[None, None])
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    return x[:, 0].numpy()


# ---------------------------------------------------------------- images

def test_images_match_reference_and_not_pil():
    from PIL import Image

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (2, 256, 256, 3)).astype(np.float32)
    out = preprocess_images(x)
    assert out.shape == (2, 224, 224, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, ref_resize(x, 224), atol=5e-4, rtol=1e-5)
    assert out.min() >= 0 and out.max() <= 255
    pil = np.stack([np.asarray(Image.fromarray(im.astype(np.uint8)).resize((224, 224), Image.BILINEAR), np.float64)
                    for im in x])
    assert np.abs(out - pil).mean() > 5  # PIL's bilinear antialiases when shrinking


@pytest.mark.parametrize("bad", [(2, 224, 224), (2, 256, 256, 3), (256, 256), (2, 256, 128)])
def test_heatmap_shape_errors(bad):
    with pytest.raises(InvalidInputError, match="256,256"):
        preprocess_heatmaps(np.zeros(bad, np.float32))


def test_image_shape_errors():
    with pytest.raises(InvalidInputError, match="256,256,3"):
        preprocess_images(np.zeros((2, 256, 256, 1), np.float32))


# ---------------------------------------------------------------- JPEG decoding (TF default IDCT)

def test_loader_uses_tf_default_idct_not_pil(clickme_dataset):
    """Images in batches equal the reference chain on TF's default decode (fast integer IDCT), and
    the accurate IDCT (PIL's) gives measurably different pixels."""
    import tensorflow as tf
    from PIL import Image

    raw = next(iter(tf.data.TFRecordDataset(str(clickme_dataset.files()[0])))).numpy()
    jpeg = tf.train.Example.FromString(raw).features.feature["image"].bytes_list.value[0]
    fast = tf.io.decode_jpeg(jpeg, dct_method="INTEGER_FAST").numpy().astype(np.float64)
    accurate = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), np.float64)
    assert np.abs(fast - accurate).max() >= 1  # the decoders really differ on this image
    first = next(clickme_dataset.batches(1)).images[0]
    np.testing.assert_allclose(first, ref_resize(fast[None], 224)[0], atol=5e-4)
    assert np.abs(first - ref_resize(accurate[None], 224)[0]).max() > 0.1
