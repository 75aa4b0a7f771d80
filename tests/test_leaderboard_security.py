"""A submission is untrusted: each refusal the leaderboard promises is shown here.

* model files are loaded in safe formats only: a pickle with a payload is never executed;
* a plugin is built in the bubblewrap sandbox (a separate process under time and memory limits,
  never imported here; the red-team attacks on the sandbox are in ``test_leaderboard_redteam.py``),
  and refused where no sandbox can be set up unless explicitly trusted;
* nothing in a bundle can reach outside its folder (path traversal, symlinks);
* HTML built from submitted text is escaped.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

import pytest

from leaderboard.sandbox import Limits, SandboxError, SandboxUnavailable, build_plugin
from model_zoo.errors import InvalidInputError
from tests.leaderboard_support import require_sandbox


# ----------------------------------------------------------------------------------- pickles
class _Payload:
    """Unpickling this creates ``marker``: proof that pickled code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.torch
@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".bin"])
def test_a_pickle_with_a_payload_is_refused_and_never_executed(tmp_path, suffix):
    import torch

    from leaderboard.loading import ModelSource, SubmittedSpec, load_adapter

    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps({"state_dict": {"w": _Payload(marker)}}))
    else:
        torch.save({"state_dict": {"fc.weight": torch.zeros(2)}, "extra": _Payload(marker)}, path)
    assert not marker.exists()
    with pytest.raises(InvalidInputError, match="refused to load"):
        load_adapter(ModelSource("weights", name="test_resnet", path=path), SubmittedSpec("x", "x", None, ""),
                     device="cpu")
    assert not marker.exists()


def test_keras_files_other_than_dot_keras_are_refused(tmp_path):
    from leaderboard.loading import load_keras_file

    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n")
    with pytest.raises(InvalidInputError, match="only .keras model files"):
        load_keras_file(path)


@pytest.mark.tf
def test_a_keras_lambda_layer_is_refused_in_safe_mode(tmp_path):
    from model_zoo.frameworks import import_tensorflow

    import_tensorflow()
    import keras

    from leaderboard.loading import load_keras_file

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(InvalidInputError, match="refused to load"):
        load_keras_file(path)


# ----------------------------------------------------------------------------------- plugins
def _plugin(tmp_path: Path, body: str) -> Path:
    require_sandbox()
    path = tmp_path / "plugin.py"
    path.write_text(body)
    return path


def test_an_infinite_loop_plugin_is_killed_at_the_wall_clock_limit(tmp_path):
    plugin = _plugin(tmp_path, "import time\ndef build_model():\n    while True:\n        time.sleep(0.05)\n")
    with pytest.raises(SandboxError, match=r"did not finish within 2 s .*killed"):
        build_plugin(plugin, tmp_path / "out", limits=Limits(timeout_s=2, cpu_s=60, memory_mb=512))
    assert not (tmp_path / "out").exists()


def test_a_busy_loop_plugin_is_killed_at_the_cpu_limit(tmp_path):
    plugin = _plugin(tmp_path, "def build_model():\n    while True:\n        pass\n")
    with pytest.raises(SandboxError, match="CPU-time limit of 1 s"):
        build_plugin(plugin, tmp_path / "out", limits=Limits(timeout_s=60, cpu_s=1, memory_mb=512))


def test_a_memory_hog_plugin_is_stopped_at_the_memory_limit(tmp_path):
    plugin = _plugin(tmp_path, "def build_model():\n    hog = []\n    while True:\n"
                               "        hog.append(bytearray(16 * 1024 * 1024))\n")
    with pytest.raises(SandboxError, match="memory limit of 300 MiB"):
        build_plugin(plugin, tmp_path / "out", limits=Limits(timeout_s=60, cpu_s=60, memory_mb=300))


