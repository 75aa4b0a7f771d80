"""Weights: offline messages, local files (safetensors, weights-only torch.load), refused pickles, and a
harmonized ``.h5`` downloaded from a loopback HTTP server (``ALIGNBENCH_WEIGHTS_MIRROR``)."""
from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from model_zoo import get_spec, load, wrap
from model_zoo.errors import InvalidInputError, WeightsUnavailableError
from model_zoo.fileio import sha256_file
from model_zoo.frameworks import import_torch
from model_zoo.weights import MIRROR_ENV, OFFLINE_ENV, url_cache_path

torch = import_torch()


def images(n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)


# ---------------------------------------------------------------------- offline, nothing cached
@pytest.mark.torch
def test_timm_offline_without_cache_is_one_clear_message(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    with pytest.raises(WeightsUnavailableError) as info:
        load("timm_efficientnet_b0")
    msg = str(info.value)
    assert "'timm_efficientnet_b0'" in msg and "huggingface.co/timm/efficientnet_b0.ra_in1k" in msg
    assert str(tmp_path / "hf-empty") in msg and "weights=PATH" in msg
    assert "Traceback" not in msg and len(msg) < 1200


@pytest.mark.torch
def test_timm_offline_flag_is_restored_after_the_call(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setenv(OFFLINE_ENV, "1")  # ours, not the hub's: it must not leak into the hub's state
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    with pytest.raises(WeightsUnavailableError):
        load("timm_efficientnet_b0")
    assert constants.HF_HUB_OFFLINE is False


@pytest.mark.torch
def test_torchvision_offline_names_the_checkpoint_file(monkeypatch, tmp_path):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(WeightsUnavailableError, match=r"tv_resnet18.*offline") as info:
        load("tv_resnet18")
    assert str(tmp_path / "torch-home" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in str(info.value)


@pytest.mark.torch
def test_url_checkpoint_offline_names_url_and_cache_path(monkeypatch):
    monkeypatch.setenv(OFFLINE_ENV, "1")
    spec = get_spec("bagnet33")
    with pytest.raises(WeightsUnavailableError) as info:
        load("bagnet33")
    msg = str(info.value)
    assert spec.weights_url in msg and str(url_cache_path(spec.weights_url)) in msg


def test_missing_local_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="no-such.safetensors"):
        load("tv_resnet18", weights=tmp_path / "no-such.safetensors")


# ---------------------------------------------------------------------- local files
@pytest.fixture(scope="module")
def trained_resnet18():
    """A torchvision ResNet-18 whose weights differ from the catalog's seeded random ones."""
    import torchvision

    torch.manual_seed(1234)
    net = torchvision.models.resnet18(num_classes=1000).eval()
    with torch.no_grad():  # move the BN statistics away from their init, so they are tested too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


@pytest.mark.torch
@pytest.mark.parametrize("fmt", ["safetensors", "state_dict_pt", "robustness_ckpt"])
def test_local_weights_file_is_loaded(fmt, trained_resnet18, tmp_path):
    state = trained_resnet18.state_dict()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "state_dict_pt":
        path = tmp_path / "w.pt"
        torch.save(state, path)
    else:  # robustness-library layout: nested, prefixed, with the attacker's copy (dropped on load)
        path = tmp_path / "w.ckpt"
        nested = {f"module.model.{k}": v for k, v in state.items()}
        nested.update({f"module.attacker.model.{k}": torch.zeros_like(v) for k, v in state.items()})
        torch.save({"model": nested, "epoch": 3}, path)
    adapter = load("tv_resnet18", weights=path)
    assert adapter.weights_sha256 == sha256_file(path)
    expected = wrap(trained_resnet18, get_spec("tv_resnet18").preprocess())
    x = images(2)
    np.testing.assert_allclose(adapter.predict(x), expected.predict(x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(load("tv_resnet18", weights="random").predict(x), expected.predict(x))


class _NotATensor:
    """Stands for any object whose unpickling would run code."""


@pytest.mark.torch
def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2)}, "payload": _NotATensor()}, path)
    with pytest.raises(InvalidInputError, match=r"evil\.pt: refused to load"):
        load("tv_resnet18", weights=path)


@pytest.mark.torch
def test_weights_of_another_architecture_are_a_short_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(path))
    with pytest.raises(InvalidInputError, match=r"other\.safetensors: weights do not fit the architecture"):
        load("tv_resnet18", weights=path)


# ---------------------------------------------------------------------- loopback download of a harmonized .h5
class _Server:
    """Serves files from a folder on 127.0.0.1; ``requests`` records the paths asked for."""

    def __init__(self, folder: Path):
        requests = self.requests = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def do_GET(self):  # noqa: N802
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    s = _Server(tmp_path / "served")
    (tmp_path / "served").mkdir()
    yield s
    s.close()


