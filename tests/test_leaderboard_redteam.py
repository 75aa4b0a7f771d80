"""Red team: each attack a hostile submitter tried on the leaderboard (issue 16) is a test that fails
if the attack works. Tampered bundles are made self-consistent first (scores file, its sha256 and
every aggregate re-derived), so only facts the bundle cannot choose (the pins of
``known_datasets.json``, the local data, the sandbox) can stop them.

Count: every test function here is one attack (parametrised ones count once per case).
"""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from leaderboard.sandbox import Limits, SandboxError, build_plugin
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file
from tests.leaderboard_support import copy_bundle, make_bundle, pin_table, require_sandbox

SID = "tiny-net"


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def honest(tmp_path_factory, clickme_dataset) -> Path:
    res = make_bundle(tmp_path_factory.mktemp("redteam-src"), clickme_dataset)
    assert res.ok, res.instructions
    return res.bundle


@pytest.fixture(scope="module")
def pins(tmp_path_factory, clickme_dataset) -> Path:
    """The fixture dataset pinned, as a maintainer with the data would (`alignbench leaderboard pin`)."""
    return pin_table(tmp_path_factory.mktemp("redteam-pins") / "known_datasets.json", clickme_dataset)


@pytest.fixture
def results(tmp_path, honest) -> Path:
    copy_bundle(honest, tmp_path)
    return tmp_path


def _paths(results: Path, dataset, sid: str = SID) -> tuple[Path, Path]:
    folder = results / "submissions" / sid / dataset.name
    return folder / f"{sid}.json", folder / f"{sid}.scores.csv"


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def rederive(results: Path, dataset, rows: list[dict], *, ceiling: float | None = None, sid: str = SID,
             **extra) -> dict:
    """Write ``rows`` as the bundle's scores and make the record agree with them in every field that
    validation recomputes (aggregates, counts, sha256), optionally under another ``ceiling``."""
    from benchmark import baselines

    rec_path, scores_path = _paths(results, dataset, sid)
    with scores_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    rec = json.loads(rec_path.read_text())
    ceiling = rec["ceiling"] if ceiling is None else ceiling
    rho = np.array([float(r["spearman"]) if r["spearman"] else np.nan for r in rows])
    pred, label = np.array([int(r["pred"]) for r in rows]), np.array([int(r["label"]) for r in rows])
    rec.update(baselines.record_summary(rho, score_name=baselines.SPEARMAN, ceiling=ceiling))
    rec.update(ceiling=ceiling, dice_mean=float(np.mean([float(r["dice"]) for r in rows])),
               iou_mean=float(np.mean([float(r["iou"]) for r in rows])), top1_measured=float(np.mean(pred == label)),
               scores_sha256=sha256_file(scores_path), **extra)
    rec_path.write_text(json.dumps(rec))
    return rec


def _build(results: Path, pins: Path, tmp_path: Path):
    from leaderboard.site import build

    return build(results, tmp_path / "site", with_published=False, pins=pins)


def _listed(site, sid: str = SID) -> bool:
    return any(e.model_id == sid for e in site.entries)


def _validate(results: Path, pins: Path):
    from leaderboard.validate import validate_bundles

    return validate_bundles(None, results_dir=results, use_local_data=False, pins=pins, catalog=[])


def test_the_honest_bundle_is_listed(results, pins, tmp_path):
    """The control: without tampering the bundle validates without local data and is listed."""
    report = _validate(results, pins)
    assert report.ok, report.format()
    assert _listed(_build(results, pins, tmp_path))


# ----------------------------------------------------------------------------------- 1. numbers the bundle chose
def test_attack_a_lowered_ceiling_is_refused(results, pins, clickme_dataset, tmp_path):
    """Ceiling lowered in the record and in the bundle's _ceiling.json (alignment inflated)."""
    rec_path, scores = _paths(results, clickme_dataset)
    before = json.loads(rec_path.read_text())["normalized"]
    rec = rederive(results, clickme_dataset, _rows(scores), ceiling=0.27)
    assert rec["normalized"] > 1.5 * before
    ceil_path = rec_path.with_name("_ceiling.json")
    ceil = json.loads(ceil_path.read_text())
    ceil.update(value=0.27, score=0.27)
    ceil_path.write_text(json.dumps(ceil))
    report = _validate(results, pins)
    assert any(p.field.endswith(" ceiling") and "leaderboard's ceiling" in p.message for p in report.problems), \
        report.format()
    assert not _listed(_build(results, pins, tmp_path))


