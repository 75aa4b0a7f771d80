"""Generate ClickMe-format datasets: the official TFRecord schema, plus simulated participants.

Each record holds ``image`` (JPEG 256x256x3), ``heatmap`` (JPEG 256x256x1) and ``label`` (int64
ImageNet index), exactly as the official shards, plus ``participant_heatmaps`` (one JPEG 256x256x1 per
simulated participant) so human ceilings can be computed. A scene is a class-specific shape on a
textured background. Each participant "clicks" the object's mask seen through their own spatial
offset, gain and smooth noise; ``heatmap`` is the mean of the participants' maps, as in ClickMe.

``shortcut`` plants a cue a model can learn instead of the shape: with that probability the
background colour is the class's own colour (0 = no cue). Everything is deterministic for a seed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from benchmark.datasets.tf_ops import tf_module
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_json

SIZE = 256
SHAPES = ("disk", "square", "triangle", "cross", "ring")  # class c's shape: shapes[c % len(shapes)]
# every shape the generator draws; "hbar" / "vbar": a 2r x 2r/3 bar, horizontal / vertical
SHAPE_NAMES = SHAPES + ("hbar", "vbar")


def class_labels(n_classes: int) -> np.ndarray:
    """``n_classes`` ImageNet indices spread evenly over 0..999 (int64)."""
    if not 1 <= n_classes <= 1000:
        raise InvalidInputError(f"n_classes must be in 1..1000, got {n_classes}")
    return np.unique(np.linspace(0, 999, n_classes).round().astype(np.int64))


def encode_jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of a uint8 HxWxC array (C = 1 or 3), encoded by TensorFlow's libjpeg."""
    return tf_module().io.encode_jpeg(np.ascontiguousarray(array, dtype=np.uint8), quality=quality).numpy()


