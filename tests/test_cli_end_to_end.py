"""The main job through the command line: generate a ClickMe-format set, run, plot, resume."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alignbench.cli import main

pytestmark = pytest.mark.slow


def test_cli_help_lists_commands_without_loading_frameworks():
    code = ("import sys; from alignbench.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'timm', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    for module in ("alignbench", "benchmark"):  # `python -m benchmark` is kept for compatibility
        help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True,
                                   check=True).stdout
        for command in ("run", "plot-pareto", "models", "data"):
            assert command in help_text


def test_run_then_plot_on_a_generated_dataset(tmp_path, capsys):
    from benchmark.datasets.synthetic import write_clickme_shards

    write_clickme_shards(tmp_path / "synthetic-val", 9, n_shards=2, seed=1)
    args = ["run", "--dataset", str(tmp_path / "synthetic-val"), "--model", "tv_resnet18", "--weights", "random",
            "--results", str(tmp_path / "results"), "--batch-size", "4", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tv_resnet18+random" in out and "ceiling" in out
    rec = json.loads((tmp_path / "results" / "synthetic-val" / "tv_resnet18+random.json").read_text())
    assert rec["status"] == "ok" and rec["n_images"] == 9
    assert rec["ceiling_source"].startswith("computed")
    assert (tmp_path / "results" / "synthetic-val" / "_baseline-center-bias.json").exists()
    # second run: nothing to do
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out
    assert main(["plot-pareto", "--dataset", "synthetic-val", "--results", str(tmp_path / "results"),
                 "--output", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_unknown_model_is_one_line_with_suggestions(tmp_path, capsys):
    assert main(["run", "--model", "tv_resnet5O", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "tv_resnet50" in err and "Traceback" not in err


def test_run_progress_lines_carry_count_elapsed_and_an_eta_from_computed_models():
    from alignbench.report import RunProgress
    from benchmark.job import ModelOutcome

    ticks = iter([0.0, 10.0, 10.5, 40.0])
    progress = RunProgress(clock=lambda: next(ticks))
    first = progress.line(0, 3, ModelOutcome("a", "ok", record={"task": "maps", "n": 4}, seconds=10.0))
    assert first.startswith("[1/3, 0:00:10 elapsed, ETA 0:00:20] a: ok")
    # a reused record costs nothing and does not shorten the estimate
    second = progress.line(1, 3, ModelOutcome("b", "skipped", record={"task": "maps"}, seconds=0.0))
    assert second.startswith("[2/3, 0:00:10 elapsed, ETA 0:00:10] b: skipped")
    last = progress.line(2, 3, ModelOutcome("c", "failed", error="boom", seconds=29.0))
    assert last == "[3/3, 0:00:40 elapsed] c: FAILED (boom)"
