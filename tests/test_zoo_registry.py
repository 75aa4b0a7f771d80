"""Third-party models: the ``register_model`` decorator and the ``alignbench.models`` entry-point group.

The entry point is exercised for real: a tiny installed distribution (a ``.dist-info`` folder with an
``entry_points.txt``) is put on ``sys.path``, and ``importlib.metadata`` finds it as it would a
pip-installed plugin.
"""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import model_zoo
from model_zoo import registry
from model_zoo.errors import InvalidInputError, UnknownModelError
from model_zoo.frameworks import import_torch

torch = import_torch()
pytestmark = pytest.mark.torch


class TinyNet(torch.nn.Module):
    """(N,3,H,W) -> (N,1000): enough to check logits, saliency and weights plumbing."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.fc = torch.nn.Linear(4, 1000)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))


def images(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)


@pytest.fixture
def clean_registry():
    before = dict(registry._user)
    yield
    registry._user.clear()
    registry._user.update(before)


# ---------------------------------------------------------------------- decorator
def test_decorator_registers_a_loadable_model(clean_registry, tmp_path):
    calls = []

    @model_zoo.register_model("my_tinynet", family="cnn", framework="torch", top1=12.5,
                              preprocess={"input_size": 112, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)},
                              licence="MIT", lab="demo lab")
    def build(pretrained, weights_path):
        calls.append((pretrained, weights_path))
        net = TinyNet()
        if weights_path is not None:
            net.load_state_dict(torch.load(weights_path, weights_only=True))
        return net

    spec = model_zoo.get_spec("my_tinynet")
    assert (spec.family, spec.source, spec.top1, spec.licence, spec.input_size) == ("cnn", "registered", 12.5, "MIT", 112)
    assert spec.meta == {"lab": "demo lab"}
    assert "my_tinynet" in [s.id for s in model_zoo.list_models(source="registered")]
    assert "my_tinynet" not in [s.id for s in model_zoo.list_models(paper=True)]

    a = model_zoo.load("my_tinynet", weights="random")
    b = model_zoo.load("my_tinynet", weights="random")
    assert calls[:2] == [(False, None), (False, None)]
    maps = a.saliency(images(), np.array([1, 999]))
    assert maps.shape == (2, 224, 224) and maps.max() > 0
    np.testing.assert_array_equal(a.predict(images()), b.predict(images()))  # seeded random weights

    path = tmp_path / "tiny.pt"
    torch.save(a.module.state_dict(), path)
    c = model_zoo.load("my_tinynet", weights=path)
    assert calls[-1] == (False, path)
    np.testing.assert_allclose(c.predict(images()), a.predict(images()), rtol=1e-6)


def test_decorator_rejects_bad_registrations(clean_registry):
    with pytest.raises(InvalidInputError, match="family 'vit'"):
        model_zoo.register_model("x", family="vit", framework="torch")
    with pytest.raises(InvalidInputError, match="catalog id"):
        model_zoo.register_model("tv_resnet50", family="cnn", framework="torch")(lambda p, w: TinyNet())
    with pytest.raises(InvalidInputError, match=r"accept \(pretrained, weights_path\)"):
        model_zoo.register_model("y", family="cnn", framework="torch")(lambda: TinyNet())
    def first(pretrained, weights_path):
        return TinyNet()

    def second(pretrained, weights_path):
        return TinyNet()

    model_zoo.register_model("z", family="cnn", framework="torch")(first)
    model_zoo.register_model("z", family="cnn", framework="torch")(first)  # re-running the same code is fine
    with pytest.raises(InvalidInputError, match="already registered"):
        model_zoo.register_model("z", family="cnn", framework="torch")(second)


# ---------------------------------------------------------------------- entry points
PLUGIN = '''
import torch
import model_zoo


class PluginNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 1000)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


@model_zoo.register_model("{name}", family="robust", framework="torch", display_name="Plugin net")
def plugin_net(pretrained, weights_path):
    return PluginNet()
'''


def _install_plugin(tmp_path: Path, dist: str, entry_points: str, modules: dict[str, str]) -> Path:
    site = tmp_path / "site"
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for name, code in modules.items():
        (site / f"{name}.py").write_text(code)
    return site


@pytest.fixture
def plugin_path(monkeypatch, clean_registry):
    added: list[str] = []

    def add(site: Path) -> None:
        monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        added.append(str(site))

    yield add
    for mod in [m for m in sys.modules if m.startswith("abplugin_")]:
        del sys.modules[mod]
    for site in added:
        if site in sys.path:
            sys.path.remove(site)
    importlib.invalidate_caches()
    registry.refresh_plugins()


def test_entry_point_module_registers_its_models(tmp_path, plugin_path):
    site = _install_plugin(tmp_path, "abplugin-dist", """
        [alignbench.models]
        demo = abplugin_models
        """, {"abplugin_models": PLUGIN.format(name="plugin_net")})
    with pytest.raises(UnknownModelError):
        model_zoo.get_spec("plugin_net")
    plugin_path(site)
    registry.refresh_plugins()
    assert registry.plugin_errors() == []
    spec = model_zoo.get_spec("plugin_net")
    assert (spec.display_name, spec.family) == ("Plugin net", "robust")
    assert "plugin_net" in [s.id for s in model_zoo.list_models(family="robust")]
    adapter = model_zoo.load("plugin_net", weights="random")
    assert adapter.predict(images(1)).shape == (1, 1000)


def test_entry_point_callable_is_called_and_a_broken_plugin_only_warns(tmp_path, plugin_path):
    site = _install_plugin(tmp_path, "abplugin-dist2", """
        [alignbench.models]
        a_broken = abplugin_missing_module
        b_callable = abplugin_cb:register_all
        """, {"abplugin_cb": "import model_zoo, torch\n"
              "def register_all():\n"
              "    model_zoo.register_model('cb_net', family='cnn', framework='torch')("
              "lambda p, w: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(1000)))\n"})
    plugin_path(site)
    with pytest.warns(RuntimeWarning, match="'a_broken'.*failed to load"):
        registry.refresh_plugins()
    assert len(registry.plugin_errors()) == 1 and "abplugin_missing_module" in registry.plugin_errors()[0]
    assert model_zoo.get_spec("cb_net").family == "cnn"
    assert len(model_zoo.list_models(paper=True)) > 80  # the catalog is intact


def test_pyproject_declares_the_entry_point_group():
    import tomllib

    doc = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert registry.ENTRY_POINT_GROUP == "alignbench.models"
    assert registry.ENTRY_POINT_GROUP in doc["project"]["entry-points"]


def test_harmonized_rows_name_an_existing_base_model():
    from model_zoo import get_spec, list_models

    harmonized = list_models(harmonized=True)
    bases = {s.id: s.base_model for s in harmonized if s.base_model}
    assert len(bases) >= 4  # the paper's four harmonized models at least
    for hid, base in bases.items():
        spec = get_spec(base)
        assert not spec.harmonized and spec.id == base, hid
