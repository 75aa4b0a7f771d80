"""alignbench plot-maps: the Figure 2 grid, the maps store, the selection of images."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from benchmark import gallery, maps_store, metrics, records, runner
from benchmark.maps_figure import MapsFigureConfig, build_maps_figure, plot_maps, select_extremes
from benchmark.plots_maps import SYNTHETIC_MARK, display_map, draw_map_grid, format_rho
from benchmark.tasks.maps import MapsTask
from model_zoo.errors import InvalidInputError
from tests.runner_support.fakes import FakeAdapter, FakeDataset, fake_loader

REPO = Path(__file__).resolve().parent.parent


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


# ----------------------------------------------------------------------------- choosing images
def test_most_and_least_aligned_skip_undefined_and_list_each_image_once():
    ids = ["a", "b", "c", "d", "e"]
    rho = [0.5, np.nan, -0.2, 0.9, 0.1]
    chosen = select_extremes(ids, rho, 2, 2)
    assert chosen.ids == ["d", "a", "c", "e"]
    assert chosen.labels == ["most aligned #1", "most aligned #2", "least aligned #1", "least aligned #2"]
    assert select_extremes(ids, rho, 3, 3).ids == ["d", "a", "e", "c"]  # e is both: listed once
    with pytest.raises(InvalidInputError):
        select_extremes(ids, rho, -1, 0)


# ----------------------------------------------------------------------------- the store and the figure
class NoisyAdapter(FakeAdapter):
    """Maps = the object (red channel) plus per-image noise, so images differ in alignment."""

    def predict_and_saliency(self, images, labels):
        self.calls += 1
        logits, maps = FakeAdapter.predict_and_saliency(self, images, labels)
        strength = {"noisy-a": 0.5, "noisy-b": 2.0}.get(self.model_id, 0.0)
        factor = 1 + np.floor(images[:, 0, 0, 2]) % 3  # per image, whatever batch it is in
        noise = images[..., 1] / 255.0 * factor[:, None, None]
        return logits, (maps + strength * noise).astype(np.float32)


def noisy_loader(model_id, *, weights="pretrained", device="cpu", precision="float32"):
    return NoisyAdapter(model_id)


def _run(results, models, ds, loader=noisy_loader, **kw):
    config = runner.RunConfig(dataset=ds.name, models=models, results_dir=results, batch_size=6, device="cpu",
                              progress=False, **kw)
    return runner.run(config, task=MapsTask(ds), loader=loader)


def _figure(results, ds, models, **kw):
    config = MapsFigureConfig(dataset=ds.name, models=models, results_dir=results, device="cpu", **kw)
    return build_maps_figure(config, task=MapsTask(ds), loader=noisy_loader)


def test_saved_maps_round_trip_and_a_record_without_maps_is_scored_again(tmp_path):
    ds = FakeDataset(n=8)
    _run(tmp_path, ["noisy-a"], ds)  # without --save-maps: no store
    assert maps_store.open_store(tmp_path, ds.name, "noisy-a") is None
    summary = _run(tmp_path, ["noisy-a"], ds, save_maps=True)
    assert summary.outcomes[0].status == "ok"  # scored again to get the maps
    with maps_store.open_store(tmp_path, ds.name, "noisy-a") as store:
        assert store.image_ids == ds.ids
        rec = records.read_record(tmp_path / ds.name / "noisy-a.json")
        assert store.matches(rec["identity"])
        expected = NoisyAdapter("noisy-a").predict_and_saliency(ds.images[[5, 2]], ds.labels[[5, 2]])[1]
        np.testing.assert_array_equal(store.get([ds.ids[5], ds.ids[2]]), expected)
        with pytest.raises(InvalidInputError, match="no saved map"):
            store.get(["nope"])
    assert not (tmp_path / ds.name / ".partial-maps" / "noisy-a").exists()
    assert _run(tmp_path, ["noisy-a"], ds, save_maps=True).outcomes[0].status == "skipped"


def test_saved_maps_resume_after_kill_minus_9(tmp_path):
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from benchmark import runner
        from benchmark.tasks.maps import MapsTask
        from tests.runner_support.fakes import FakeDataset, fake_loader
        ds = FakeDataset()
        cfg = runner.RunConfig(dataset=ds.name, models=["good-model"], results_dir=Path({str(tmp_path)!r}),
                               batch_size=6, device="cpu", progress=False, save_maps=True)
        runner.run(cfg, task=MapsTask(ds), loader=fake_loader(kill_after_batches=2))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    chunks = sorted(p.name for p in (tmp_path / "fake-set" / ".partial-maps" / "good-model").glob("chunk-*.npz"))
    assert chunks == ["chunk-rows-000000000.npz", "chunk-rows-000000006.npz"]
    ds = FakeDataset()
    _run(tmp_path, ["good-model"], ds, save_maps=True, loader=fake_loader())
    # resumed at image 12 of 20 (2 batches), then one read per image of the dataset's gallery reference
    assert ds.batches_served == 2 + gallery.GALLERY_SIZE
    assert (tmp_path / "fake-set" / gallery.REFERENCE_FILE).is_file()
    with maps_store.open_store(tmp_path, "fake-set", "good-model") as store:
        assert store.image_ids == ds.ids
        np.testing.assert_array_equal(store.get(ds.ids), ds.images[..., 0] / 255.0)


def test_rho_under_each_map_is_the_records_per_image_spearman(tmp_path):
    ds = FakeDataset(n=10)
    _run(tmp_path, ["noisy-a", "noisy-b"], ds, save_maps=True)
    scores = {m: records.read_scores(tmp_path / ds.name / f"{m}.scores.csv") for m in ("noisy-a", "noisy-b")}
    figs = {source: _figure(tmp_path, ds, ["noisy-a", "noisy-b"], most=2, least=3, by="noisy-b", source=source)
            for source in ("store", "recompute")}
    order = np.argsort(-scores["noisy-b"]["spearman"])
    expected_ids = [ds.ids[i] for i in order[:2]] + [ds.ids[i] for i in order[::-1][:3]]
    for source, drawn in figs.items():
        assert drawn.image_ids == expected_ids, source
        assert drawn.notes == [], source
        grid = np.array(drawn.figure.get_axes()).reshape(5, 4)
        assert [ax.get_title() for ax in grid[0]] == ["Image", "Human", "NOISY-A", "NOISY-B"]
        for row, image_id in enumerate(expected_ids):
            k = ds.ids.index(image_id)
            for col, model in ((2, "noisy-a"), (3, "noisy-b")):
                assert grid[row, col].get_xlabel() == format_rho(scores[model]["spearman"][k])
                assert drawn.spearman[model.upper()][row] == pytest.approx(scores[model]["spearman"][k], abs=1e-12)
            assert image_id in grid[row, 0].get_ylabel()
    chosen = _figure(tmp_path, ds, ["noisy-a"], image_ids=[ds.ids[7], ds.ids[1]], source="store")
    assert chosen.image_ids == [ds.ids[7], ds.ids[1]]


def test_a_stale_store_is_never_drawn_and_store_only_says_why(tmp_path):
    ds = FakeDataset(n=6)
    _run(tmp_path, ["noisy-a"], ds, save_maps=True)
    path = maps_store.store_path(tmp_path, ds.name, "noisy-a")
    with maps_store.open_store(tmp_path, ds.name, "noisy-a") as store:
        ident = {**store.identity, "weights_sha256": "f" * 64}
        chunk = {"image_id": np.asarray(store.image_ids), "maps": np.zeros((6, 224, 224), np.float32)}
    maps_store.write_store(path, ident, [chunk], ds.ids)
    drawn = _figure(tmp_path, ds, ["noisy-a"], most=1, least=1)
    assert any("another identity" in n and "recomputed" in n for n in drawn.notes)
    assert not any("ρ" in n and "scores.csv" in n for n in drawn.notes)  # the recomputed maps agree
    with pytest.raises(InvalidInputError, match="another identity"):
        _figure(tmp_path, ds, ["noisy-a"], most=1, least=1, source="store")
    with pytest.raises(InvalidInputError, match="run `alignbench run` first"):
        _figure(tmp_path / "empty", ds, ["noisy-a"], most=1)
    with pytest.raises(InvalidInputError, match="holds no image"):
        _figure(tmp_path, ds, ["noisy-a"], image_ids=["fake-0:999999"])


def test_all_three_formats_are_written_with_embedded_truetype_fonts(tmp_path):
    ds = FakeDataset(n=6)
    _run(tmp_path, ["noisy-a"], ds, save_maps=True)
    config = MapsFigureConfig(dataset=ds.name, models=["noisy-a"], results_dir=tmp_path, most=1, least=1)
    written, notes = plot_maps(config, task=MapsTask(ds), loader=noisy_loader)
    assert sorted(p.name for p in written) == ["maps.pdf", "maps.png", "maps.svg"]
    assert all(p.parent == tmp_path / ds.name for p in written)
    pdf = (tmp_path / ds.name / "maps.pdf").read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # TrueType embedded (pdf.fonttype 42)
    svg = (tmp_path / ds.name / "maps.svg").read_text()
    assert "ρ = " in svg  # text kept as text
    png = (tmp_path / ds.name / "maps.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- the command line, real models
@pytest.mark.slow
@pytest.mark.torch
def test_cli_run_save_maps_then_plot_maps_with_tiny_random_cnns(tmp_path, capsys):
    """Two random-weight demo CNNs (exported model folders) on generated ClickMe shards: `run
    --save-maps`, then `plot-maps` from the store and recomputed: the same picture, ρ = the records'."""
    import torch

    from alignbench.cli import main
    from benchmark.datasets.synthetic import write_clickme_shards
    from model_zoo import model_folder
    from model_zoo.builders.demo_cnn import demo_cnn, source_id

    write_clickme_shards(tmp_path / "synthetic-val", 8, n_shards=2, seed=1)
    folders = []
    for i in range(2):
        torch.manual_seed(i)
        folders.append(str(model_folder.write(
            tmp_path / f"tiny-{i}", demo_cnn(4), id=f"tiny-{i}", framework="torch", family="cnn",
            architecture={"source": "demo_cnn", "source_id": source_id(4)},
            preprocess={"input_size": 112, "interpolation": "bilinear", "mean": (0.485, 0.456, 0.406),
                        "std": (0.229, 0.224, 0.225)})))
    results = tmp_path / "results"
    common = ["--dataset", str(tmp_path / "synthetic-val"), "--results", str(results), "--device", "cpu"]
    assert main(["run", *common, "--model", *folders, "--batch-size", "4", "--no-progress", "--save-maps"]) == 0
    assert (results / "synthetic-val" / "tiny-0.maps.npz").is_file()
    assert (results / "synthetic-val" / gallery.REFERENCE_FILE).is_file()
    capsys.readouterr()
    pngs = {}
    for source in ("store", "recompute"):
        out = tmp_path / f"fig-{source}"
        assert main(["plot-maps", *common, "--model", *folders, "--most", "2", "--least", "2",
                     "--maps-from", source, "--output", str(out)]) == 0
        printed = capsys.readouterr().out
        assert "note:" not in printed  # every ρ equals the record's
        assert all((out.with_suffix(f".{fmt}")).stat().st_size > 1000 for fmt in ("png", "svg", "pdf"))
        pngs[source] = out.with_suffix(".png").read_bytes()
        svg = out.with_suffix(".svg").read_text()
        scores = records.read_scores(results / "synthetic-val" / "tiny-0.scores.csv")
        best = int(np.nanargmax(scores["spearman"]))
        assert format_rho(scores["spearman"][best]) in svg and "SYNTHETIC" in svg
    assert pngs["store"] == pngs["recompute"]
    assert main(["plot-maps", *common, "--model", folders[0], "--image-id", "nope:1", "--maps-from", "store"]) == 2
    assert "holds no image nope:1" in capsys.readouterr().err