@pytest.mark.tf
@pytest.mark.network
def test_harmonized_h5_is_downloaded_cached_and_loaded(server, tmp_path, monkeypatch):
    """A full-model legacy .h5 in the released files' format (Keras ``model.save('x.h5')``), served on
    loopback: load() fetches it through the mirror, into the official URL's cache path, and then
    finds it offline."""
    from model_zoo.builders.harmonized import architecture

    spec = get_spec("harmonized_efficientnet_b0")
    import keras

    keras.utils.set_random_seed(7)
    source = architecture(spec)
    name = Path(spec.weights_url).name
    served = tmp_path / "served" / name
    source.save(str(served))  # legacy HDF5: model_weights/<layer>/<layer>/<var>
    monkeypatch.setenv(MIRROR_ENV, server.url + "/")
    monkeypatch.setenv("ALIGNBENCH_PROGRESS", "0")

    adapter = load("harmonized_efficientnet_b0")
    cached = url_cache_path(spec.weights_url)
    assert server.requests == [f"/{name}"]
    assert cached.is_file() and adapter.weights_sha256 == sha256_file(served) == sha256_file(cached)
    x = images(1)
    expected = wrap(source, spec.preprocess())
    np.testing.assert_allclose(adapter.predict(x), expected.predict(x), rtol=1e-4, atol=1e-4)

    monkeypatch.setenv(OFFLINE_ENV, "1")  # now from the cache, no request
    assert load("harmonized_efficientnet_b0").weights_sha256 == adapter.weights_sha256
    assert server.requests == [f"/{name}"]


@pytest.mark.network
def test_failed_download_is_one_clear_message(server, monkeypatch):
    from model_zoo.weights import fetch_url

    url = "https://example.invalid/models/missing_harmonized.h5"
    monkeypatch.setenv(MIRROR_ENV, server.url)
    with pytest.raises(WeightsUnavailableError) as info:
        fetch_url(url, model_id="m")
    msg = str(info.value)
    assert "download failed" in msg and "404" in msg and str(url_cache_path(url)) in msg
    assert not url_cache_path(url).exists() and not list(url_cache_path(url).parent.glob("*.part"))


@pytest.mark.network
def test_html_answer_is_not_taken_for_weights(server, tmp_path, monkeypatch):
    from model_zoo.weights import fetch_url

    (tmp_path / "served" / "login.h5").write_text("<!DOCTYPE html><html>sign in</html>")
    monkeypatch.setenv(MIRROR_ENV, server.url)
    with pytest.raises(WeightsUnavailableError, match="HTML page"):
        fetch_url("https://example.invalid/login.h5", model_id="m")
    assert not url_cache_path("https://example.invalid/login.h5").exists()


@pytest.mark.network
def test_sha256_mismatch_is_reported(server, tmp_path, monkeypatch):
    from model_zoo.weights import fetch_url

    (tmp_path / "served" / "w.bin").write_bytes(b"weights")
    monkeypatch.setenv(MIRROR_ENV, server.url)
    with pytest.raises(WeightsUnavailableError, match="expected 00+"):
        fetch_url("https://example.invalid/x/w.bin", model_id="m", sha256="0" * 64)


# ---------------------------------------------------------------------- no network, not --offline
@pytest.fixture
def no_network(monkeypatch) -> list:
    """No host accepts a connection (and no offline switch is set); returns the probes made."""
    import socket

    from model_zoo import weights

    probes: list = []

    def refuse(address, timeout=None):
        probes.append(address)
        raise ConnectionRefusedError("refused (test)")

    monkeypatch.setattr(weights, "_REACHABLE", {})
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return probes


def test_an_unreachable_host_is_probed_once_per_process_and_named(no_network, monkeypatch, tmp_path):
    """Without --offline and without network, each model must not spend its own retries: the host
    is probed once, every later download from it fails at once with the same clear reason."""
    from model_zoo import weights

    probes = no_network
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    for name in ("a.h5", "b.h5"):
        url = f"https://weights.example.org/models/{name}"
        with pytest.raises(WeightsUnavailableError, match=r"no network: weights\.example\.org is unreachable") as info:
            weights.fetch_url(url, model_id=name)
        assert str(url_cache_path(url)) in str(info.value)
    assert probes == [("weights.example.org", 443)]
    assert weights.downloads_allowed("https://weights.example.org/other") is False and len(probes) == 1
    with weights.offline_mode():  # offline mode answers without probing at all
        assert weights.downloads_allowed("https://elsewhere.example.org/x") is False
    assert len(probes) == 1


@pytest.mark.torch
def test_timm_without_network_goes_to_the_hub_cache_once(no_network, monkeypatch, tmp_path):
    from huggingface_hub import constants

    probes = no_network
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    for model in ("timm_efficientnet_b0", "timm_efficientnet_es"):
        with pytest.raises(WeightsUnavailableError, match=model):
            load(model)
    assert len(probes) == 1 and constants.HF_HUB_OFFLINE is False
