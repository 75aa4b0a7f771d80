"""The model pages' gallery: the same images for every model, human map beside model map, inline PNGs
built from submitted (or saved) maps, checked like every bundle file, escaped like every text."""
from __future__ import annotations

import base64
import io
import re
import shutil
from html import unescape

import numpy as np
import pytest

from benchmark import gallery, maps_store, records
from leaderboard.gallery import map_rgb
from leaderboard.site import build
from leaderboard.validate import validate_bundles
from tests.leaderboard_support import SITE_PINS, site_results


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    results = site_results(root)
    return root, results, build(results, root / "site", pins=root / SITE_PINS)


def _figures(page: str) -> list[dict]:
    out = []
    for m in re.finditer(r'<figure class="gal" data-image-id="([^"]*)">(.*?)</figure>', page, re.S):
        imgs = re.findall(r'<img class="(\w+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)">', m.group(2))
        rho = re.search(r'<span class="rho">([^<]*)</span>', m.group(2)).group(1)
        out.append({"id": unescape(m.group(1)), "imgs": {c: (b, unescape(a)) for c, b, a in imgs}, "rho": unescape(rho)})
    return out


def _png(b64: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


def test_every_model_page_shows_the_same_gallery_images_with_its_own_rho(site):
    root, results, built = site
    scored = records.read_scores(results / "clickme-val" / "good-model.scores.csv")
    expected = gallery.gallery_ids("clickme-val", [str(i) for i in scored["image_id"]])
    assert len(expected) == gallery.GALLERY_SIZE
    for model, scores in (("good-model", results / "clickme-val" / "good-model.scores.csv"),
                          ("tiny-net", results / "submissions" / "tiny-net" / "clickme-val" / "tiny-net.scores.csv")):
        page = (root / "site" / "models" / f"{model}.html").read_text()
        figures = _figures(page)
        assert [f["id"] for f in figures] == expected, model
        table = records.read_scores(scores)
        rho = {str(i): r for i, r in zip(table["image_id"], table["spearman"])}
        for f in figures:
            assert set(f["imgs"]) == {"image", "human", "model"}
            assert f["rho"] == f"ρ = {rho[f['id']]:.3f}"
            for b64, _ in f["imgs"].values():
                assert _png(b64).shape == (gallery.GALLERY_PX, gallery.GALLERY_PX, 3)
    # pages of models without gallery maps (no --save-maps store) have no gallery
    assert "Gallery" not in (root / "site" / "models" / "anti-model.html").read_text()


def test_the_pictures_are_the_saved_and_submitted_maps(site):
    root, results, _ = site
    page = (root / "site" / "models" / "good-model.html").read_text()
    first = _figures(page)[0]
    with maps_store.open_store(results, "clickme-val", "good-model") as store:
        raw = gallery.shrink(store.get([first["id"]]))[0]
    np.testing.assert_array_equal(_png(first["imgs"]["model"][0]), map_rgb(raw))
    ref = np.load(results / "clickme-val" / gallery.REFERENCE_FILE)
    k = list(ref["image_id"]).index(first["id"])
    np.testing.assert_array_equal(_png(first["imgs"]["image"][0]), ref["images"][k])
    np.testing.assert_array_equal(_png(first["imgs"]["human"][0]), map_rgb(ref["human"][k].astype(np.float32)))
    sub = np.load(results / "submissions" / "tiny-net" / "clickme-val" / "tiny-net.gallery.npz")
    tiny = _figures((root / "site" / "models" / "tiny-net.html").read_text())
    np.testing.assert_array_equal(_png(tiny[0]["imgs"]["model"][0]), map_rgb(sub["maps"][0].astype(np.float32)))
    # the submitted name is escaped in the alt text, like every text of a submission
    assert tiny[0]["imgs"]["model"][1].startswith("Tiny <b>Net</b> map of")
    assert "Tiny &lt;b&gt;Net&lt;/b&gt; map of" in (root / "site" / "models" / "tiny-net.html").read_text()


def test_a_dataset_without_the_maintainers_reference_shows_no_human_maps(site):
    root, _, _ = site
    page = (root / "site" / "models" / "tiny-synth.html").read_text()
    figures = _figures(page)
    assert figures and all(set(f["imgs"]) == {"model"} for f in figures)
    assert "no human map" in page and gallery.REFERENCE_FILE in page


def _tampered(site, tmp_path, change):
    root, results, _ = site
    target = tmp_path / "results"
    shutil.copytree(results, target)
    change(target / "submissions" / "tiny-net" / "clickme-val" / "tiny-net.gallery.npz")
    report = validate_bundles([target / "submissions" / "tiny-net"], results_dir=target, use_local_data=False,
                              pins=root / SITE_PINS)
    return [f"{p.field}: {p.message}" for p in report.problems if p.bundle == "tiny-net"]


def _rewrite(**changes):
    def change(path):
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays.update(changes)
        arrays = {k: v for k, v in arrays.items() if v is not None}
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        path.write_bytes(buf.getvalue())
    return change


def test_validation_accepts_the_submitted_gallery(site, tmp_path):
    assert _tampered(site, tmp_path, lambda path: None) == []


@pytest.mark.parametrize("change, words", [
    (_rewrite(image_id=np.asarray(["fake-0:000000"] * 6)), "not the dataset's gallery images"),
    (_rewrite(maps=np.zeros((6, 224, 224), np.float16)), "maps is float16 (6, 224, 224)"),
    (_rewrite(maps=np.full((6, 112, 112), np.nan, np.float32)), "NaN"),
    (_rewrite(maps=np.zeros((6, 112, 112), object)), "not a readable .npz"),
    (_rewrite(extra=np.zeros(3)), "members"),
    (lambda path: path.write_bytes(b"\0" * (600 * 1024)), "larger than the limit"),
    (lambda path: path.write_bytes(b"not a zip"), "not a readable .npz"),
])
def test_validation_names_a_bad_gallery_file(site, tmp_path, change, words):
    problems = _tampered(site, tmp_path, change)
    assert any("tiny-net.gallery.npz" in p and words in p for p in problems), problems