def test_attack_a_preview_relabelled_as_a_full_run_is_refused(tmp_path, pins, clickme_dataset):
    """A --limit 16 bundle with its limit and preview flag removed."""
    from leaderboard.verify import verify_bundle

    res = make_bundle(tmp_path, clickme_dataset, limit=16)
    assert res.ok
    rec_path, _ = _paths(tmp_path, clickme_dataset)
    rec = json.loads(rec_path.read_text())
    rec["limit"] = None
    rec_path.write_text(json.dumps(rec))
    sub = res.bundle / "submission.json"
    sub.write_text(json.dumps({**json.loads(sub.read_text()), "preview": False}))
    report = _validate(tmp_path, pins)
    assert any(p.field.endswith(" n_images") and "16 images scored but the dataset has 25" in p.message
               for p in report.problems), report.format()
    assert not _listed(_build(tmp_path, pins, tmp_path))
    [verified] = verify_bundle(res.bundle, n_images=3, datasets={clickme_dataset.name: clickme_dataset}, device="cpu",
                               pins=pins)
    assert not verified.ok and any(m.field == "n_images" for m in verified.bundle_mismatches), verified.format()


def test_attack_a_cherry_picked_subset_is_refused(results, pins, clickme_dataset, tmp_path):
    """The best 13 of 25 rows kept, every aggregate re-derived (an inflated score)."""
    from leaderboard.verify import verify_bundle

    rec_path, scores = _paths(results, clickme_dataset)
    before = json.loads(rec_path.read_text())["normalized"]
    rows = sorted(_rows(scores), key=lambda r: -float(r["spearman"] or -2))[:13]
    rows.sort(key=lambda r: r["image_id"])
    assert rederive(results, clickme_dataset, rows)["normalized"] > before
    assert not _listed(_build(results, pins, tmp_path))
    [verified] = verify_bundle(results / "submissions" / SID, n_images=3, device="cpu", pins=pins,
                               datasets={clickme_dataset.name: clickme_dataset})
    assert not verified.ok and {"n_images", "image-id set"} <= {m.field for m in verified.bundle_mismatches}


def test_attack_other_image_ids_at_the_same_count_are_refused(results, pins, clickme_dataset, tmp_path):
    """25 rows, but one image swapped for an id that is not in the dataset."""
    _, scores = _paths(results, clickme_dataset)
    rows = _rows(scores)
    rows[0]["image_id"] = "val-9:000999"
    rederive(results, clickme_dataset, rows)
    report = _validate(results, pins)
    assert any("image-id set" in p.message for p in report.problems), report.format()
    assert not _listed(_build(results, pins, tmp_path))


def test_attack_another_dataset_under_a_pinned_name_is_refused(results, pins, clickme_dataset, tmp_path):
    """The record claims to be on the pinned dataset but carries another data fingerprint."""
    rec_path, _ = _paths(results, clickme_dataset)
    rec = json.loads(rec_path.read_text())
    rec["dataset_fingerprint"] = "sha256:" + "0" * 64
    rec_path.write_text(json.dumps(rec))
    assert not _listed(_build(results, pins, tmp_path))


def test_attack_a_bundle_on_an_unknown_dataset_is_not_ranked_with_known_data(results, tmp_path):
    """No pin, no local copy, no catalog record: nothing to check the bundle against."""
    from leaderboard.pins import PinTable
    from leaderboard.site import build

    site = build(results, tmp_path / "site", with_published=False, pins=PinTable({}))
    assert not _listed(site) and any("nothing is known" in n for n in site.notes)


