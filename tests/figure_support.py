"""Fixture records of every task and the mechanical checks of a figure (labels, artists, legend,
limits, SYNTHETIC mark, embedded fonts), shared by the figure tests."""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any, Iterable

from benchmark import records
from benchmark.figures import SYNTHETIC_GID
from benchmark.scores import score_fields

MAPS_CEILING = 0.6575
# close pairs on purpose: the labels of ConvNeXt-T / ConvNeXt-B and BagNet-33 / Harmonized VGG16
# overprinted before labels were placed (issue 18)
MAPS_MODELS = [  # (id, family, published top-1 %, alignment as a fraction of the ceiling, harmonized, base)
    ("vgg16", "cnn", 71.6, 0.354, False, None),
    ("vgg16_harmonized", "harmonized", 69.3, 0.615, True, "vgg16"),
    ("bagnet33", "cnn", 68.9, 0.60, False, None),
    ("resnet50", "cnn", 76.1, 0.333, False, None),
    ("resnet50_harmonized", "harmonized", 77.2, 0.45, True, "resnet50"),
    ("convnext_tiny", "cnn_extra_data", 82.1, 0.15, False, None),
    ("convnext_base", "cnn_extra_data", 82.4, 0.148, False, None),
    ("vit_b16", "transformer", 81.1, 0.30, False, None),
    ("swin_b", "transformer", 83.4, 0.29, False, None),
    ("clip_rn50", "self_supervised", 59.8, 0.054, False, None),
    ("resnet50_l2_eps1", "robust", 70.4, 0.324, False, None),
    ("resnet50_l2_eps3", "robust", 62.8, 0.291, False, None),
]
PANELS = ("monkey1-PL", "monkey1-ML", "monkey2-ML")


def _write(folder: Path, name: str, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(record))
    records.read_record(folder / f"{name}.json")  # the fixture is a valid record


def _base(task: str, dataset: str, model: str, family: str | None, synthetic: bool, weights: str) -> dict[str, Any]:
    return {"schema": records.SCHEMA, "kind": "model", "task": task, "dataset": dataset,
            "dataset_fingerprint": "sha256:fixture", "dataset_synthetic": synthetic, "model": model,
            "display_name": model, "family": family, "status": "ok", "weights": weights, "provenance": {}}


def write_maps(results: Path, dataset: str = "clickme-val", *, synthetic: bool = False, random: bool = False) -> None:
    """The MAPS_MODELS records (``random``: as random-weight controls, with a measured accuracy only)
    and the center-bias baseline."""
    folder = results / dataset
    for i, (model, family, top1, frac, harmonized, base) in enumerate(MAPS_MODELS):
        rho = frac * MAPS_CEILING
        name = f"{model}+random" if random else model
        rec = {**_base("maps", dataset, name, family, synthetic, "random" if random else "pretrained"),
               "harmonized": harmonized, "base_model": base, "n_images": 50, "spearman_mean": rho, "dice_mean": 0.2,
               "iou_mean": 0.1, "top1_published": None if random else top1,
               "top1_measured": (1 + i % 4) / 1000 if random else top1 / 100 - 0.05,
               **score_fields(rho, score_name="spearman", n=50, error=0.01, ceiling=MAPS_CEILING)}
        _write(folder, name, rec)
    bias = 0.18 * MAPS_CEILING
    _write(folder, "_baseline-center-bias", {
        "schema": records.SCHEMA, "kind": "baseline", "task": "maps", "dataset": dataset, "model": "center-bias",
        "dataset_synthetic": synthetic, **score_fields(bias, score_name="spearman", n=50, error=0.01,
                                                        ceiling=MAPS_CEILING)})


def write_psychophysics(results: Path, dataset: str = "psychophysics", *, synthetic: bool = True) -> None:
    """Six models, four of them on one point (their labels stacked before), and the humans' baseline."""
    folder = results / dataset
    levels = [1.0, 1.58, 2.51, 3.98, 6.31, 10.0, 15.8, 25.1, 39.8, 63.1]
    human = [0.5, 0.52, 0.55, 0.6, 0.66, 0.72, 0.8, 0.86, 0.9, 0.93]
    models = [("resnet50", "cnn", 76.1, 2.1), ("resnet50_v2", "cnn", 76.1, 2.1), ("resnet50_a", "cnn", 76.1, 2.1),
              ("resnet50_b", "robust", 76.1, 2.1), ("vit_b16", "transformer", 81.1, 3.4),
              ("vgg16_harmonized", "harmonized", 69.3, 4.2)]
    for i, (model, family, top1, score) in enumerate(models):
        acc = [min(1.0, h + (i - 2) * 0.03 * k / 10) for k, h in enumerate(human)]
        rec = {**_base("psychophysics", dataset, model, family, synthetic, "pretrained"), "harmonized":
               family == "harmonized", "top1_published": top1, "top1_measured": 0.7, "levels_percent": levels,
               "model_accuracy": acc, "human_accuracy": human, "decision_rule": "argmax",
               **score_fields(score, score_name="Decision alignment: -log MSE", n=20, error=0.3)}
        _write(folder, model, rec)
    _write(folder, "_baseline-humans", {
        "schema": records.SCHEMA, "kind": "baseline", "task": "psychophysics", "dataset": dataset, "model": "humans",
        "dataset_synthetic": synthetic, "flat_model_alignment": 0.9,
        **score_fields(5.0, score_name="Decision alignment: -log MSE", n=20, error=0.4)})


