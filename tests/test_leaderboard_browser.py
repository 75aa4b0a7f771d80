"""The leaderboard site in a real browser: headless Chromium (Debian's ``chromium``) opens
``index.html?test=sort`` from ``file://``; the page's test hook sorts and filters the table and lists
the plot's circles into ``#test-output``, and ``--dump-dom`` hands the resulting DOM back.

Chromium is required: ``.ci/run`` installs it where it is missing, so a missing browser FAILS here
(it is never skipped)."""
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
from tests.leaderboard_support import site_results

pytestmark = pytest.mark.browser


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("headless Chromium not found (looked for $CHROMIUM, chromium, /usr/bin/chromium): install it with "
                "`apt-get install -y chromium` (.ci/run does this in CI)")


def dump_dom(url: str, tmp_path: Path) -> str:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-extensions", "--no-first-run", "--disable-dev-shm-usage", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "</html>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    return build(site_results(root), root / "site")


@pytest.fixture(scope="module")
def observed(site, tmp_path_factory) -> tuple[dict, str]:
    url = site.index.resolve().as_uri() + "?test=sort&filter=tiny"
    dom = dump_dom(url, tmp_path_factory.mktemp("chromium"))
    match = re.search(r'<pre id="test-output"[^>]*>(.*?)</pre>', dom, re.S)
    assert match and match.group(1).strip(), "the page's test hook did not run (JavaScript failed or was blocked)"
    return json.loads(unescape(match.group(1))), dom


def _numbers(values):
    return [float(v) for v in values if v not in ("", None)]


def test_the_table_sorts_in_the_browser(observed, site):
    result, _ = observed
    steps = {s["action"]: s for s in result["steps"]}
    expected = sorted((e.alignment for e in site.entries if e.alignment is not None), reverse=True)
    desc = _numbers(steps["sort alignment desc"]["alignment"])
    assert desc == pytest.approx(expected)
    asc = _numbers(steps["sort alignment asc"]["alignment"])
    assert asc == pytest.approx(sorted(expected))
    # a click on the Top-1 header sorts by top-1, highest first
    top1 = _numbers(steps["click top1 header"]["top1"])
    assert top1 == sorted(top1, reverse=True) and len(top1) == sum(e.top1 is not None for e in site.entries)
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
    assert all(c["bbox_w"] and c["bbox_w"] > 0 for c in circles if c["kind"] == "measured")
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
