"""The catalog holds the paper's models, and every entry builds and explains offline.

* Counts are computed from ``shared/reference/models.csv`` and ``models_notes.md`` (never typed here):
  ``list_models(paper=True)`` must hold exactly the reference's paper rows, family by family.
* Every registry entry is built with ``weights="random"`` (nothing is downloaded) and must return
  finite, not-all-zero (N, 224, 224) saliency maps and (N, 1000) logits on one image. The test is
  parametrised over the registry with ``torch``/``tf`` markers, and ``slow`` on the heaviest graphs,
  so CI can shard it (``-m "torch and not slow"``...); CI runs them all.
"""
from __future__ import annotations

import csv
import gc
import os
import re
from pathlib import Path

import numpy as np
import pytest

from model_zoo import get_spec, list_models, load
from model_zoo.catalog import FAMILIES, FRAMEWORK_CHANGED, PAPER_FAMILY_COUNTS, PAPER_LEVELS

ROOT = Path(__file__).resolve().parents[1]


PINNED = ROOT / "tests" / "reference"
SHARED = ROOT.parent / "shared" / "reference"


def reference_dir() -> Path:
    """``$ALIGNBENCH_REFERENCE_DIR``, else ``shared/reference`` beside the checkout, else the pinned copy
    in ``tests/reference`` (a checkout without the shared folder, e.g. CI)."""
    candidates = [Path(os.environ["ALIGNBENCH_REFERENCE_DIR"])] if os.environ.get("ALIGNBENCH_REFERENCE_DIR") else []
    candidates += [SHARED, PINNED]
    for c in candidates:
        if (c / "models.csv").is_file():
            return c
    raise AssertionError(f"shared/reference/models.csv not found in {[str(c) for c in candidates]}; "
                         "set ALIGNBENCH_REFERENCE_DIR")


def test_pinned_reference_copies_match_the_shared_folder():
    if not (SHARED / "models.csv").is_file():
        pytest.skip("no shared/reference beside this checkout: only the pinned copy exists to compare")
    for name in ("models.csv", "models_notes.md"):
        assert (PINNED / name).read_bytes() == (SHARED / name).read_bytes(), f"tests/reference/{name} is stale"


@pytest.fixture(scope="module")
def reference_rows() -> list[dict[str, str]]:
    with open(reference_dir() / "models.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def notes_counts() -> dict[str, int]:
    """Row counts of the 'Counts reached' table in models_notes.md: family -> rows, plus 'total'
    (paper models) and 'harmonized_in_paper'."""
    text = (reference_dir() / "models_notes.md").read_text(encoding="utf-8")
    out: dict[str, int] = {}
    for line in text.splitlines():
        cells = [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"\d+", cells[1]):
            continue
        if cells[0] in FAMILIES:
            out[cells[0]] = int(cells[1])
        elif cells[0].startswith("paper models total"):
            out["total"] = int(cells[1])
        elif cells[0].startswith("harmonized"):
            out["harmonized_rows"], out["harmonized_in_paper"] = int(cells[1]), int(cells[2])
    return out


def test_paper_models_match_the_reference(reference_rows, notes_counts):
    paper_ref = [r["id"] for r in reference_rows if r["in_paper"] in PAPER_LEVELS and r["family"] != "harmonized"]
    paper = [s.id for s in list_models(paper=True)]
    assert paper == paper_ref  # same models, same order
    assert len(paper) == notes_counts["total"]
    assert sum(notes_counts[f] for f in PAPER_FAMILY_COUNTS) == notes_counts["total"]
    for family, n in PAPER_FAMILY_COUNTS.items():
        assert notes_counts[family] == n, family  # the notes' table agrees with the paper's text
        assert len(list_models(paper=True, family=family)) == n, family


def test_harmonized_models_match_the_reference(reference_rows, notes_counts):
    harmonized_ref = [r["id"] for r in reference_rows if r["family"] == "harmonized"]
    assert [s.id for s in list_models(harmonized=True)] == harmonized_ref
    assert len(harmonized_ref) == notes_counts["harmonized_rows"]
    assert len(list_models(harmonized=True, in_paper="yes")) == notes_counts["harmonized_in_paper"]


def test_catalog_keeps_every_reference_row_and_column(reference_rows):
    for row in reference_rows:
        spec = get_spec(row["id"])
        reference_fw, catalog_fw = FRAMEWORK_CHANGED.get(row["id"], (row["framework"], row["framework"]))
        assert row["framework"] == reference_fw, f"{row['id']}: FRAMEWORK_CHANGED no longer matches the reference"
        assert (spec.family, spec.framework, spec.source, spec.in_paper) == (
            row["family"], catalog_fw, row["source"], row["in_paper"]), row["id"]
        assert spec.top1 == (float(row["top1"]) if row["top1"] else None), row["id"]
        assert spec.input_size == int(row["input_size"]), row["id"]


# ---------------------------------------------------------------------- every entry builds and explains
# the heaviest graphs at N=1 (tens of GFLOPs each): still run in CI, but separable with -m "not slow"
HEAVY = {
    "clip_vit_l14_zeroshot", "simclr_resnet50x4", "timm_vit_large_patch16_224", "vit_b16_orig_in21k_384",
    "timm_resnetv2_101x1_bitm", "timm_resnetv2_50x1_bitm", "timm_swsl_resnext101_32x16d",
    "keras_inceptionresnetv2", "keras_efficientnetv2b3", "timm_inception_resnet_v2", "timm_dpn107",
}


def _params():
    out = []
    for spec in list_models():
        marks = [pytest.mark.torch if spec.framework == "torch" else pytest.mark.tf]
        if spec.id in HEAVY:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(spec.id, marks=marks, id=spec.id))
    return out


@pytest.fixture
def _free_after():
    yield
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()  # drop the graph-mode state of the last Keras model
    gc.collect()


IMAGES = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)


@pytest.mark.parametrize("model_id", _params())
def test_every_entry_builds_offline_and_explains(model_id, monkeypatch, _free_after):
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")  # random weights must need no download at all
    adapter = load(model_id, weights="random")
    assert adapter.weights_sha256 is None  # nothing was read from a weights file
    logits, maps = adapter.predict_and_saliency(IMAGES, np.array([7]))
    assert logits.shape == (1, 1000) and logits.dtype == np.float32
    assert maps.shape == (1, 224, 224) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and np.isfinite(logits).all()
    assert (maps >= 0).all() and maps.max() > 0, "all-zero saliency map"
    assert np.ptp(logits) > 0, "constant logits"
