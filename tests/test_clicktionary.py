"""Clicktionary: the release loader, its fetch rules (loopback HTTP), and scoring through the CLI."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.http_support import LoopbackServer as Server

from benchmark.datasets import clicktionary as ct
from benchmark.datasets import get_dataset
from model_zoo.errors import DataUnavailableError, InvalidInputError

pytestmark = pytest.mark.tf  # the ClickMe chain (resize, blur) is the paper's TF ops

N_IMAGES = 6


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A generated release: 6 images (3 animal labels), 3 participant maps each. Read-only."""
    return ct.write_synthetic_release(tmp_path_factory.mktemp("ct") / "release", N_IMAGES, n_participants=3, seed=2)


def _zip(folder: Path, prefix: str = "clicktionary-v1/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, prefix + p.relative_to(folder).as_posix())
    return buf.getvalue()




# ------------------------------------------------------------------------------------------ loader

def test_release_is_read_through_the_clickme_chain(release):
    from benchmark.datasets.clickme import preprocess_heatmaps, preprocess_images

    ds = ct.ClicktionaryDataset(release)
    assert ds.task == "maps" and ds.num_images() == N_IMAGES and ds.synthetic
    info = ds.info()
    assert info["animals"] == N_IMAGES // 2 and info["has_participant_maps"] and info["skips"]["total"] == 0
    batches = list(ds.batches(4))
    assert [len(b.ids) for b in batches] == [4, 2]  # tail kept
    b = batches[0]
    assert b.images.shape == (4, 224, 224, 3) and b.images.dtype == np.float32
    assert b.heatmaps.shape == (4, 224, 224) and b.ids == ["ct0000", "ct0001", "ct0002", "ct0003"]
    items = ds.items()[:4]
    assert list(b.labels) == [it.label for it in items]
    raw_maps = np.stack([ct.read_map(it.map) for it in items])
    raw_images = np.stack([ct.read_image(it.image).astype(np.float32) for it in items])
    assert np.allclose(b.heatmaps, preprocess_heatmaps(raw_maps), atol=1e-5)  # blurred exactly like ClickMe
    assert np.allclose(b.images, preprocess_images(raw_images), atol=1e-4)
    pid, maps = next(ds.participant_maps())
    assert pid == "ct0000" and maps.shape == (3, 224, 224)
    human, ids = ds.human_maps(limit=3)
    assert human.shape == (3, 224, 224) and ids == ["ct0000", "ct0001", "ct0002"]


def test_fingerprint_follows_the_files(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    a, b = ct.ClicktionaryDataset(release).fingerprint(), ct.ClicktionaryDataset(copy).fingerprint()
    assert a == b and a.startswith("sha256:")
    (copy / "maps" / "ct0001.png").write_bytes((copy / "maps" / "ct0000.png").read_bytes())
    assert ct.ClicktionaryDataset(copy).fingerprint() != a
    assert ct.ClicktionaryDataset(release, map_preprocessing="resize").fingerprint() != a


def test_bad_rows_are_skipped_and_counted(release, tmp_path):
    copy = shutil.copytree(release, tmp_path / "copy")
    lines = (copy / ct.MANIFEST).read_text().splitlines()
    lines[1] = lines[1].replace(",1,", ",1000,", 1)  # label out of range
    lines[2] = lines[2].replace("images/ct0001.png", "images/gone.png")
    np.save(copy / "maps" / "zero.npy", np.zeros((256, 256), np.float32))
    lines[3] = lines[3].replace("maps/ct0002.png", "maps/zero.npy")
    lines.append(lines[4])  # duplicate id
    (copy / ct.MANIFEST).write_text("\n".join(lines) + "\n")
    ds = ct.ClicktionaryDataset(copy)
    assert ds.num_images() == N_IMAGES - 3
    skips = ds.skips.to_dict()
    assert skips["total"] == 4, skips
    text = json.dumps(skips)
    for reason in ("label out of range", "missing image", "empty map", "duplicate"):
        assert reason in text


def test_malformed_release_errors_name_the_file(release, tmp_path):
    with pytest.raises(InvalidInputError, match="clicktionary.csv is missing"):
        ct.ClicktionaryDataset(tmp_path).items()
    copy = shutil.copytree(release, tmp_path / "copy")
    text = (copy / ct.MANIFEST).read_text().replace("image_id,label", "id,label", 1)
    (copy / ct.MANIFEST).write_text(text)
    with pytest.raises(InvalidInputError, match=r"clicktionary\.csv: missing column\(s\) \['image_id'\]"):
        ct.ClicktionaryDataset(copy).items()
    with pytest.raises(InvalidInputError, match="map_preprocessing"):
        ct.ClicktionaryDataset(release, map_preprocessing="gauss")


def test_registry_resolves_the_name_and_a_release_folder(release, capsys):
    from alignbench.cli import main

    assert main(["data", "info", str(release), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == N_IMAGES and info["records"] == N_IMAGES and info["synthetic"] is True
    ds = get_dataset(str(release))
    assert isinstance(ds, ct.ClicktionaryDataset) and ds.name == "release" and ds.num_images() == N_IMAGES
    named = get_dataset("clicktionary", mirror=str(release))
    assert isinstance(named, ct.ClicktionaryDataset) and named.name == "clicktionary"
    assert named.fingerprint() == ds.fingerprint()


# ------------------------------------------------------------------------------------------ fetching

@pytest.mark.network
def test_download_checks_sha256_unpacks_and_then_works_offline(release, tmp_path, monkeypatch):
    blob = _zip(release)
    good = hashlib.sha256(blob).hexdigest()
    cache = tmp_path / "cache" / "clicktionary"
    with Server({"/ct.zip": blob}) as srv:
        with pytest.raises(InvalidInputError, match="sha256"):
            ct.fetch_release(mirror=srv.url + "/ct.zip", dest_dir=cache, sha256="0" * 64)
        assert not (cache / ct.MANIFEST).exists()  # a bad archive is never unpacked
        folder = ct.fetch_release(mirror=srv.url + "/ct.zip", dest_dir=cache, sha256=good)
        assert folder == cache and (cache / ct.MANIFEST).is_file()
        assert not list(cache.parent.glob("*.zip*"))  # no archive or .part left behind
        assert [p for p, _ in srv.requests] == ["/ct.zip", "/ct.zip"]
    assert ct.ClicktionaryDataset(folder).fingerprint() == ct.ClicktionaryDataset(release).fingerprint()
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    assert ct.fetch_release(mirror="http://127.0.0.1:9/never", dest_dir=cache) == cache  # the cache is used


@pytest.mark.network
def test_unavailable_release_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.delenv(ct.URL_ENV, raising=False)
    with pytest.raises(DataUnavailableError) as exc:
        ct.fetch_release(dest_dir=tmp_path / "empty")
    assert "\n" not in str(exc.value) and ct.URL_ENV in str(exc.value) and "--mirror" in str(exc.value)
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="offline mode"):
        ct.fetch_release(mirror="http://127.0.0.1:9/ct.zip", dest_dir=tmp_path / "empty")
    monkeypatch.delenv("ALIGNBENCH_OFFLINE")
    with Server({}) as srv, pytest.raises(DataUnavailableError, match="cannot download"):
        ct.fetch_release(mirror=srv.url + "/missing.zip", dest_dir=tmp_path / "empty")
    with pytest.raises(DataUnavailableError, match="does not exist"):
        ct.fetch_release(mirror=str(tmp_path / "nowhere"))


def test_archive_with_unsafe_paths_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("clicktionary.csv", "image_id,label,image,map\n")
        zf.writestr("../evil.txt", "x")
    (tmp_path / "bad.zip").write_bytes(buf.getvalue())
    with pytest.raises(InvalidInputError, match="unsafe path"):
        ct.fetch_release(mirror=str(tmp_path / "bad.zip"), dest_dir=tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


# ------------------------------------------------------------------------------------------ end to end

@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.network
def test_run_and_plot_clicktionary_through_the_cli(release, tmp_path, monkeypatch, capsys):
    """`alignbench run --dataset clicktionary` (fetched from a loopback URL) and on a release folder,
    with a random-weight catalog model; records, ceiling, baseline, then Figure 4."""
    from benchmark import records
    from alignbench.cli import main

    results = tmp_path / "results"
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "0")  # `--offline` sets it in os.environ: undone at teardown
    common = ["--model", "tv_resnet18", "--weights", "random", "--results", str(results), "--batch-size", "8",
              "--device", "cpu", "--no-progress"]
    with Server({"/ct.zip": _zip(release)}) as srv:
        monkeypatch.setenv(ct.URL_ENV, srv.url + "/ct.zip")
        assert main(["run", "--dataset", "clicktionary", *common]) == 0
    out = capsys.readouterr().out
    assert "tv_resnet18+random" in out and "computed: split-half" in out
    folder = results / "clicktionary"
    rec = records.read_record(folder / "tv_resnet18+random.json")
    assert rec["dataset"] == "clicktionary" and rec["task"] == "maps" and rec["n_images"] == N_IMAGES
    assert rec["ceiling_source"].startswith("computed") and 0 < rec["ceiling"] <= 1
    assert np.isclose(rec["normalized"], rec["spearman_mean"] / rec["ceiling"])
    ceiling = records.read_record(folder / "_ceiling.json")
    baseline = records.read_record(folder / "_baseline-center-bias.json")
    assert ceiling["value"] == rec["ceiling"] and baseline["n_images"] == N_IMAGES
    scores = records.read_scores(folder / rec["scores_file"])
    assert np.isclose(np.nanmean(scores["spearman"]), rec["spearman_mean"])

    # offline now: the cached release is used, nothing is recomputed
    assert main(["run", "--dataset", "clicktionary", "--offline", *common]) == 0
    assert "skipped" in capsys.readouterr().out

    # a release folder: its own results folder, named after it
    assert main(["run", "--dataset", str(release), "--limit", "2", *common]) == 0
    assert records.read_record(results / "release" / "tv_resnet18+random.json")["n_images"] == 2

    assert main(["plot-pareto", "--dataset", "clicktionary", "--results", str(results),
                 "--output", str(tmp_path / "fig4.png")]) == 0
    assert (tmp_path / "fig4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
