"""``alignbench leaderboard build``: the static site's table, plot, model pages and exports."""
from __future__ import annotations

import csv
import io
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from alignbench.cli import main
from benchmark import published
from leaderboard.site import build, build_site
from model_zoo.errors import InvalidInputError
from tests.leaderboard_support import SITE_PINS, XSS_DESCRIPTION, XSS_SUBMITTER, site_results


# the paper's points with a ClickMe value, as shipped in benchmark/published/clickme.csv
N_PUBLISHED = sum(1 for row in csv.DictReader(published.open_text(published.CLICKME))
                  if row["clickme_alignment"].strip())


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return site_results(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def pins(results) -> Path:
    return results.parent / SITE_PINS


@pytest.fixture(scope="module")
def site(results, pins, tmp_path_factory):
    return build(results, tmp_path_factory.mktemp("site-out") / "site", pins=pins)


def _main(entries, dataset="clickme-val"):
    return [e for e in entries if e.section == "main" and e.dataset == dataset]


class _Rows(HTMLParser):
    """The <tr> elements of the #board table body: their attributes and cell texts."""

    def __init__(self):
        super().__init__()
        self.rows, self.in_body, self.cell = [], False, None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.in_body = True
        elif tag == "tr" and self.in_body:
            self.rows.append({"attrs": dict(attrs), "cells": []})
        elif tag == "td" and self.in_body:
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "tbody":
            self.in_body = False
        elif tag == "td" and self.cell is not None:
            self.rows[-1]["cells"].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def _rows(index: Path, section: str = "main") -> list[dict]:
    """The rows of one section's table."""
    parser = _Rows()
    text = index.read_text()
    parser.feed(text.split(f'id="section-{section}"')[1].split("</section>")[0])
    return parser.rows


def test_build_site_returns_the_index_and_writes_every_part(results, pins, tmp_path):
    index = build_site(results, tmp_path / "out", pins=pins)
    assert index == tmp_path / "out" / "index.html"
    for name in ("leaderboard.csv", "leaderboard.md", "models/good-model.html", "models/tiny-net.html",
                 "models/tiny-net.clickme-val.scores.csv"):
        assert (tmp_path / "out" / name).is_file(), name


def test_the_table_has_every_column_ranked_by_alignment(site):
    html = site.index.read_text()
    for header in ("Rank", "Model", "Family", "Top-1 (%)", "Alignment (%)", "SD (%)", "Dice", "IoU", "Weights", "Data",
                   "Submitted by", "Date", "Measured / published"):
        assert f">{header}</button></th>" in html, header
    rows = [r for r in _rows(site.index) if r["attrs"]["data-dataset"] == "clickme-val"]
    measured = [r for r in rows if r["attrs"]["data-kind"] == "measured"]
    published = [r for r in rows if r["attrs"]["data-kind"] == "published"]
    # the random-weight control keeps its catalog display name ("ANTI-MODEL"): its marks tell it apart
    assert sorted(r["attrs"]["data-model"] + "|" + r["attrs"]["data-flags"] for r in measured) == \
        ["ANTI-MODEL|", "ANTI-MODEL|random", "GOOD-MODEL|", "Tiny <b>Net</b>|"]
    assert len(published) == N_PUBLISHED > 10  # benchmark/published/clickme.csv
    ranked = [r for r in rows if r["cells"][0] not in ("", "control")]
    ranks = [int(r["cells"][0]) for r in ranked]
    aligns = [float(r["attrs"]["data-alignment"]) for r in ranked]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert aligns == sorted(aligns, reverse=True)
    tiny = next(r for r in measured if r["attrs"]["data-model"] == "Tiny <b>Net</b>")
    assert tiny["cells"][2] == "transformer" and tiny["cells"][3] == "66.5*"  # a claimed top-1 is marked
    assert tiny["cells"][8] == "own file" and tiny["cells"][9] == "pinned"
    assert tiny["cells"][12] == "measured" and re.fullmatch(r"\d{4}-\d\d-\d\d", tiny["cells"][11])
    assert tiny["cells"][10] == XSS_SUBMITTER + " (Test Lab)"  # shown as text
    good = next(r for r in measured if r["attrs"]["data-model"] == "GOOD-MODEL")
    assert good["cells"][10] == "alignbench maintainers" and good["cells"][3] == "81.0" and good["cells"][8] == "pretrained"
    control = next(r for r in measured if r["attrs"]["data-flags"] == "random")
    assert control["cells"][0] == "control" and control["cells"][8] == "RANDOM (control)"
    assert "random weights" in control["cells"][1]


def test_records_of_another_explainer_are_left_out_with_a_note(site):
    # good-model+paper-release would top the board (alignment 0.99) if it were ranked with saliency's maps
    assert not [e for e in site.entries if e.model_id == "good-model+paper-release"]
    assert any("records of other explainers than saliency" in n and "paper-release (1)" in n for n in site.notes)
    assert "good-model+paper-release" not in (site.index.parent / "leaderboard.csv").read_text()


def test_rows_on_generated_or_unpinned_data_are_listed_apart(site):
    by_id = {(e.model_id, e.dataset): e for e in site.entries}
    synth, other = by_id[("tiny-synth", "synthetic-fake")], by_id[("tiny-other", "other-fake")]
    assert synth.section == "synthetic" and synth.synthetic and synth.verified and synth.rank is not None
    assert by_id[("good-model", "synthetic-fake")].section == "synthetic"
    assert other.section == "unverified" and not other.verified and "not in known_datasets.json" in other.note
    assert by_id[("good-model", "other-fake")].section == "main" and by_id[("good-model", "other-fake")].data == "not pinned"
    assert [r["attrs"]["data-model"] for r in _rows(site.index, "unverified")] == ["Tiny Other"]
    synthetic_rows = _rows(site.index, "synthetic")
    assert {r["attrs"]["data-model"] for r in synthetic_rows} == {"GOOD-MODEL", "Tiny Synth"}
    assert all(r["cells"][9].startswith("SYNTHETIC") and "SYNTHETIC" in r["cells"][1] for r in synthetic_rows)
    # the dataset shown first is human data, never the synthetic one
    html = site.index.read_text()
    assert re.search(r'<option value="clickme-val" selected>', html)
    assert "synthetic-fake (SYNTHETIC)</option>" in html


def test_invalid_bundles_are_left_out_and_named(site):
    models = {e.model_id for e in site.entries}
    assert "preview-net" not in models and "tiny-net" in models
    assert any("preview-net left out" in n and "preview" in n for n in site.notes)
    assert "preview-net left out" in site.index.read_text()


def test_the_plot_is_inline_svg_with_one_circle_per_plottable_row(site):
    html = site.index.read_text()
    svg = re.search(r"<svg class=\"plot\".*?</svg>", html, re.S).group(0)
    assert 'data-dataset="clickme-val"' in svg
    circles = re.findall(r"<circle class=\"pt (measured|published)[a-z ]*\" cx=\"([\d.]+)\" cy=\"([\d.]+)\"", svg)
    plottable = [e for e in site.entries if e.top1 is not None and e.alignment is not None and e.dataset == "clickme-val"]
    assert len(circles) == len(plottable) == 4 + N_PUBLISHED
    xs = {e.model_id: e.top1 for e in plottable}
    # higher top-1 is further right: the good model (81) is right of the anti model (58)
    cx = dict(re.findall(r'cx="([\d.]+)"[^>]*data-model="([^"]+)"', svg))
    by_model = {m: float(x) for x, m in cx.items()}
    assert by_model["good-model"] > by_model["anti-model"] and xs["good-model"] > xs["anti-model"]
    assert 'fill="none"' in svg  # published points are hollow
    control = re.search(r'<circle class="pt measured random"[^>]*>', svg).group(0)
    assert 'stroke-dasharray="2 2"' in control and "[random weights]" in control
    assert "random weights (control)" in svg  # in the legend
    synthetic = re.search(r'<svg class="plot"[^>]*data-dataset="synthetic-fake".*?</svg>', html, re.S).group(0)
    assert 'data-synthetic="true"' in synthetic and "SYNTHETIC DATA: synthetic-fake" in synthetic
    assert all("[SYNTHETIC data]" in c for c in re.findall(r"<circle class=\"pt [^>]*>", synthetic))


def test_the_site_works_offline(site):
    for page in [site.index, *site.index.parent.glob("models/*.html")]:
        text = unescape(page.read_text())
        assert "Content-Security-Policy" in text and "connect-src 'none'" in text
        assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"(https?:)?//", text), page
        assert "<script src" not in text and "@import" not in text
    assert "test=sort" not in site.index.read_text().split("<script>")[0]


