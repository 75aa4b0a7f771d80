"""plot-pareto: front computation, files written, published points kept apart, bad records skipped."""
from __future__ import annotations

import json
import pytest

from benchmark import plots, records
from benchmark.scores import score_fields

def _rec(model, top1, alignment, family="cnn", harmonized=False, base=None, sd=0.01):
    return {"schema": records.SCHEMA, "kind": "model", "task": "maps", "dataset": "toy",
            "dataset_fingerprint": "sha256:x", "model": model, "display_name": model, "family": family,
            "harmonized": harmonized, "base_model": base, "status": "ok", "n_images": 10,
            "spearman_mean": alignment * 0.6, "dice_mean": 0.2, "iou_mean": 0.1, "top1_published": top1,
            "provenance": {}, **score_fields(alignment * 0.6, score_name="spearman", n=10, error=sd * 0.6, ceiling=0.6)}


def test_pareto_front_keeps_exactly_the_non_dominated_points():
    P = lambda m, x, y: plots.Point(m, m, "cnn", x, y, None, False)  # noqa: E731
    pts = [P("a", 70, 40), P("b", 75, 35), P("c", 72, 30), P("d", 80, 20), P("e", 79, 10), P("f", 80, 15)]
    assert [p.model for p in plots.pareto_front(pts)] == ["a", "b", "d"]


def test_plot_pareto_writes_all_formats_and_reports_skips(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    for r in (_rec("vgg", 71, 0.35), _rec("vit", 73, 0.29, "transformer"),
              _rec("vgg-h", 69, 0.61, "harmonized", True, base="vgg"), _rec("no-top1", None, 0.3)):
        (folder / f"{r['model']}.json").write_text(json.dumps(r))
    (folder / "junk.json").write_text("[]")
    written, notes = plots.plot_pareto(tmp_path, "toy")
    assert sorted(p.suffix for p in written) == [".pdf", ".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert written[0].read_bytes()[:4] == b"\x89PNG"
    assert any("no-top1" in n for n in notes) and any("junk.json" in n for n in notes)


def test_published_points_are_package_data_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no results/published/ here: the points ship with the package
    pts = plots.published_points("clickme-val")
    by = {p.model: p for p in pts}
    assert all(p.published for p in pts) and len(pts) == 26
    assert by["Harmonized ViT-B16"].alignment == pytest.approx(72.5) and by["Harmonized ViT-B16"].harmonized
    written, _ = plots.plot_pareto(tmp_path, "clickme-val", tmp_path / "fig.png", with_published=True)
    assert written == [tmp_path / "fig.png"]
    assert plots.published_points("psychophysics") == []


def test_nothing_to_plot_is_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="nothing to plot for dataset 'toy': no folder .*alignbench run"):
        plots.plot_pareto(tmp_path, "toy")


def test_random_weight_controls_are_plotted_on_measured_accuracy(tmp_path):
    folder = tmp_path / "clickme-val"
    folder.mkdir()
    for name, acc, align in (("a+random", 0.02, 0.2), ("b+random", 0.5, 0.4)):
        r = _rec(name, None, align)
        r["top1_measured"], r["dataset"] = acc, "clickme-val"
        (folder / f"{name}.json").write_text(json.dumps(r))
    points, notes, axis = plots.measured_points(tmp_path, "clickme-val")
    assert axis == "measured" and sorted(p.top1 for p in points) == [2.0, 50.0]
    _, notes, axis = plots.measured_points(tmp_path, "clickme-val", "published")
    assert axis == "published" and len([n for n in notes if "no published ImageNet top-1" in n]) == 2
    written, notes = plots.plot_pareto(tmp_path, "clickme-val", tmp_path / "f.png", with_published=True)
    assert written and any("published points not drawn" in n for n in notes)
