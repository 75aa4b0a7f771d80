"""Neural recordings: the Arcaro 2020 release format (generated), its download over loopback HTTP with
checksum and offline rules, and the documented .npz format for users' own recordings."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.http_support import LoopbackServer as _Server

from benchmark.neural import arcaro, synthetic
from benchmark.neural.recordings import load_recordings_npz
from model_zoo.errors import DataUnavailableError, InvalidInputError


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A generated release (George 9x9 x 40 channels, Red 9x9 x 8) with responses known per position."""
    root = tmp_path_factory.mktemp("arcaro")
    rng = np.random.default_rng(0)
    images = {m: synthetic.make_images(5, k) for k, m in enumerate(("George", "Red"))}
    responses = {"George": rng.normal(size=(5, 9, 9, 40)), "Red": rng.normal(size=(5, 9, 9, 8))}
    folder = synthetic.write_release(root / "release", images, responses)
    zpath = synthetic.write_release_zip(root / "zip" / arcaro.ZIP_NAME, folder)
    return folder, zpath, images, responses


def test_release_round_trip_flips_windows_and_regions(release):
    folder, _, images, responses = release
    pl, ml = arcaro.read_panels(folder, "George")
    assert (pl.panel, ml.panel) == ("monkey1-PL", "monkey1-ML")
    np.testing.assert_allclose(pl.responses, responses["George"][..., :32], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ml.responses, responses["George"][..., 32:], rtol=1e-6, atol=1e-6)
    assert pl.window_ms == (100, 150) and pl.image_ids[0] == "img01.png" and ml.site_ids[0] == "ch33"
    np.testing.assert_array_equal(pl.images, images["George"].astype(np.float32))  # already 224: unchanged
    code_pl, code_ml = arcaro.read_panels(folder, "George", channel_split="code")
    assert code_pl.n_sites == 33 and code_ml.site_ids[0] == "ch34"
    (red,) = arcaro.read_panels(folder, "Red")
    assert red.panel == "monkey2-ML" and red.window_ms == (150, 300)
    # raw file: responses are stored flipped on both spatial axes (the loader undoes it)
    rf, names = arcaro.read_mat(folder / arcaro.MONKEYS["Red"].mat)
    assert rf.shape == (9, 9, 300, 8, 5) and names[2] == "img03.png"
    np.testing.assert_allclose(rf[0, 0, 200, :, 1], responses["Red"][1, 8, 8], rtol=1e-6)
    # a window outside the signal reads zeros; a window past the recording is refused by name
    (early,) = arcaro.read_panels(folder, "Red", window=(0, 100))
    assert not early.responses.any()
    with pytest.raises(InvalidInputError, match="outside the recorded"):
        arcaro.read_panels(folder, "Red", window=(250, 400))
    with pytest.raises(InvalidInputError, match="no region 'PL'"):
        arcaro.read_panels(folder, "Red", regions=["PL"])


def test_bad_release_inputs_are_named(release, tmp_path):
    folder, *_ = release
    with pytest.raises(InvalidInputError, match="not the Arcaro 2020 release layout"):
        arcaro.fetch_arcaro2020(tmp_path)
    with pytest.raises(InvalidInputError, match="panels"):
        arcaro.load_arcaro2020(folder, panels=["monkey3-V4"])
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a mat file at all")
    with pytest.raises(InvalidInputError, match="bad.mat"):
        arcaro.read_mat(bad)




@pytest.mark.network
def test_download_checksum_cache_and_offline(release, tmp_path, monkeypatch):
    from benchmark.datasets import get_dataset

    _, zpath, _, responses = release
    body = zpath.read_bytes()
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ALIGNBENCH_OFFLINE", raising=False)
    # offline with nothing cached: one clear error naming the folder
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match=r"neural/arcaro2020.*offline mode"):
        arcaro.fetch_arcaro2020()
    monkeypatch.delenv("ALIGNBENCH_OFFLINE")
    with _Server({"/data/Arcaro2020.zip": body}) as srv:
        monkeypatch.setattr(arcaro, "ARCARO_SHA256", "0" * 64)
        with pytest.raises(InvalidInputError, match="sha256"):
            arcaro.fetch_arcaro2020(url=srv.url + "/data/Arcaro2020.zip", progress=False)
        assert not (tmp_path / "cache" / "neural" / "arcaro2020" / arcaro.ZIP_NAME).exists()
        monkeypatch.setattr(arcaro, "ARCARO_SHA256", hashlib.sha256(body).hexdigest())
        task = get_dataset("it-arcaro2020", mirror=srv.url + "/data")  # a folder URL holding the zip
        assert [p.panel for p in task.panels] == ["monkey1-PL", "monkey1-ML", "monkey2-ML"]
        assert len(srv.requests) == 2
    np.testing.assert_allclose(task.panels[2].responses, responses["Red"], rtol=1e-6, atol=1e-6)
    # cached: offline works and nothing is fetched again
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    again = get_dataset("it-arcaro2020")
    assert again.fingerprint() == task.fingerprint() and again.num_images() == 10
    info = again.info()
    assert info["panels"]["monkey1-ML"]["sites"] == 8 and len(info["files"]) == 2 and info["synthetic"]


