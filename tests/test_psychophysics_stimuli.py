"""Stimulus generation: levels, revealed counts, centring, amplitude spectrum, determinism (numpy only)."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from benchmark.psychophysics import stimuli
from model_zoo.errors import InvalidInputError


def _scene(seed=0, size=64, corner=(12, 14)):
    rng = np.random.default_rng(seed)
    image = rng.uniform(0, 255, size=(size, size, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    importance = np.exp(-((yy - corner[0]) ** 2 + (xx - corner[1]) ** 2) / (2 * 6.0**2))  # off-centre blob
    return image, importance


def test_levels_are_log_spaced_from_1_to_100_percent():
    expected = [10 ** (k / 5) for k in range(11)]
    assert np.allclose([stimuli.level_percent(k) for k in stimuli.LEVELS], expected)
    assert stimuli.LEVEL_NAMES[0] == "0" and stimuli.LEVEL_NAMES[-1] == "full"
    with pytest.raises(InvalidInputError):
        stimuli.level_percent(11)


def test_revealed_count_per_level_is_exact_and_equal_across_images():
    counts = []
    for seed in (0, 1):
        image, importance = _scene(seed, corner=(10 + 20 * seed, 40))
        out = stimuli.stimuli_for_image(image, importance, image_id=f"im{seed}", label=5, seed=0)
        counts.append([int(s.mask.sum()) for s in out])
        for s in out:
            assert s.n_revealed == max(1, round(stimuli.level_percent(s.level) / 100 * 64 * 64))
    assert counts[0] == counts[1]
    assert counts[0][-1] == 64 * 64


def test_revealed_pixels_are_the_most_important_ones_shifted_intact():
    image, importance = _scene()
    importance = importance + 1e-9 * np.random.default_rng(1).random(importance.shape)  # no ties
    grey = image @ np.array([0.299, 0.587, 0.114])
    s = stimuli.stimuli_for_image(image, importance, image_id="a", label=1, seed=0, levels=[5])[0]
    top = np.argsort(-importance.ravel(), kind="stable")[: s.n_revealed]
    ys, xs = np.unravel_index(top, importance.shape)
    dy, dx = s.shift
    assert np.array_equal(np.sort(np.ravel_multi_index((ys + dy, xs + dx), importance.shape)), np.flatnonzero(s.mask))
    assert np.array_equal(s.pixels[ys + dy, xs + dx], np.clip(np.round(grey[ys, xs]), 0, 255).astype(np.uint8))


def test_revealed_region_is_centred():
    image, importance = _scene(corner=(12, 14))
    for s in stimuli.stimuli_for_image(image, importance, image_id="a", label=1, seed=0, levels=range(8)):
        ys, xs = np.nonzero(s.mask)
        assert abs(ys.mean() - 31.5) <= 0.5 + 1e-9 and abs(xs.mean() - 31.5) <= 0.5 + 1e-9, s.level
    # a region too large to centre is clamped inside the frame: count still exact
    big = stimuli.stimuli_for_image(image, importance, image_id="a", label=1, seed=0, levels=[9])[0]
    assert big.mask.sum() == big.n_revealed


def test_noise_has_the_image_amplitude_spectrum_and_another_phase():
    image, _ = _scene()
    grey = image @ np.array([0.299, 0.587, 0.114])
    noise = stimuli.phase_scramble(grey, np.random.default_rng(3))
    a, b = np.fft.fft2(grey), np.fft.fft2(noise)
    assert np.allclose(np.abs(a), np.abs(b), rtol=1e-8, atol=1e-6 * np.abs(a).max())
    assert np.isclose(noise.mean(), grey.mean())
    phase_diff = np.abs(np.angle(a[1:, 1:] * np.conj(b[1:, 1:])))
    assert phase_diff.mean() > 1.0  # random phases differ by pi/2 on average
    assert abs(np.corrcoef(grey.ravel(), noise.ravel())[0, 1]) < 0.2


def test_stimulus_background_is_the_noise_and_full_level_is_the_image():
    image, importance = _scene()
    grey = image @ np.array([0.299, 0.587, 0.114])
    out = stimuli.stimuli_for_image(image, importance, image_id="a", label=1, seed=7)
    noise = stimuli.phase_scramble(grey, stimuli.image_rng(7, "a"))
    low = out[0]
    assert np.array_equal(low.pixels[~low.mask], np.clip(np.round(noise), 0, 255).astype(np.uint8)[~low.mask])
    assert np.array_equal(out[-1].pixels, np.clip(np.round(grey), 0, 255).astype(np.uint8))


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_make_stimuli_is_deterministic_per_seed(tmp_path):
    src = [(f"im{i}", 10 * i + 1 if i % 2 else 500, *_scene(i)) for i in range(3)]
    m1 = stimuli.make_stimuli(src, tmp_path / "a", seed=1)
    stimuli.make_stimuli(src, tmp_path / "b", seed=1)
    stimuli.make_stimuli(src, tmp_path / "c", seed=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a")["L00_im0.png"] != _digest(tmp_path / "c")["L00_im0.png"]
    assert _digest(tmp_path / "a")["L10_im0.png"] == _digest(tmp_path / "c")["L10_im0.png"]  # no noise at 100 %
    s = stimuli.read_stimuli(m1.parent)
    assert len(s.rows) == 33 and s.image_ids == ["im0", "im1", "im2"]
    assert [r["animal"] for r in s.rows if r["level"] == 0] == [False, True, False]
    assert s.params["seed"] == 1


def test_make_stimuli_refuses_mixed_sizes(tmp_path):
    a, b = _scene(size=64), _scene(size=32, corner=(5, 5))
    with pytest.raises(InvalidInputError, match="size"):
        stimuli.make_stimuli([("a", 1, *a), ("b", 2, *b)], tmp_path, seed=0)


def test_read_stimuli_names_missing_manifest(tmp_path):
    with pytest.raises(InvalidInputError, match="manifest.csv"):
        stimuli.read_stimuli(tmp_path)