# ----------------------------------------------------------------------------------- 3. synthetic data, random weights
def test_attack_generated_data_passes_as_human_data(results, pins, clickme_dataset, tmp_path):
    """A bundle on generated data must be marked SYNTHETIC wherever its number is, and listed apart."""
    site = _build(results, pins, tmp_path)
    [entry] = [e for e in site.entries if e.model_id == SID]
    out = site.index.parent
    index = site.index.read_text()
    row = index.split(f'id="{entry.row_id}"')[1].split("</tr>")[0]
    assert 'class="badge synthetic"' in row and "SYNTHETIC" in row
    assert 'id="section-synthetic"' in index
    section = index.split('id="section-synthetic"')[1].split("</section>")[0]
    assert entry.row_id in section and entry.row_id not in index.split('id="section-main"')[1].split("</section>")[0]
    svg = index.split(f'data-dataset="{clickme_dataset.name}"')[1].split("</svg>")[0]
    assert "SYNTHETIC DATA" in svg
    page = (out / entry.page).read_text()
    assert "SYNTHETIC DATA" in page and 'class="badge synthetic"' in page
    [csv_row] = [r for r in csv.DictReader((out / "leaderboard.csv").open()) if r["model_id"] == SID]
    assert csv_row.get("synthetic") == "yes" and csv_row.get("section") == "synthetic"
    md = (out / "leaderboard.md").read_text()
    assert "## SYNTHETIC data" in md and "SYNTHETIC data; random weights" in md


def test_attack_a_record_denying_that_its_data_is_generated_is_refused(results, pins, clickme_dataset, tmp_path):
    rec_path, _ = _paths(results, clickme_dataset)
    rec = json.loads(rec_path.read_text())
    rec["dataset_synthetic"] = False
    rec_path.write_text(json.dumps(rec))
    report = _validate(results, pins)
    assert any(p.field.endswith("dataset_synthetic") for p in report.problems), report.format()
    assert not _listed(_build(results, pins, tmp_path))


def test_attack_a_random_weight_control_ranked_under_a_pretrained_name(tmp_path):
    """A catalog record of random weights, best alignment, named like the pretrained model."""
    from benchmark import records
    from benchmark.scores import score_fields
    from leaderboard.pins import PinTable
    from leaderboard.site import build

    folder = tmp_path / "results" / "ds"
    folder.mkdir(parents=True)
    for model, rho, weights in (("inception_v3+random", 0.4, "random"), ("resnet50", 0.2, "pretrained")):
        sha = records.write_columns(folder / f"{model}.scores.csv", {
            "image_id": ["a", "b"], "label": [1, 2], "pred": [1, 0], "correct": [1, 0], "spearman": [rho, rho],
            "dice": [0.2, 0.2], "iou": [0.1, 0.1]})
        rec = {"schema": records.SCHEMA, "kind": "model", "task": "maps", "dataset": "ds", "dataset_fingerprint": "f",
               "model": model, "display_name": "Inception-v3 (torchvision weights)" if "incep" in model else "ResNet50",
               "status": "ok", "n_images": 2, "spearman_mean": rho, "dice_mean": 0.2, "iou_mean": 0.1,
               "weights": weights, "top1_published": 77.0, "provenance": {}, "scores_file": f"{model}.scores.csv",
               "scores_sha256": sha, **score_fields(rho, score_name="spearman", n=2, error=0.01, ceiling=0.5)}
        (folder / f"{model}.json").write_text(json.dumps(rec))
    site = build(tmp_path / "results", tmp_path / "site", with_published=False, pins=PinTable({}))
    control = next(e for e in site.entries if e.model_id == "inception_v3+random")
    index = site.index.read_text()
    row = index.split(f'id="{control.row_id}"')[1].split("</tr>")[0]
    assert "random weights" in row and "RANDOM (control)" in row and ">control<" in row  # marked, not ranked
    assert next(e for e in site.entries if e.model_id == "resnet50").rank == 1
    circle = index.split(f'data-row="{control.row_id}"')[1].split("</circle>")[0]
    assert "random weights" in circle
    page = (site.index.parent / control.page).read_text()
    assert "RANDOM WEIGHTS" in page
    [csv_row] = [r for r in csv.DictReader((site.index.parent / "leaderboard.csv").open())
                 if r["model_id"] == "inception_v3+random"]
    assert csv_row.get("random_weights") == "yes" and csv_row["rank"] == ""
    assert r"\[random weights\]" in (site.index.parent / "leaderboard.md").read_text()  # Markdown-escaped