def test_a_plugin_runs_in_another_process_with_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("HF_TOKEN", "do-not-leak")
    plugin = _plugin(tmp_path, "import os, sys\n"
                               "IMPORTED_IN = os.getpid()\n"
                               "def build_model():\n"
                               "    raise ValueError(f'pid={IMPORTED_IN} env={sorted(os.environ)} cwd={os.getcwd()}')\n")
    with pytest.raises(SandboxError) as info:
        build_plugin(plugin, tmp_path / "out", limits=Limits(timeout_s=60, memory_mb=512))
    message = str(info.value)
    assert "build_model() failed: ValueError" in message and "plugin.py:4" in message  # the plugin's own line
    pid = int(message.split("pid=")[1].split()[0])
    assert pid != os.getpid()
    assert "AWS_SECRET_ACCESS_KEY" not in message and "HF_TOKEN" not in message
    cwd = message.split("cwd=")[1].split(" (at ")[0]
    assert cwd == "/sandbox/work"  # the sandbox's scratch folder, not the submitter's
    assert "alignbench_submission_plugin" not in sys.modules


def test_without_a_sandbox_a_plugin_is_refused_unless_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNBENCH_BWRAP", "")  # as on a machine without bubblewrap
    path = tmp_path / "plugin.py"
    path.write_text("import os\ndef build_model():\n    raise ValueError(f'ran in {os.getcwd()}')\n")
    with pytest.raises(SandboxUnavailable, match="bubblewrap .* not installed.*--trust-plugin"):
        build_plugin(path, tmp_path / "out", limits=Limits(timeout_s=60, memory_mb=512))
    with pytest.raises(SandboxError, match="build_model\\(\\) failed: ValueError: ran in .*alignbench-plugin-"):
        build_plugin(path, tmp_path / "out", limits=Limits(timeout_s=60, memory_mb=512), trust_plugin=True)


