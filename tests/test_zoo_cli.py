"""``alignbench models list|show`` through ``alignbench.cli.main`` (no subprocess, no framework needed)."""
from __future__ import annotations

import csv
import io
import json

import pytest

from alignbench.cli import main
from model_zoo import list_models, register_model
from model_zoo import registry


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_list_all_and_paper(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0 and f"({len(list_models())} models)" in out
    header = out.splitlines()[0].split()
    assert header[:2] == ["id", "family"] and "display_name" in header and "top1" in header
    code, out, _ = run(capsys, "list", "--paper", "--format", "csv")
    rows = csv_rows(out)
    assert [r["id"] for r in rows] == [s.id for s in list_models(paper=True)]
    assert {r["in_paper"] for r in rows} <= {"yes", "likely", "guess"}
    assert "harmonized" not in {r["family"] for r in rows}
    code, out2, _ = run(capsys, "list", "--track", "paper", "--format", "csv")
    assert out2 == out


@pytest.mark.parametrize("argv, check", [
    (["--family", "robust"], lambda r: r["family"] == "robust"),
    (["--family", "robust", "--family", "transformer"], lambda r: r["family"] in ("robust", "transformer")),
    (["--source", "torchvision"], lambda r: r["source"] == "torchvision"),
    (["--source", "bagnet"], lambda r: r["id"].startswith("bagnet")),
    (["--harmonized"], lambda r: r["family"] == "harmonized"),
    (["--track", "harmonized"], lambda r: r["family"] == "harmonized"),
    (["--no-harmonized", "--framework", "keras"], lambda r: r["family"] != "harmonized" and r["framework"] == "keras"),
])
def test_list_filters(capsys, argv, check):
    code, out, _ = run(capsys, "list", *argv, "--format", "csv")
    rows = csv_rows(out)
    assert code == 0 and rows and all(check(r) for r in rows)
    code, everything, _ = run(capsys, "list", "--format", "csv")
    assert len(rows) < len(csv_rows(everything))


def test_list_json_and_long_columns(capsys):
    code, out, _ = run(capsys, "list", "--source", "bagnet", "--long", "--format", "json")
    docs = json.loads(out)
    assert code == 0 and {d["id"] for d in docs} == {"bagnet9", "bagnet17", "bagnet33"}
    assert all(d["weights_cached"] is False for d in docs)  # the test session's cache is empty
    code, out, _ = run(capsys, "list", "--family", "robust", "--long", "--format", "csv")
    row = csv_rows(out)[0]
    assert row["preprocessing"].startswith("224px bilinear, mean 0.485/0.456/0.406")
    assert row["licence"] and row["top1_source"] and row["cached"] == "no"


def test_list_track_registered(capsys):
    @register_model("cli_test_net", family="cnn", framework="torch", top1=1.5)
    def build(pretrained, weights_path):  # never called
        raise AssertionError

    try:
        code, out, _ = run(capsys, "list", "--track", "registered", "--format", "csv")
        assert [r["id"] for r in csv_rows(out)] == ["cli_test_net"]
    finally:
        registry.unregister_model("cli_test_net")


def test_show_prints_every_field(capsys):
    code, out, _ = run(capsys, "show", "keras_vgg16")
    assert code == 0
    fields = dict(line.split(None, 1) if "  " not in line else [p.strip() for p in line.split("  ", 1)]
                  for line in out.splitlines() if line.strip())
    assert fields["id"] == "keras_vgg16" and fields["display name"] == "VGG16 (Keras)"
    assert fields["family"] == "cnn" and fields["source"] == "keras: VGG16"
    assert "channels BGR" in fields["input"] and "no resize" in fields["input"]
    assert fields["published top-1"] == "71.3% (keras.io Applications table)"
    assert fields["licence"].startswith("Apache-2.0")
    assert "weights cached" in fields


def test_show_url_model_cached_flag_and_json(capsys, tmp_path, monkeypatch):
    from model_zoo import get_spec
    from model_zoo.fileio import atomic_write_bytes
    from model_zoo.weights import url_cache_path

    code, out, _ = run(capsys, "show", "bagnet33", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["weights_cached"] is False and doc["top1"] == get_spec("bagnet33").top1
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path))
    atomic_write_bytes(url_cache_path(get_spec("bagnet33").weights_url), b"x")
    code, out, _ = run(capsys, "show", "bagnet33")
    assert "weights cached   yes" in out and "input            224x224, no resize" in out


def test_show_harmonized_model(capsys):
    code, out, _ = run(capsys, "show", "harmonized_resnet50v2")
    assert code == 0 and "harmonized (harmonized)" not in out
    assert "family           harmonized" in out and "storage.googleapis.com" in out


def test_unknown_id_suggests_and_exits_2(capsys):
    code, out, err = run(capsys, "show", "resnet5")
    assert code == 2 and out == ""
    assert "unknown model 'resnet5'" in err and "tv_resnet50" in err and "Traceback" not in err


def test_bad_filter_value_exits_2(capsys):
    code, _, err = run(capsys, "list", "--family", "vit")
    assert code == 2 and "family='vit'" in err
    code, _, err = run(capsys, "list", "--track", "harmonized", "--no-harmonized")
    assert code == 2 and "contradicts" in err