def test_the_inline_script_is_pinned_by_its_hash(site):
    import base64
    import hashlib

    html = site.index.read_text()
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)  # raw text: no entities to decode
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in unescape(html)
    assert html.count("<script>") == 1


def test_submitted_html_is_escaped(site):
    html = site.index.read_text()
    page = (site.index.parent / "models" / "tiny-net.html").read_text()
    for text in (html, page):
        assert XSS_SUBMITTER not in text and "<b>Net</b>" not in text
    assert XSS_DESCRIPTION not in page and "&lt;script&gt;document.body.setAttribute" in page
    assert "javascript:alert" not in page.split("URL</dt>")[1].split("</dd>")[0].split(">", 1)[0]
    assert 'href="javascript' not in page


def test_each_model_page_shows_its_provenance(site, results):
    page = (site.index.parent / "models" / "tiny-net.html").read_text()
    for words in ("Submission", "Licence", "MIT", "Claimed top-1", "66.5", "timm validate.py on ImageNet val",
                  "Weights sha256", "Dataset fingerprint", "alignbench version", "Explainer", "Scores sha256",
                  "tiny-net.clickme-val.scores.csv"):
        assert words in page, words
    good = (site.index.parent / "models" / "good-model.html").read_text()
    assert "catalog model" in good and "1" * 64 in good
    # good-model is also scored on the synthetic data: its page says so, beside the human-data row
    assert "SYNTHETIC DATA: synthetic-fake" in good
    control = (site.index.parent / "models" / "anti-model+random.html").read_text()
    assert "RANDOM WEIGHTS" in control and "RANDOM (control) (random)" in control
    copied = (site.index.parent / "models" / "tiny-net.clickme-val.scores.csv").read_bytes()
    assert copied == (results / "submissions" / "tiny-net" / "clickme-val" / "tiny-net.scores.csv").read_bytes()