def test_a_broken_bubblewrap_is_reported_not_used(tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ALIGNBENCH_BWRAP", str(fake))
    path = tmp_path / "plugin.py"
    path.write_text("def build_model():\n    return None\n")
    with pytest.raises(SandboxUnavailable, match="cannot set up a sandbox here .*No permissions"):
        build_plugin(path, tmp_path / "out")


def test_a_plugin_that_returns_no_model_or_exits_gets_a_clear_message(tmp_path):
    with pytest.raises(SandboxError, match="must return a torch.nn.Module or a keras.Model"):
        build_plugin(_plugin(tmp_path, "def build_model():\n    return 42\n"), tmp_path / "o",
                     limits=Limits(timeout_s=60, memory_mb=512))
    with pytest.raises(SandboxError, match="defines no build_model"):
        build_plugin(_plugin(tmp_path, "x = 1\n"), tmp_path / "o", limits=Limits(timeout_s=60, memory_mb=512))
    with pytest.raises(SandboxError, match=r"called exit\(3\) while being imported"):
        build_plugin(_plugin(tmp_path, "import sys\nsys.exit(3)\n"), tmp_path / "o",
                     limits=Limits(timeout_s=60, memory_mb=512))


def test_only_python_files_are_plugins(tmp_path):
    other = tmp_path / "model.sh"
    other.write_text("rm -rf /")
    with pytest.raises(InvalidInputError, match="expected an existing .py file"):
        build_plugin(other, tmp_path / "o")


# ----------------------------------------------------------------------------------- paths
@pytest.mark.parametrize("name", ["../evil", "..", "a/b", "/etc", ".hidden", "x" * 200, "a\x00b", "c:\\x"])
def test_unsafe_bundle_names_are_refused(tmp_path, name):
    from leaderboard.bundle import bundle_dir
    from leaderboard.submit import default_submission_id

    with pytest.raises(InvalidInputError, match="not allowed as a file name"):
        bundle_dir(tmp_path, name)
    assert default_submission_id("../../etc/passwd") == "etc-passwd"  # names are slugged, never paths


def test_inside_refuses_traversal_and_symlinks(tmp_path):
    from leaderboard.bundle import inside

    root = tmp_path / "bundle"
    (root / "data").mkdir(parents=True)
    with pytest.raises(InvalidInputError):
        inside(root, "..", "secret")
    with pytest.raises(InvalidInputError):
        inside(root, "data", "../../secret")
    (tmp_path / "secret.json").write_text("{}")
    (root / "data" / "x.json").symlink_to(tmp_path / "secret.json")
    with pytest.raises(InvalidInputError, match="outside the bundle|symbolic links"):
        inside(root, "data", "x.json")
    assert inside(root, "data", "_ceiling.json") == root / "data" / "_ceiling.json"


def test_a_symlinked_dataset_folder_is_not_followed(tmp_path):
    from leaderboard.bundle import read_bundle

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.json").write_text(json.dumps({"secret": 1}))
    bundle = tmp_path / "submissions" / "b"
    bundle.mkdir(parents=True)
    (bundle / "submission.json").write_text("{}")
    (bundle / "data").symlink_to(outside, target_is_directory=True)
    read = read_bundle(bundle)
    assert read.records == {}
    assert any("symbolic links are not allowed" in p for p in read.problems)


def test_a_record_naming_a_scores_file_outside_the_bundle_is_refused(tmp_path):
    from leaderboard.bundle import read_bundle
    from leaderboard.validate import check_scores

    bundle = tmp_path / "b"
    (bundle / "data").mkdir(parents=True)
    rec = {"scores_file": "../../../etc/passwd"}
    problems = check_scores(read_bundle(bundle), "data", rec, None)
    assert problems and problems[0][0] == "scores_file" and "expected 'b.scores.csv'" in problems[0][1]


def test_the_site_never_writes_outside_its_folder(tmp_path):
    """A catalog record whose model id is a path is left out of the site, not written through."""
    from benchmark import records
    from leaderboard.site import build

    folder = tmp_path / "results" / "ds"
    from benchmark.scores import score_fields

    rec = {"schema": records.SCHEMA, "kind": "model", "task": "maps", "dataset": "ds", "dataset_fingerprint": "f",
           "model": "../../../pwned", "status": "ok", "n_images": 1, "spearman_mean": 0.3, "dice_mean": 0.2,
           "iou_mean": 0.1, "provenance": {}, **score_fields(0.3, score_name="spearman", n=1, error=0.06, ceiling=0.6)}
    folder.mkdir(parents=True)
    (folder / "bad.json").write_text(json.dumps(rec))
    done = build(tmp_path / "results", tmp_path / "site", with_published=False)
    assert not list(tmp_path.rglob("pwned*"))
    assert done.entries == [] and any("not allowed as a file name" in n for n in done.notes)


# ----------------------------------------------------------------------------------- HTML
XSS = {
    "description": "<script>document.body.setAttribute('data-pwned','script')</script>",
    "submitter": "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">",
    "model_name": "\"><svg onload=alert(1)>",
    "url": "javascript:alert(1)",
}


def test_submitted_text_is_escaped_in_every_page_and_export(tmp_path):
    from leaderboard.bundle import SubmissionMeta
    from leaderboard.site import Entry, SiteData, export_csv, export_markdown, index_html, model_html

    meta = SubmissionMeta(submitter=XSS["submitter"], model_name=XSS["model_name"], description=XSS["description"],
                          licence="MIT", url=XSS["url"], top1_claimed=50.0, top1_method="=HYPERLINK(\"x\")")
    sub = {"id": "x", **meta.to_json(), "created": "2026-01-01T00:00:00+00:00"}
    entry = Entry(dataset="ds", model_id="x", model=XSS["model_name"], family=None, top1=50.0,
                  top1_source="claimed by the submitter (=HYPERLINK(\"x\"))", alignment=40.0, sd=1.0,
                  spearman=0.2, dice=0.3, iou=0.2, n_images=10, submitted_by=XSS["submitter"], date="2026-01-01",
                  kind="measured", origin="submission", rank=1, page="models/x.html", record={}, submission=sub)
    pages = index_html(SiteData([entry], ["ds"], []), "/* js */") + model_html([entry], {})
    for raw in XSS.values():
        if raw.startswith("javascript"):
            assert 'href="javascript' not in pages
        else:
            assert raw not in pages
    assert "&lt;script&gt;document.body" in pages and "&lt;img src=x onerror=" in pages
    assert pages.count("<script>") == 1  # only the site's own script
    csv_text = export_csv([entry])
    assert "'=HYPERLINK" in csv_text or "claimed by the submitter (=HYPERLINK" in csv_text
    assert "\n=" not in csv_text and ",=" not in csv_text
    md = export_markdown(SiteData([entry], ["ds"], []))
    assert "<img" not in md and "<svg" not in md