# ----------------------------------------------------------------------------------- 4. plugins
def _plugin(folder: Path, body: str, name: str = "plugin.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path


def _forged_export(tmp_path: Path, *lines: str) -> Path:
    """A plugin that writes its own export (``lines`` run with ``out`` = the export folder), reports
    success in result.json itself and exits before the real export code can run."""
    body = "".join(f"    {line}\n" for line in lines)
    return _plugin(tmp_path / "p", "import json, os, sys\ndef build_model():\n    out = sys.argv[2]\n" + body
                   + "    json.dump({'ok': True}, open(os.path.join(out, 'result.json'), 'w'))\n    os._exit(0)\n")


def _build_plugin(plugin: Path, out: Path, **kw):
    require_sandbox()
    kw.setdefault("limits", Limits(timeout_s=60, cpu_s=60, memory_mb=1024))
    return build_plugin(plugin, out, **kw)


def test_attack_a_plugin_writes_outside_its_folder(tmp_path):
    target = tmp_path / "victim" / "planted.txt"
    target.parent.mkdir()
    plugin = _plugin(tmp_path / "p", f"def build_model():\n    open({str(target)!r}, 'w').write('x')\n")
    with pytest.raises(SandboxError):
        _build_plugin(plugin, tmp_path / "out")
    assert not target.exists()


def test_attack_a_plugin_deletes_a_file_in_another_folder(tmp_path):
    victim = tmp_path / "victim" / "precious.txt"
    victim.parent.mkdir()
    victim.write_text("precious")
    plugin = _plugin(tmp_path / "p", f"import os\ndef build_model():\n    os.remove({str(victim)!r})\n")
    with pytest.raises(SandboxError):
        _build_plugin(plugin, tmp_path / "out")
    assert victim.read_text() == "precious"


def test_attack_a_plugin_reads_a_file_outside_its_folder(tmp_path):
    secret = tmp_path / "results" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("s3cr3t-value")
    plugin = _plugin(tmp_path / "p", f"def build_model():\n    raise ValueError('read: ' + open({str(secret)!r}).read())\n")
    with pytest.raises(SandboxError) as info:
        _build_plugin(plugin, tmp_path / "out")
    assert "s3cr3t-value" not in str(info.value)


def test_attack_a_plugin_phones_home_with_the_environment(tmp_path, monkeypatch):
    """A listener on 127.0.0.1 must receive nothing, and the plugin must not see the leaderboard's variables."""
    monkeypatch.setenv("ALIGNBENCH_TEST_SECRET_TOKEN", "do-not-leak")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    received: list[bytes] = []

    def listen():
        deadline = time.time() + 20
        while time.time() < deadline and not received:
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            received.append(conn.recv(65536) or b"(connected)")
            conn.close()

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    plugin = _plugin(tmp_path / "p", "import os, socket\ndef build_model():\n"
                                     f"    names = ' '.join(sorted(os.environ))\n"
                                     f"    try:\n        s = socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
                                     "        s.sendall(names.encode())\n        s.close()\n"
                                     "    except OSError as exc:\n        raise ValueError(f'offline ({exc}); env: {names}')\n"
                                     "    raise ValueError('sent: ' + names)\n")
    with pytest.raises(SandboxError) as info:
        _build_plugin(plugin, tmp_path / "out")
    time.sleep(0.5)
    server.close()
    thread.join(timeout=5)
    assert received == [], received
    assert "offline" in str(info.value)
    assert "ALIGNBENCH_TEST_SECRET_TOKEN" not in str(info.value)


ORPHAN = ("import ctypes, os, time\n"
          "def build_model():\n"
          "    if os.fork() == 0:\n"
          "        os.setsid()\n"
          "        if os.fork() == 0:\n"
          "            ctypes.CDLL(None).prctl(15, b'{tag}', 0, 0, 0)  # PR_SET_NAME: findable in /proc\n"
          "            time.sleep(120)\n"
          "        os._exit(0)\n"
          "    raise ValueError('failed at once')\n")


def _living(tag: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and open(f"/proc/{entry}/comm").read().strip() == tag:
                found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "trusted"])
def test_attack_a_setsid_child_outlives_the_build_and_blames_a_timeout(tmp_path, monkeypatch, sandboxed):
    """A plugin that raises at once but leaves a setsid'd, double-forked child holding its output."""
    kw = {}
    if sandboxed:
        require_sandbox()
    else:
        monkeypatch.setenv("ALIGNBENCH_BWRAP", "")
        kw["trust_plugin"] = True
    tag = f"abx{os.getpid() % 100000}{int(sandboxed)}"
    plugin = _plugin(tmp_path / "p", ORPHAN.replace("{tag}", tag))
    started = time.monotonic()
    with pytest.raises(SandboxError) as info:
        build_plugin(plugin, tmp_path / "out", limits=Limits(timeout_s=30, cpu_s=60, memory_mb=1024), **kw)
    elapsed = time.monotonic() - started
    time.sleep(0.3)
    survivors = _living(tag)
    for pid in survivors:  # do not leave it behind even when the attack works
        os.kill(pid, 9)
    assert survivors == []
    assert "failed at once" in str(info.value) and "did not finish" not in str(info.value)
    assert elapsed < 20