def test_csv_and_markdown_exports_match_the_table(site):
    rows = list(csv.DictReader(io.StringIO((site.index.parent / "leaderboard.csv").read_text())))
    assert len(rows) == len(site.entries) == 4 + N_PUBLISHED + 4
    assert rows[0]["rank"] == "1" and rows[0]["model_id"] == "good-model" and rows[0]["kind"] == "measured"
    tiny = next(r for r in rows if r["model_id"] == "tiny-net")
    assert tiny["submitted_by"].startswith("<img") and tiny["top1"] == "66.5" and tiny["origin"] == "submission"
    assert tiny["section"] == "main" and tiny["synthetic"] == "no" and tiny["verified"] == "yes"
    control = next(r for r in rows if r["model_id"] == "anti-model+random")
    assert control["random_weights"] == "yes" and control["rank"] == "" and "random weights" in control["note"]
    synth = next(r for r in rows if r["model_id"] == "tiny-synth")
    assert synth["synthetic"] == "yes" and synth["section"] == "synthetic" and synth["data"] == "SYNTHETIC"
    other = next(r for r in rows if r["model_id"] == "tiny-other")
    assert other["verified"] == "no" and other["section"] == "unverified" and "known_datasets.json" in other["note"]
    md = (site.index.parent / "leaderboard.md").read_text()
    assert md.count("\n| ") == len(rows) + 4  # a header per (section, dataset) table
    assert "### clickme-val" in md and "Tiny &lt;b&gt;Net&lt;/b&gt;" in md and "<img" not in md
    assert "## SYNTHETIC data" in md and "### synthetic-fake (SYNTHETIC data)" in md and "## Unverified submissions" in md
    assert "ANTI-MODEL \\[random weights\\]" in md and "Tiny Synth \\[SYNTHETIC data\\]" in md


def test_without_published_rows_and_for_chosen_datasets(results, pins, tmp_path):
    done = build(results, tmp_path / "s", with_published=False, datasets=["clickme-val"], pins=pins)
    assert {e.kind for e in done.entries} == {"measured"} and len(done.entries) == 4
    empty = build(results, tmp_path / "t", datasets=["clicktionary"], with_published=False, pins=pins)
    assert empty.entries == [] and "no model with both" in empty.index.read_text()


def test_rebuilding_replaces_old_pages_but_a_foreign_folder_is_refused(results, pins, tmp_path):
    out = tmp_path / "site"
    build(results, out, pins=pins)
    (out / "models" / "stale.html").write_text("old")
    build(results, out, with_published=False, pins=pins)
    assert not (out / "models" / "stale.html").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(InvalidInputError, match="not empty and was not built by alignbench"):
        build(results, foreign, pins=pins)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_the_cli_builds_and_prints_notes(results, pins, tmp_path, capsys):
    assert main(["leaderboard", "build", "--results", str(results), "--output", str(tmp_path / "s"),
                 "--pins", str(pins)]) == 0
    out = capsys.readouterr().out
    assert "site written" in out and "preview-net left out" in out
    assert (tmp_path / "s" / "index.html").is_file()
