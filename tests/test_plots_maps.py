"""alignbench plot-maps: the Figure 2 grid, the maps store, the selection of images."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import metrics
from benchmark.plots_maps import SYNTHETIC_MARK, display_map, draw_map_grid, format_rho


def _maps(n=3, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    human = rng.random((n, size, size)).astype(np.float32)
    models = {"model A": rng.random((n, size, size)).astype(np.float32),
              "model B": (human + 0.5 * rng.random((n, size, size))).astype(np.float32)}
    return images, human, models


def test_grid_has_a_row_per_image_and_a_column_per_model_with_rho_under_each_map():
    images, human, models = _maps()
    rho = {name: metrics.spearman(m, human) for name, m in models.items()}
    rho["model A"][1] = np.nan
    fig = draw_map_grid(images, human, models, spearman=rho, row_labels=["a", "b", "c"])
    axes = fig.get_axes()
    assert len(axes) == 3 * 4
    grid = np.array(axes).reshape(3, 4)
    assert [ax.get_title() for ax in grid[0]] == ["Image", "Human", "model A", "model B"]
    for i in range(3):
        assert grid[i, 0].get_ylabel() == "abc"[i]
        assert grid[i, 0].get_xlabel() == grid[i, 1].get_xlabel() == ""
        for j, name in enumerate(models):
            assert grid[i, 2 + j].get_xlabel() == format_rho(rho[name][i])
    assert grid[1, 2].get_xlabel() == "ρ undefined"
    assert not any(SYNTHETIC_MARK in t.get_text() for t in fig.texts)
    marked = draw_map_grid(images, human, models, synthetic=True)
    assert any(t.get_text() == SYNTHETIC_MARK for t in marked.texts)


def test_smoothing_touches_only_the_display_copies():
    images, human, models = _maps()
    before = {k: v.copy() for k, v in models.items()}
    human_before = human.copy()
    fig = draw_map_grid(images, human, models, smooth_sigma=8.0)
    for k in models:
        np.testing.assert_array_equal(models[k], before[k])
    np.testing.assert_array_equal(human, human_before)
    shown = np.asarray(np.array(fig.get_axes()).reshape(3, 4)[0, 2].get_images()[0].get_array())
    np.testing.assert_allclose(shown, display_map(models["model A"][0], 8.0))
    raw = display_map(models["model A"][0], None)
    assert np.abs(shown - raw).max() > 0.1  # it was smoothed
    assert np.std(shown) < np.std(raw)
    np.testing.assert_allclose(raw.min(), 0) and np.testing.assert_allclose(raw.max(), 1)


def test_bad_shapes_are_named():
    images, human, models = _maps()
    with pytest.raises(ValueError, match="model B"):
        draw_map_grid(images, human, {**models, "model B": models["model B"][:2]})
    with pytest.raises(ValueError, match="titles"):
        draw_map_grid(images, human, models, titles=["x"])