def test_attack_a_huge_print_grows_the_leaderboard_process(tmp_path):
    """768 MiB printed by the plugin: the leaderboard process must stay small (output streamed, capped)."""
    require_sandbox()
    plugin = _plugin(tmp_path / "p", "import sys\ndef build_model():\n"
                                     "    chunk = 'x' * (1 << 20)\n"
                                     "    for _ in range(768):\n        sys.stdout.write(chunk)\n"
                                     "    sys.stdout.flush()\n    raise ValueError('printed')\n")
    code = ("import resource, sys\nfrom leaderboard.sandbox import Limits, SandboxError, build_plugin\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"try:\n    build_plugin({str(plugin)!r}, {str(tmp_path / 'out')!r}, limits=Limits(timeout_s=120, "
            "cpu_s=120, memory_mb=2048))\nexcept SandboxError as exc:\n    print('ERROR', str(exc)[:300])\n"
            "print('GROWTH_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 0, proc.stderr[-2000:]
    growth_mib = int(proc.stdout.split("GROWTH_KB")[1].split()[0]) / 1024
    assert growth_mib < 64, proc.stdout[-500:]
    assert "ERROR" in proc.stdout


def test_attack_plugin_chosen_kwargs_reach_a_library_call(tmp_path, monkeypatch):
    """ARCHITECTURE kwargs {'checkpoint_path': ...} would make timm torch.load a file of the plugin's choice
    in the leaderboard process."""
    import torch

    from leaderboard.loading import model_from_export

    loads: list[str] = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: loads.append(str(f)) or real_load(f, *a, **k))
    chosen = tmp_path / "chosen.pth"
    torch.save({"anything": torch.zeros(1)}, chosen)
    export = tmp_path / "export"
    export.mkdir()
    (export / "architecture.json").write_text(json.dumps({
        "framework": "torch", "library": "timm", "name": "test_resnet",
        "kwargs": {"num_classes": 1000, "checkpoint_path": str(chosen)}, "preprocess": None}))
    from safetensors.torch import save_model
    import timm

    save_model(timm.create_model("test_resnet"), str(export / "weights.safetensors"))
    with pytest.raises(InvalidInputError, match="kwargs.checkpoint_path: not allowed"):
        model_from_export(export)
    assert str(chosen) not in loads


def test_attack_a_plugin_export_links_to_a_file_of_its_choice(tmp_path):
    """weights.safetensors as a symlink to a file the plugin cannot read: copying it out would leak it."""
    secret = tmp_path / "leaderboard-secret.txt"
    secret.write_text("s3cr3t")
    plugin = _forged_export(tmp_path, f"os.symlink({str(secret)!r}, os.path.join(out, 'weights.safetensors'))",
                            "json.dump({'framework': 'torch', 'library': 'timm', 'name': 'test_resnet', 'kwargs': {}, "
                            "'preprocess': None}, open(os.path.join(out, 'architecture.json'), 'w'))")
    with pytest.raises(SandboxError, match="links are refused|not a regular file"):
        _build_plugin(plugin, tmp_path / "out")
    assert not (tmp_path / "out" / "weights.safetensors").exists()


# ----------------------------------------------------------------------------------- 5. unbounded text
@pytest.mark.parametrize("where", ["explainer", "provenance"])
def test_attack_thirty_megabytes_of_text(results, pins, clickme_dataset, tmp_path, where):
    rec_path, _ = _paths(results, clickme_dataset)
    rec = json.loads(rec_path.read_text())
    if where == "explainer":
        rec["explainer"] = "x" * 30_000_000
    else:
        rec["provenance"]["platform"] = "y" * 30_000_000
    rec_path.write_text(json.dumps(rec))
    report = _validate(results, pins)
    assert any("larger than the limit" in p.message for p in report.problems), report.format()[:500]
    site = _build(results, pins, tmp_path)
    assert not _listed(site)
    assert max(p.stat().st_size for p in site.index.parent.rglob("*.html")) < 1_000_000
    assert max(len(n) for n in site.notes) < 2000


def test_attack_a_field_just_under_the_file_limit_but_over_its_length_limit(results, pins, clickme_dataset):
    rec_path, _ = _paths(results, clickme_dataset)
    rec = json.loads(rec_path.read_text())
    rec["explainer"] = "z" * 100_000
    rec_path.write_text(json.dumps(rec))
    report = _validate(results, pins)
    assert any("explainer: 100000 characters, longer than the limit" in p.message for p in report.problems)


# ----------------------------------------------------------------------------------- 6. tracebacks
def test_attack_a_pickle_renamed_safetensors(tmp_path, clickme_dataset):
    import pickle

    from leaderboard.loading import ModelSource
    from leaderboard.submit import submit
    from tests.leaderboard_support import meta

    path = tmp_path / "weights.safetensors"
    path.write_bytes(pickle.dumps({"fc.weight": [1.0, 2.0]}))
    with pytest.raises(InvalidInputError, match="not a readable safetensors file"):
        submit(ModelSource("weights", name="test_resnet", path=path, timm_config=True), meta(),
               datasets=[clickme_dataset], results_dir=tmp_path / "r", submission_id="evil", device="cpu",
               progress=False)
    assert not list((tmp_path / "r" / "submissions").glob("evil*"))


def test_attack_an_architecture_json_that_is_a_list(tmp_path):
    from leaderboard.loading import model_from_export

    (tmp_path / "architecture.json").write_text("[1, 2, 3]")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="architecture.json: expected a JSON object, found list"):
        model_from_export(tmp_path)


def test_attack_a_plugin_writing_its_own_architecture_json_list(tmp_path):
    plugin = _forged_export(tmp_path, "open(os.path.join(out, 'architecture.json'), 'w').write('[1, 2, 3]')")
    with pytest.raises(SandboxError, match="expected a JSON object, found list"):
        _build_plugin(plugin, tmp_path / "out")


def test_attack_a_site_folder_whose_models_is_a_symlink(results, pins, tmp_path):
    from leaderboard.site import build

    out = tmp_path / "site"
    build(results, out, with_published=False, pins=pins)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    import shutil

    shutil.rmtree(out / "models")
    (out / "models").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(InvalidInputError, match="models is a symbolic link"):
        build(results, out, with_published=False, pins=pins)
    assert (elsewhere / "keep.txt").read_text() == "keep"


# ----------------------------------------------------------------------------------- 7. leftovers
def test_attack_a_failed_submit_leaves_a_folder_that_breaks_validation(tmp_path, honest, clickme_dataset):
    from leaderboard.loading import ModelSource
    from leaderboard.submit import submit
    from leaderboard.validate import validate_bundles
    from tests.leaderboard_support import meta

    results = tmp_path / "results"
    copy_bundle(honest, results)
    bad = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file
    import torch

    save_file({"not.a.key": torch.zeros(2)}, str(bad))
    with pytest.raises(InvalidInputError, match="weights do not fit"):
        submit(ModelSource("weights", name="test_resnet", path=bad, timm_config=True), meta(model_name="Broken"),
               datasets=[clickme_dataset], results_dir=results, submission_id="broken", device="cpu", progress=False)
    assert sorted(p.name for p in (results / "submissions").iterdir()) == [SID]
    report = validate_bundles(None, results_dir=results, datasets={clickme_dataset.name: clickme_dataset}, catalog=[])
    assert report.ok, report.format()


def test_attack_verify_counts_the_weights_mismatch_as_an_image(results, clickme_dataset):
    from leaderboard.verify import verify_bundle

    sub = results / "submissions" / SID / "submission.json"
    doc = json.loads(sub.read_text())
    doc["model"]["weights_sha256"] = "ab" * 32
    sub.write_text(json.dumps(doc))
    [report] = verify_bundle(results / "submissions" / SID, n_images=4, device="cpu",
                             datasets={clickme_dataset.name: clickme_dataset})
    text = report.format()
    assert not report.ok and "5 of 4" not in text and report.bad_images == []
    assert "MISMATCH (bundle) weights_sha256" in text
