"""The psychophysics benchmark through ``alignbench.cli.main`` on generated data in the release formats:
a generated Clicktionary release, generated per-trial human responses (``data_for_zahra.npz``
layout) and a random-weight catalog model (MNASNet-0.5: the cheapest forward pass)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark import records
from alignbench.cli import main
from benchmark.datasets import clicktionary as ct
from benchmark.psychophysics import humans, stimuli

pytestmark = [pytest.mark.slow, pytest.mark.torch]

N_IMAGES = 4
HUMAN_ACC = 0.5 + 0.45 / (1 + np.exp(-(np.arange(10) - 4.5)))


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """A fresh cache, the Clicktionary release reachable by name, no human data anywhere yet."""
    release = ct.write_synthetic_release(tmp_path / "release", N_IMAGES, n_participants=0, seed=3, luminance_cue=True)
    monkeypatch.setenv("ALIGNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNBENCH_OFFLINE", "0")  # `--offline` sets it in os.environ: undone at teardown
    monkeypatch.setenv(ct.URL_ENV, str(release))
    monkeypatch.delenv(humans.URL_ENV, raising=False)
    return tmp_path


def _run(tmp_path, *extra):
    return main(["run", "--model", "tv_mnasnet0_5", "--weights", "random", "--results", str(tmp_path / "results"),
                 "--batch-size", "32", "--device", "cpu", "--no-progress", *extra])


def test_missing_human_data_is_one_clear_line(env, capsys):
    assert _run(env, "--dataset", "psychophysics", "--offline") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert humans.HUMAN_FILE in err and humans.URL_ENV in err and "cache" in err
    assert not (env / "results" / "psychophysics").exists()  # nothing half-written


def test_run_plot_pareto_and_curves(env, capsys, monkeypatch):
    humans_dir = env / "humans"
    humans.write_synthetic_responses(humans_dir / humans.HUMAN_FILE, HUMAN_ACC, revelations=list(range(1, 11)),
                                     trials_per_level=100, seed=0)
    monkeypatch.setenv(humans.URL_ENV, str(humans_dir))  # a local mirror folder holding the file
    assert _run(env, "--dataset", "psychophysics", "--decision-rule", "summed_probability") == 0
    out = capsys.readouterr().out
    assert "tv_mnasnet0_5+random" in out and "Humans (split-half of trials)" in out
    folder = env / "results" / "psychophysics"
    rec = records.read_record(folder / "tv_mnasnet0_5+random.json")
    assert rec["task"] == "psychophysics" and rec["decision_rule"] == "summed_probability"
    assert rec["n_images"] == N_IMAGES and rec["n_stimuli"] == N_IMAGES * stimuli.N_LEVELS
    assert len(rec["model_accuracy"]) == len(rec["human_accuracy"]) == 10 and np.isfinite(rec["score"])
    assert "model-independent" in rec["published_code_score_buggy"]["note"]
    assert rec["top1_published"] is None and 0 <= rec["top1_measured"] <= 1  # random weights: measured axis
    assert records.read_record(folder / "_baseline-humans.json")["model"] == "humans"
    # the stimuli were generated once into the cache, keyed by the release
    made = list((env / "cache" / "psychophysics").glob("stimuli-seed0-*/manifest.csv"))
    assert len(made) == 1

    # same rule again: nothing to do (a new rule recomputes: test_psychophysics_task)
    assert _run(env, "--dataset", "psychophysics", "--decision-rule", "summed_probability") == 0
    assert "skipped" in capsys.readouterr().out

    assert main(["plot-pareto", "--dataset", "psychophysics", "--results", str(env / "results"),
                 "--output", str(env / "fig5b.png")]) == 0
    assert main(["plot-curves", "--results", str(env / "results"), "--output", str(env / "fig5c.png")]) == 0
    for name in ("fig5b.png", "fig5c.png"):
        assert (env / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_make_stimuli_then_run_on_the_folder(env, capsys):
    out = env / "my-stimuli"
    assert main(["psychophysics", "make-stimuli", "--output", str(out), "--seed", "7", "--limit", "2"]) == 0
    assert "wrote 22 stimuli" in capsys.readouterr().out
    made = stimuli.read_stimuli(out)
    assert made.params["seed"] == 7 and made.params["source"]["dataset"] == "clicktionary"
    humans.write_synthetic_responses(out / humans.HUMAN_FILE, HUMAN_ACC, revelations=list(range(1, 11)),
                                     trials_per_level=40, seed=1)
    assert _run(env, "--dataset", str(out)) == 0
    rec = records.read_record(env / "results" / "my-stimuli" / "tv_mnasnet0_5+random.json")
    assert rec["dataset"] == "my-stimuli" and rec["n_images"] == 2 and rec["decision_rule"] == "argmax"