def test_local_zip_and_folder_sources(release):
    folder, zpath, _, _ = release
    from_zip = arcaro.load_arcaro2020(zpath, panels=["monkey2-ML"])
    from_folder = arcaro.load_arcaro2020(folder, panels=["monkey2-ML"])
    assert from_zip[0].fingerprint() == from_folder[0].fingerprint()


def test_user_npz_format(tmp_path):
    rng = np.random.default_rng(1)
    trials = rng.normal(size=(4, 5, 6, 6, 3))
    trials[0, 0, 0, 0, 0] = np.nan  # a missing trial is allowed
    images = rng.integers(0, 256, size=(5, 100, 120, 3), dtype=np.uint8)
    path = tmp_path / "rec.npz"
    np.savez(path, trials=trials, images=images, region=np.array(["V4", "IT", "IT"]), subject="m9")
    v4, it = load_recordings_npz(path)
    assert (v4.panel, it.panel) == ("m9-V4", "m9-IT") and it.n_sites == 2 and v4.images.shape == (5, 224, 224, 3)
    np.testing.assert_allclose(it.responses, np.nanmean(trials, 0)[..., 1:])
    assert it.trials.shape == (4, 5, 6, 6, 2)
    np.savez(tmp_path / "bad.npz", responses=rng.normal(size=(5, 6, 6)), images=images)
    with pytest.raises(InvalidInputError, match=r"bad.npz: 'responses' must be \(image, X, Y, site\)"):
        load_recordings_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "few.npz", responses=rng.normal(size=(4, 6, 6, 2)), images=images)
    with pytest.raises(InvalidInputError, match="5 images but responses for 4"):
        load_recordings_npz(tmp_path / "few.npz")


def test_two_zips_of_the_same_name_never_share_an_extraction(tmp_path):
    a = synthetic.write_release_zip(tmp_path / "a" / arcaro.ZIP_NAME,
                                    synthetic.random_release(tmp_path / "ra", n_images=3, seed=1))
    b = synthetic.write_release_zip(tmp_path / "b" / arcaro.ZIP_NAME,
                                    synthetic.random_release(tmp_path / "rb", n_images=3, seed=2))
    (pa,) = arcaro.load_arcaro2020(a, panels=["monkey2-ML"])
    (pb,) = arcaro.load_arcaro2020(b, panels=["monkey2-ML"])
    assert pa.fingerprint() != pb.fingerprint()


@pytest.mark.parametrize("kind", ["extracted folder", "folder holding the zip"])
def test_data_download_from_a_local_mirror_copies_into_the_cache(kind, release, tmp_path, monkeypatch, capsys):
    """`alignbench data download it-arcaro2020 --mirror FOLDER` used to report the mirror's files and
    copy nothing; now the cache holds the release, and a later offline run finds it."""
    from alignbench.cli import main
    from benchmark.datasets import get_dataset

    folder, zpath, _, responses = release
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    mirror = folder if kind == "extracted folder" else zpath.parent
    assert main(["data", "download", "it-arcaro2020", "--mirror", str(mirror)]) == 0
    cached = tmp_path / "cache" / "neural" / "arcaro2020"
    assert str(cached) in capsys.readouterr().out
    assert all(Path(p).is_relative_to(cached) for p in get_dataset("it-arcaro2020").files())
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "1")
    again = get_dataset("it-arcaro2020")
    np.testing.assert_allclose(again.panels[2].responses, responses["Red"], rtol=1e-6, atol=1e-6)