def write_neural(results: Path, dataset: str = "it-arcaro2020", *, synthetic: bool = False,
                 random: bool = False) -> None:
    """Seven models on every panel (close points on monkey 2, where labels overprinted) and the ceiling."""
    folder = results / dataset
    models = [("vgg16", "cnn", 71.6, 0.45), ("vgg16_harmonized", "harmonized", 69.3, 0.50),
              ("resnet50", "cnn", 76.1, 0.52), ("resnet50_harmonized", "harmonized", 77.2, 0.56),
              ("vit_b16", "transformer", 81.1, 0.47), ("convnext_tiny", "cnn_extra_data", 82.1, 0.49),
              ("convnext_base", "cnn_extra_data", 82.4, 0.495)]
    for k, (model, family, top1, r) in enumerate(models):
        panels = {p: {"predictivity": r + 0.02 * j, "predictivity_ci95": [r + 0.02 * j - 0.03, r + 0.02 * j + 0.03]}
                  for j, p in enumerate(PANELS)}
        name = f"{model}+random" if random else model
        rec = {**_base("neural", dataset, name, family, synthetic, "random" if random else "pretrained"),
               "harmonized": family == "harmonized", "base_model": model.replace("_harmonized", "") if
               family == "harmonized" else None, "top1_published": None if random else top1, "panels": panels,
               **score_fields(r, score_name="IT predictivity", n=40, error=0.01, ceiling=0.7)}
        _write(folder, name, rec)
    _write(folder, "_ceiling", {
        "schema": records.SCHEMA, "kind": "ceiling", "task": "neural", "dataset": dataset, "model": "noise-ceiling",
        "value": 0.7, "source": "fixture", "dataset_synthetic": synthetic,
        "panels": {p: {"value": 0.65 + 0.03 * j, "method": "split-half"} for j, p in enumerate(PANELS)},
        **score_fields(0.7, score_name="noise ceiling (pearson r)", n=40)})


# ---------------------------------------------------------------------------- checks
def data_axes(fig: Any) -> list[Any]:
    return [ax for ax in fig.axes if ax.has_data()]


def label_texts(ax: Any) -> list[Any]:
    """The axes' point labels (texts placed in data coordinates; titles and tick labels are not)."""
    return [t for t in ax.texts if t.get_text() and t.get_transform() == ax.transData]


def overlapping_labels(fig: Any) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in data_axes(fig):
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in label_texts(ax)]
        out += [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]
    return out


def data_points(ax: Any) -> list[tuple[float, float]]:
    """Every marker position drawn in ``ax`` (lines with markers, error-bar centres)."""
    pts = []
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " "):
            continue
        pts += list(zip(line.get_xdata(), line.get_ydata()))
    return [(float(x), float(y)) for x, y in pts]


def outside_axes(fig: Any) -> list[str]:
    """Labels whose box leaves their axes, and data points outside the axis limits."""
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in data_axes(fig):
        frame = ax.get_window_extent(renderer)
        for t in label_texts(ax):
            b = t.get_window_extent(renderer)
            if b.x0 < frame.x0 - 0.5 or b.x1 > frame.x1 + 0.5 or b.y0 < frame.y0 - 0.5 or b.y1 > frame.y1 + 0.5:
                out.append(f"label {t.get_text()!r}")
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        out += [f"point {p}" for p in data_points(ax) if not (x0 <= p[0] <= x1 and y0 <= p[1] <= y1)]
    return out


def points_under_legend(fig: Any) -> list[tuple[float, float]]:
    renderer = fig.canvas.get_renderer()
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    assert legends, "the figure has no legend"
    boxes = [lg.get_window_extent(renderer) for lg in legends]
    out = []
    for ax in data_axes(fig):
        for x, y in data_points(ax):
            dx, dy = ax.transData.transform((x, y))
            out += [(x, y) for b in boxes if b.contains(dx, dy)]
    return out


def legend_texts(fig: Any) -> list[str]:
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg is not None]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


def synthetic_mark(fig: Any) -> str | None:
    texts = [t for t in fig.texts if t.get_gid() == SYNTHETIC_GID]
    return texts[0].get_text() if texts else None


def pdf_font_types(pdf: bytes) -> set[str]:
    """The /Subtype of every font the PDF defines, and whether each has an embedded font file
    ('FontFile2' for embedded TrueType); font dictionaries may sit in compressed object streams."""
    chunks = [pdf]
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        try:
            chunks.append(zlib.decompress(m.group(1)))
        except zlib.error:
            pass
    found = set()
    for chunk in chunks:
        found |= {s.decode() for s in re.findall(rb"/Subtype\s*/(Type3|TrueType|CIDFontType2|Type1|Type0)", chunk)}
        if b"/FontFile2" in chunk:
            found.add("FontFile2")
    return found


def all_problems(fig: Any) -> dict[str, Iterable[Any]]:
    return {"overlapping labels": overlapping_labels(fig), "outside the axes": outside_axes(fig),
            "points under the legend": points_under_legend(fig)}
