"""Every figure, rendered from fixture records and checked mechanically: no two labels overlap,
labels and points inside their axes, the legend clear of the data, axis limits legal, the SYNTHETIC
mark exactly when a drawn record is synthetic or random-weight, every colour explained, fonts
embedded in PDF and kept as text in SVG; and each refusal says its reason."""
from __future__ import annotations

import json
import math

import pytest

from benchmark import plots
from benchmark.figures import FAMILY_STYLE, save_figure
from benchmark.neural.plots import build_neural
from benchmark.psychophysics.plots import build_curves
from model_zoo.errors import InvalidInputError
from tests import figure_support as fs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    fs.write_maps(root)
    fs.write_maps(root, "clickme-synthetic", synthetic=True, random=True)
    fs.write_psychophysics(root)
    fs.write_neural(root)
    fs.write_neural(root, "it-random", random=True)
    return root


# (figure, builder, expected SYNTHETIC reasons (substrings; empty: no mark), families drawn)
FIGURES = {
    "pareto-clickme": (lambda r: plots.build_pareto(r, "clickme-val", with_published=True), [],
                       {f for _, f, *_ in fs.MAPS_MODELS}),
    "pareto-synthetic-random": (lambda r: plots.build_pareto(r, "clickme-synthetic"), ["generated", "random-weight"],
                                {f for _, f, *_ in fs.MAPS_MODELS}),
    "pareto-published-only": (lambda r: plots.build_pareto(r, "clickme-test", with_published=True), [],
                              set(plots.PUBLISHED_FAMILIES.values())),
    "pareto-psychophysics": (lambda r: plots.build_pareto(r, "psychophysics"), ["generated"],
                             {"cnn", "robust", "transformer", "harmonized"}),
    "curves": (lambda r: build_curves(r, "psychophysics", []), ["generated"], set()),
    "it-cortex": (lambda r: build_neural(r, "it-arcaro2020"), [], {"cnn", "harmonized", "transformer", "cnn_extra_data"}),
}


@pytest.fixture(scope="module")
def built(results):
    return {name: spec[0](results) for name, spec in FIGURES.items()}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_is_clean(built, name):
    fig, _ = built[name]
    assert fs.overlapping_labels(fig) == []
    assert fs.outside_axes(fig) == []
    assert fs.points_under_legend(fig) == []
    assert fs.data_points(fs.data_axes(fig)[0])  # something was drawn
    if name != "curves":  # labels were placed, not all dropped to pass the overlap check
        labels = [t.get_text() for ax in fs.data_axes(fig) for t in fs.label_texts(ax)]
        assert len(labels) >= 3 * len(fs.data_axes(fig)), labels
    if name == "pareto-clickme":
        assert {"vgg16_harmonized", "bagnet33"} <= set(labels)  # the close pair that overprinted


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_axis_limits_are_what_the_quantities_can_be(built, name):
    fig, _ = built[name]
    for ax in fs.data_axes(fig):
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        if name == "curves":
            assert 0 < x0 < x1 <= 100 and 0 <= y0 < y1 <= 1  # % revealed, accuracy
            continue
        assert 0 <= x0 < x1 <= 100  # accuracy, percent
        if name == "it-cortex":
            assert -1 <= y0 < y1 <= 1  # Pearson r
        elif name == "pareto-psychophysics":
            from benchmark.psychophysics.scores import MSE_FLOOR

            assert 0 <= y0 < y1 <= -math.log(MSE_FLOOR)
        else:  # rho in [-1, 1] as % of the ceiling; no negative alignment drawn, none being measured
            assert 0 <= y0 < y1 <= 100 / fs.MAPS_CEILING


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_synthetic_mark_exactly_when_a_drawn_record_is_synthetic(built, name):
    fig, _ = built[name]
    mark, expected = fs.synthetic_mark(fig), FIGURES[name][1]
    if expected:
        assert mark and mark.startswith("SYNTHETIC") and all(e in mark for e in expected), mark
    else:
        assert mark is None


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_legend_explains_every_colour_and_marker(built, name):
    fig, _ = built[name]
    texts = fs.legend_texts(fig)
    assert {FAMILY_STYLE[f][0] for f in FIGURES[name][2]} <= set(texts)
    joined = " ".join(texts)
    if name == "pareto-clickme":
        for entry in ("measured", "published", "harmonized", "center-bias", "Pareto front"):
            assert entry in joined
    if name == "pareto-synthetic-random":
        assert "random weights" in joined
    if name == "it-cortex":
        assert "noise ceiling" in joined and "published" in joined and "harmonized" in joined
    if name == "curves":
        assert "Humans" in texts and len(texts) == 1 + 6 + 1  # humans, six models, chance


def test_pareto_front_is_drawn_only_between_its_points(built):
    fig, _ = built["pareto-clickme"]
    ax = fs.data_axes(fig)[0]
    measured = [(top1, 100 * frac) for _, _, top1, frac, harmonized, _ in fs.MAPS_MODELS if not harmonized]
    front = plots.pareto_front([plots.Point(str(i), "", None, x, y, None, False) for i, (x, y) in enumerate(measured)])
    shaded = [c for c in ax.collections if c.get_paths() and c.get_alpha()]
    xs = [v[0] for c in shaded for p in c.get_paths() for v in p.vertices]
    assert shaded and min(xs) == pytest.approx(front[0].top1) and max(xs) == pytest.approx(front[-1].top1)


def test_vector_files_embed_their_fonts(results, tmp_path):
    fig, _ = plots.build_pareto(results, "clickme-val")
    pdf, svg = save_figure(fig, tmp_path / "pareto", ("pdf", "svg"))
    fonts = fs.pdf_font_types(pdf.read_bytes())
    assert "FontFile2" in fonts and "Type3" not in fonts  # TrueType (Type 42) embedded, no Type 3 outlines
    assert "<text" in svg.read_text() and "clickme-val: accuracy vs alignment" in svg.read_text()


def test_random_weight_it_records_are_refused_with_the_reason(results):
    with pytest.raises(InvalidInputError, match="no model has a published ImageNet top-1.*weights: random.*"
                                                "alignbench run --dataset it-random --model"):
        build_neural(results, "it-random")


def test_with_published_where_none_were_published_says_so(results):
    _, notes = plots.build_pareto(results, "psychophysics", with_published=True)
    assert any("no published points for dataset 'psychophysics'" in n for n in notes)
    with pytest.raises(InvalidInputError, match="no folder .*--with-published: the papers published no points"):
        plots.build_pareto(results, "clicktionary", with_published=True)


def test_failed_records_are_refused_with_the_reason(tmp_path):
    fs.write_maps(tmp_path, "toy")
    for path in (tmp_path / "toy").glob("[!_]*.json"):
        rec = json.loads(path.read_text())
        rec.update(status="failed", failure="CUDA out of memory")
        path.write_text(json.dumps(rec))
    with pytest.raises(InvalidInputError, match=f"all {len(fs.MAPS_MODELS)} records .* are failures"):
        plots.build_pareto(tmp_path, "toy")