def make_example(image_jpeg: bytes, heatmap_jpeg: bytes, label: int,
                 participant_jpegs: Sequence[bytes] | None = None) -> bytes:
    """A serialized ``tf.train.Example`` in the ClickMe schema (plus optional participant maps)."""
    tf = tf_module()
    feature = {
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_jpeg])),
        "heatmap": tf.train.Feature(bytes_list=tf.train.BytesList(value=[heatmap_jpeg])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    if participant_jpegs is not None:
        feature["participant_heatmaps"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(participant_jpegs)))
    # deterministic: a protobuf map's entries are otherwise serialised in a per-process order, and the
    # same data would get another dataset fingerprint on every run
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> Path:
    """Write serialized records to a TFRecord file atomically (temporary name, then rename)."""
    tf = tf_module()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for record in records:
                writer.write(record)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_clickme_shards(
    out_dir: str | os.PathLike,
    n_images: int,
    *,
    n_shards: int = 2,
    n_participants: int = 6,
    seed: int = 0,
    split: str = "val",
    n_classes: int = 10,
    shortcut: float = 0.0,
    participant_noise: float = 0.5,
    participant_offset_px: float = 6.0,
    jpeg_quality: int = 95,
    progress: Callable[[int], object] | None = None,
    object_cue: float = 0.0,
    shortcut_margin_px: float = 0.0,
    object_radius_px: tuple[float, float] = (40.0, 80.0),
    off_centre_px: float = 0.0,
    shortcut_patch_px: float = 0.0,
    shapes: Sequence[str] = SHAPES,
) -> list[Path]:
    """Write ``n_images`` synthetic records into ``<out_dir>/<split>-<k>.tfrecords`` (k < n_shards).

    Classes are balanced (``i % n_classes``, shuffled) over :func:`class_labels`. ``participant_noise``
    (>= 0) scales each participant's smooth multiplicative noise; ``participant_offset_px`` is the
    standard deviation of their click offset. Also writes ``manifest.json`` (parameters, counts,
    ``"synthetic": true``). ``progress(n)`` (optional) is called after each image with n = 1, e.g.
    a progress bar's ``update``. ``object_cue``: with this probability the object is drawn in its
    class's own colour (a dark hue of its own, distinct from the background palette), so the object
    itself carries the class by shape *and* colour (0 = random object colours, the default).
    ``shortcut_margin_px`` > 0 keeps the background colour (the shortcut, or a random one) away from
    the object: within that distance of it the background has a random colour of its own, so the
    cue is only far from the object (where human maps are zero), not in the blurred halo around it.
    ``object_radius_px`` (lo, hi): the object's size range (256-px pixels); ``off_centre_px`` > 0 puts
    the object's centre at least that far from the image centre (anywhere else in the frame), so a
    centred blob does not predict where the object is. ``shortcut_patch_px`` > 0 moves the shortcut
    from the background into a square patch of that side in the image corner farthest from the object:
    with probability ``shortcut`` the class's colour, else a random one (the background is then
    random in every image). ``shapes``: the shape of class position c is ``shapes[c % len(shapes)]``
    (names from ``SHAPE_NAMES``; default ``SHAPES``). Returns the shard paths in order.
    """
    if n_images < 1 or n_shards < 1 or n_shards > n_images:
        raise InvalidInputError(f"need 1 <= n_shards <= n_images, got n_images={n_images}, n_shards={n_shards}")
    if n_participants < 1:
        raise InvalidInputError(f"n_participants must be >= 1, got {n_participants}")
    if not 0.0 <= shortcut <= 1.0:
        raise InvalidInputError(f"shortcut must be a probability in [0, 1], got {shortcut}")
    if not 0.0 <= object_cue <= 1.0:
        raise InvalidInputError(f"object_cue must be a probability in [0, 1], got {object_cue}")
    lo, hi = (float(v) for v in object_radius_px)
    if not 4.0 <= lo <= hi <= SIZE * 3 / 8:
        raise InvalidInputError(f"object_radius_px must be (lo, hi) with 4 <= lo <= hi <= {SIZE * 3 // 8}, "
                                f"got {object_radius_px}")
    if not 0.0 <= off_centre_px <= SIZE / 2 - hi - 8:
        raise InvalidInputError(f"off_centre_px must be in [0, {SIZE / 2 - hi - 8:g}] for objects of radius "
                                f"up to {hi:g}, got {off_centre_px}")
    if not 0.0 <= shortcut_patch_px <= SIZE / 4:
        raise InvalidInputError(f"shortcut_patch_px must be in [0, {SIZE // 4}], got {shortcut_patch_px}")
    shapes = tuple(shapes)
    unknown = [s for s in shapes if s not in SHAPE_NAMES]
    if not shapes or unknown:
        raise InvalidInputError(f"shapes must be a non-empty list of {', '.join(SHAPE_NAMES)}; got {list(shapes)}")
    labels = class_labels(n_classes)
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.arange(n_images) % len(labels))
    palette = class_palette(len(labels))
    out = Path(out_dir)
    paths, counts = [], {}
    for k, chunk in enumerate(np.array_split(np.arange(n_images), n_shards)):
        records = []
        for i in chunk:
            c = int(classes[i])
            image, mask = draw_scene(rng, c, palette, shortcut, object_cue, shortcut_margin_px,
                                     (lo, hi), off_centre_px, shortcut_patch_px, shapes)
            maps = [participant_map(rng, mask, participant_noise, participant_offset_px)
                    for _ in range(n_participants)]
            mean_map = np.mean(maps, axis=0).round().astype(np.uint8)
            records.append(make_example(
                encode_jpeg(image, jpeg_quality),
                encode_jpeg(mean_map[..., None], jpeg_quality),
                int(labels[c]),
                [encode_jpeg(m[..., None], jpeg_quality) for m in maps],
            ))
            if progress is not None:
                progress(1)
        path = write_records(out / f"{split}-{k}.tfrecords", records)
        paths.append(path)
        counts[path.name] = len(records)
    atomic_write_json(out / "manifest.json", {
        "synthetic": True,
        "generator": "benchmark.datasets.synthetic.write_clickme_shards",
        "params": {"n_images": n_images, "n_shards": n_shards, "n_participants": n_participants, "seed": seed,
                   "split": split, "n_classes": n_classes, "shortcut": shortcut,
                   "participant_noise": participant_noise, "participant_offset_px": participant_offset_px,
                   "jpeg_quality": jpeg_quality, **({"object_cue": object_cue} if object_cue else {}),
                   **({"shortcut_margin_px": shortcut_margin_px} if shortcut_margin_px else {}),
                   **({"object_radius_px": [lo, hi]} if (lo, hi) != (40.0, 80.0) else {}),
                   **({"off_centre_px": off_centre_px} if off_centre_px else {}),
                   **({"shortcut_patch_px": shortcut_patch_px} if shortcut_patch_px else {}),
                   **({"shapes": list(shapes)} if shapes != SHAPES else {})},
        "labels": [int(x) for x in labels],
        "shapes": {int(labels[c]): shapes[c % len(shapes)] for c in range(len(labels))},
        "counts": {"images": n_images, "shards": counts},
    })
    return paths


def class_palette(n: int) -> np.ndarray:
    """(n, 3) distinct saturated colours in [0, 255], one per class (hue wheel)."""
    import matplotlib.colors as mcolors

    hsv = np.stack([np.arange(n) / n, np.full(n, 0.8), np.full(n, 0.85)], axis=1)
    return mcolors.hsv_to_rgb(hsv) * 255.0


