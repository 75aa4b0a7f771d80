"""The leaderboard site in a real browser: headless Chromium (Debian's ``chromium``) opens
``index.html?test=sort`` from ``file://``; the page's test hook sorts and filters the tables, lists
the sections' rows and badges and the plot's circles into ``#test-output``, and ``--dump-dom``
hands the resulting DOM back.

Without Chromium these tests are skipped with the reason in the summary (the README's test command
must pass on a fresh machine); ``.ci/run`` installs Chromium and sets ``ALIGNBENCH_REQUIRE_BROWSER=1``,
which turns a missing browser into a failure, so CI never passes them off as run."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from leaderboard.site import build
from tests.leaderboard_support import SITE_PINS, site_results

pytestmark = pytest.mark.browser


def chromium() -> str:
    """The Chromium binary: ``$CHROMIUM`` when set (a path; ``none`` acts as if none were installed),
    else ``chromium``/``chromium-browser`` on PATH or ``/usr/bin/chromium``."""
    wanted = os.environ.get("CHROMIUM")
    candidates = [wanted] if wanted else [shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and candidate != "none" and Path(candidate).is_file():
            return candidate
    message = ("BROWSER TESTS NOT RUN: headless Chromium not found (looked for $CHROMIUM, chromium, /usr/bin/chromium); "
               "install it with `apt-get install -y chromium`")
    if os.environ.get("ALIGNBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (ALIGNBENCH_REQUIRE_BROWSER=1: .ci/run installs it)")
    pytest.skip(message)


def dump_dom(url: str, tmp_path: Path) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-extensions", "--no-first-run", "--disable-dev-shm-usage", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    chromium()  # skip (or fail in CI) before building anything
    root = tmp_path_factory.mktemp("browser")
    return build(site_results(root), root / "site", pins=root / SITE_PINS)


def _observe(site, query: str, tmp_path: Path) -> tuple[dict, str]:
    dom = dump_dom(site.index.resolve().as_uri() + query, tmp_path)
    match = re.search(r'<pre id="test-output"[^>]*>(.*?)</pre>', dom, re.S)
    assert match and match.group(1).strip(), "the page's test hook did not run (JavaScript failed or was blocked)"
    return json.loads(unescape(match.group(1))), dom


@pytest.fixture(scope="module")
def observed(site, tmp_path_factory) -> tuple[dict, str]:
    """The page as it opens (the first dataset, human data), sorted and filtered by the test hook."""
    return _observe(site, "?test=sort&filter=tiny", tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="module")
def everything(site, tmp_path_factory) -> dict:
    """The page with the dataset filter on "all datasets": every section shows."""
    return _observe(site, "?test=sort&dataset=", tmp_path_factory.mktemp("chromium-all"))[0]


def _main(site):
    return [e for e in site.entries if e.section == "main" and e.dataset == "clickme-val"]


def _numbers(values):
    return [float(v) for v in values if v not in ("", None)]


def test_the_table_sorts_in_the_browser(observed, site):
    result, _ = observed
    steps = {s["action"]: s for s in result["steps"]}
    expected = sorted((e.alignment for e in _main(site) if e.alignment is not None), reverse=True)
    desc = _numbers(steps["sort alignment desc"]["alignment"])
    assert desc == pytest.approx(expected)
    asc = _numbers(steps["sort alignment asc"]["alignment"])
    assert asc == pytest.approx(sorted(expected))
    # a click on the Top-1 header sorts by top-1, highest first
    top1 = _numbers(steps["click top1 header"]["top1"])
    assert top1 == sorted(top1, reverse=True) and len(top1) == sum(e.top1 is not None for e in _main(site))
    names = steps["sort model asc"]["model"]
    assert [n.lower() for n in names] == sorted(n.lower() for n in names)
    assert steps["sort alignment desc"]["model"][0] == "GOOD-MODEL"


def test_the_filter_hides_rows_and_their_points(observed):
    result, _ = observed
    step = next(s for s in result["steps"] if s["action"].startswith("filter"))
    assert step["model"] == ["Tiny <b>Net</b>"]
    assert step["circles_visible"] == ["tiny-net"]


def test_the_plot_renders_its_circles(observed, site):
    result, _ = observed
    circles = result["circles"]
    plottable = [e for e in site.entries if e.top1 is not None and e.alignment is not None]
    assert len(circles) == len(plottable) > 3
    assert all(0 < c["cx"] < 720 and 0 < c["cy"] < 440 and c["r"] > 0 for c in circles)
    # laid out by the browser: visible circles have a real bounding box
    assert all(c["bbox_w"] and c["bbox_w"] > 0 for c in circles if c["kind"] == "measured" and not c["hidden"])
    assert {c["dataset"] for c in circles if not c["hidden"]} == {"clickme-val"}  # the dataset filter
    by_model = {c["model"]: c for c in circles}
    assert by_model["good-model"]["cx"] > by_model["anti-model"]["cx"]  # 81% right of 58%
    assert by_model["good-model"]["cy"] < by_model["anti-model"]["cy"]  # more aligned is higher up


def test_submitted_script_is_inert_in_the_browser(observed):
    _, dom = observed
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-pwned" not in body
    assert "&lt;img src=x onerror=" in dom  # shown as text


def test_the_model_page_renders_without_running_submitted_code(site, tmp_path):
    page = site.index.parent / "models" / "tiny-net.html"
    dom = dump_dom(page.resolve().as_uri(), tmp_path)
    assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0)
    assert "&lt;script&gt;document.body.setAttribute" in dom


def test_only_the_leaderboard_shows_for_human_data_and_every_mark_is_rendered(observed, everything, site):
    """As the page opens (clickme-val) the synthetic and unverified sections have nothing to show; with
    all datasets each section lists its rows with their badges, and the plot labels carry the marks."""
    first, _ = observed
    assert first["sections"]["synthetic"]["hidden"] and first["sections"]["unverified"]["hidden"]
    assert not first["sections"]["main"]["hidden"]
    sections = everything["sections"]
    assert not sections["synthetic"]["hidden"] and not sections["unverified"]["hidden"]
    synthetic = sections["synthetic"]
    assert sorted(synthetic["models"]) == ["GOOD-MODEL", "Tiny Synth"]
    assert all(b == ["SYNTHETIC"] for b in synthetic["badges"]) and all(d == "SYNTHETIC" for d in synthetic["data"])
    unverified = sections["unverified"]
    assert unverified["models"] == ["Tiny Other"] and unverified["badges"] == [["unverified"]]
    main = sections["main"]
    control = main["flags"].index("random")
    assert main["badges"][control] == ["random weights"] and main["weights"][control] == "RANDOM (control)"
    assert main["rank"][control] == ""  # not ranked
    info = everything["plot_info"]
    assert "[random weights]" in info["anti-model+random@clickme-val"]
    assert "[SYNTHETIC data]" in info["tiny-synth@synthetic-fake"] and "[unverified]" in info["tiny-other@other-fake"]
    assert everything["synthetic_labels"] == ["SYNTHETIC DATA: synthetic-fake (not human data)"]


def test_model_pages_show_their_marks_in_the_browser(site, tmp_path):
    pages = site.index.parent / "models"
    synth = dump_dom((pages / "tiny-synth.html").resolve().as_uri(), tmp_path / "a")
    assert "SYNTHETIC DATA: synthetic-fake is generated data" in unescape(synth)
    control = dump_dom((pages / "anti-model+random.html").resolve().as_uri().replace("+", "%2B"), tmp_path / "b")
    assert "RANDOM WEIGHTS: random weights: an untrained control" in unescape(control)
    other = dump_dom((pages / "tiny-other.html").resolve().as_uri(), tmp_path / "c")
    assert "UNVERIFIED on other-fake: not in known_datasets.json" in unescape(other)


def _screenshot(url: str, out: Path, tmp_path: Path):
    import numpy as np
    from PIL import Image

    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-extensions", "--no-first-run", "--disable-dev-shm-usage", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile-shot'}", "--hide-scrollbars", "--window-size=1200,1000",
           f"--screenshot={out}", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-2000:]
    return np.asarray(Image.open(out).convert("RGB")).astype(int)


def _jet_pixels(rgb) -> int:
    """Pixels of the maps' colormap (its cyan and yellow): nothing else on a page has these colours."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return int((((r < 90) & (g > 190) & (b > 190)) | ((r > 190) & (g > 190) & (b < 90))).sum())


def test_the_gallery_pictures_render_under_the_pages_csp(site, tmp_path):
    """The inline PNGs are allowed by the model page's CSP (img-src data:) and drawn by the browser:
    the screenshot shows the maps' colours, which the same page without its gallery lacks."""
    page = site.index.parent / "models" / "tiny-net.html"
    dom = dump_dom(page.resolve().as_uri(), tmp_path)
    assert len(re.findall(r'<figure class="gal"', dom)) == 6
    assert "data-pwned" not in re.search(r"<body[^>]*>", dom).group(0)
    shown = _jet_pixels(_screenshot(page.resolve().as_uri(), tmp_path / "with.png", tmp_path))
    bare = page.with_name("tiny-net-bare.html")
    bare.write_text(re.sub(r'<div class="gallery".*?</div>', "", page.read_text(), flags=re.S))
    try:
        without = _jet_pixels(_screenshot(bare.resolve().as_uri(), tmp_path / "without.png", tmp_path))
    finally:
        bare.unlink()
    assert without == 0 and shown > 20 * 112  # at least a few of the 112-px maps were painted