def _shape_mask(kind: str, cy: float, cx: float, r: float, angle: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    dx, dy = dx * np.cos(angle) - dy * np.sin(angle), dx * np.sin(angle) + dy * np.cos(angle)
    if kind == "disk":
        return dx**2 + dy**2 < r**2
    if kind == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) < 0.8 * r
    if kind == "triangle":
        return (dy < 0.8 * r) & (np.abs(dx) < (dy + r) / 2)
    if kind in ("hbar", "vbar"):
        along, across = (dx, dy) if kind == "hbar" else (dy, dx)
        return (np.abs(along) < r) & (np.abs(across) < r / 3)
    if kind == "cross":
        return ((np.abs(dx) < r / 3) & (np.abs(dy) < r)) | ((np.abs(dy) < r / 3) & (np.abs(dx) < r))
    d2 = dx**2 + dy**2  # ring
    return (d2 < r**2) & (d2 > (0.5 * r) ** 2)


def _object_palette(n: int) -> np.ndarray:
    """(n, 3) object colours: hues half-way between the background palette's, darker and fully saturated."""
    import matplotlib.colors as mcolors

    hsv = np.stack([(np.arange(n) + 0.5) / n, np.full(n, 1.0), np.full(n, 0.45)], axis=1)
    return mcolors.hsv_to_rgb(hsv) * 255.0


def _object_centre(rng: np.random.Generator, r: float, off_centre: float) -> tuple[float, float]:
    """Uniform over the frame (8 px clear of the border), at least ``off_centre`` from the image centre."""
    while True:  # rejection: the allowed area is at least a quarter of the square (checked by the caller)
        cy, cx = rng.uniform(r + 8, SIZE - r - 8, size=2)
        if not off_centre or np.hypot(cy - SIZE / 2, cx - SIZE / 2) >= off_centre:
            return cy, cx


def draw_scene(rng: np.random.Generator, c: int, palette: np.ndarray, shortcut: float,
               object_cue: float = 0.0, margin: float = 0.0, radius: tuple[float, float] = (40.0, 80.0),
               off_centre: float = 0.0, patch: float = 0.0,
               shapes: Sequence[str] = SHAPES) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 256x256x3, object mask bool 256x256) for class position ``c``."""
    r = rng.uniform(*radius)
    cy, cx = _object_centre(rng, r, off_centre)
    angle = (c // len(shapes)) * np.pi / 7 + rng.normal(0, 0.1)
    mask = _shape_mask(shapes[c % len(shapes)], cy, cx, r, angle)
    cued = rng.random() < shortcut
    background = palette[c] if cued and not patch else rng.uniform(30, 225, size=3)
    if margin:  # the (cue or random) colour only far from the object; a random one near it
        from scipy.ndimage import distance_transform_edt

        far = distance_transform_edt(~mask) > margin
        background = np.where(far[..., None], background, rng.uniform(30, 225, size=3))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    theta, freq = rng.uniform(0, np.pi), rng.uniform(0.03, 0.15)
    stripes = np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)))[..., None] * 20.0
    image = background + stripes + rng.normal(0, 8, size=(SIZE, SIZE, 3))
    obj_colour = rng.uniform(0, 255, size=3)
    if object_cue and rng.random() < object_cue:  # no extra draw when off: default outputs unchanged
        obj_colour = _object_palette(len(palette))[c] + rng.normal(0, 10, size=3)
    obj = obj_colour + rng.normal(0, 6, size=(SIZE, SIZE, 3))
    image = np.where(mask[..., None], obj, image)
    if patch:  # the shortcut as a patch in the corner farthest from the object
        side, inset = int(round(patch)), 8
        y0 = inset if cy > SIZE / 2 else SIZE - inset - side
        x0 = inset if cx > SIZE / 2 else SIZE - inset - side
        image[y0:y0 + side, x0:x0 + side] = palette[c] if cued else rng.uniform(0, 255, size=3)
    return np.clip(image, 0, 255).round().astype(np.uint8), mask


def participant_map(rng: np.random.Generator, mask: np.ndarray, noise: float, offset_px: float) -> np.ndarray:
    """One simulated participant's click map (uint8 256x256, peak 255)."""
    from scipy.ndimage import gaussian_filter, shift

    dy, dx = rng.normal(0, offset_px, size=2)
    seen = shift(mask.astype(np.float64), (dy, dx), order=0, mode="constant", cval=0.0)
    if not seen.any():  # shifted out of frame: an all-zero map would be skipped as "empty heatmap"
        seen = mask.astype(np.float64)
    field = gaussian_filter(rng.normal(0, 1, size=mask.shape), 12)
    field /= field.std() + 1e-12
    attention = np.clip(1.0 + noise * field, 0.0, None)  # smooth: clicks cluster, as in ClickMe
    m = gaussian_filter(seen * attention * rng.uniform(0.6, 1.0), 6)
    m = m / (m.max() + 1e-12) * 255.0
    return m.round().astype(np.uint8)
