"""The psychophysics task end to end: generated Clicktionary release -> stimuli -> random/hand-built
torch models -> records, the runner's dispatch, the curves figure and the CLI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from benchmark import records, runner
from benchmark.datasets import clicktionary as ct
from benchmark.psychophysics import humans, scores, stimuli
from benchmark.psychophysics.data import PsychophysicsData, make_stimuli_from
from benchmark.tasks.psychophysics import PsychophysicsTask
from model_zoo.errors import InvalidInputError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

N_IMAGES = 16
HUMAN_ACC = 0.5 + 0.45 / (1 + np.exp(-(np.arange(10) - 4.5)))  # rises with the revealed fraction


class WindowModel(torch.nn.Module):
    """'animal' (class 0) when the mean pixel of a region is light, else class 500. ``centre``: the
    central square, where the revealed pixels are; otherwise the border frame, which is noise."""

    def __init__(self, centre: bool):
        super().__init__()
        self.centre = centre
        self.gain = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x):  # (N,3,224,224) in [0,255]
        mask = torch.zeros(224, 224, dtype=torch.bool)
        mask[64:160, 64:160] = True
        if not self.centre:
            mask = ~torch.zeros(224, 224, dtype=torch.bool)
            mask[16:208, 16:208] = False
        s = x.mean(1)[:, mask].mean(1) - 128.0
        out = torch.zeros(x.shape[0], 1000) + 0 * self.gain
        return out.index_put((torch.arange(x.shape[0]), torch.where(s > 0, 0, 500)), self.gain * s.abs() + 1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("psy")
    release = ct.write_synthetic_release(root / "release", N_IMAGES, n_participants=0, seed=1, luminance_cue=True)
    make_stimuli_from(str(release), root / "stimuli", seed=0)
    human = humans.write_synthetic_responses(root / humans.HUMAN_FILE, HUMAN_ACC, revelations=list(range(1, 11)),
                                             trials_per_level=400, seed=0)
    return root, PsychophysicsTask(PsychophysicsData(stimuli=root / "stimuli", human_data=human), n_boot=200)


def loader(model_id, *, weights="pretrained", device="cpu", precision="float32"):
    from model_zoo.wrap import wrap

    return wrap(WindowModel(centre=model_id == "looks-at-revealed"), batch_size=64)


def score(task, model, cfg, loader):
    """One model's outcome through the runner (the job every executor runs)."""
    return runner.run(dataclasses.replace(cfg, models=[model]), task=task, loader=loader).outcomes[0]


def config(root, **kw):
    return runner.RunConfig(dataset="psychophysics", results_dir=root / "results", batch_size=64, device="cpu",
                            progress=False, **kw)


def test_model_looking_at_revealed_pixels_is_more_human_like(setup):
    root, task = setup
    cfg = config(root)
    revealed = score(task, "looks-at-revealed", cfg, loader)
    background = score(task, "looks-at-background", cfg, loader)
    assert revealed.status == background.status == "ok", (revealed.error, background.error)
    r, b = revealed.record, background.record
    assert r["score"] > b["score"] + 3 * max(r["error"], b["error"]) / np.sqrt(200)
    assert r["model_accuracy"][-1] > r["model_accuracy"][0]  # more pixels, better decisions
    # the published score ignores the model
    assert r["published_code_score_buggy"] == b["published_code_score_buggy"]
    assert r["task"] == "psychophysics" and r["decision_rule"] == "argmax" and r["n_stimuli"] == N_IMAGES * 11
    assert records.validate_record(records.read_record(records.record_path(cfg.results_dir, "psychophysics",
                                                                           "looks-at-revealed"))) == []


def test_record_recomputes_from_its_scores_file(setup):
    root, task = setup
    cfg = config(root)
    rec = score(task, "looks-at-revealed", cfg, loader).record
    frame = pd.read_csv(cfg.results_dir / "psychophysics" / rec["scores_file"])
    per_level = frame.groupby("level")["correct"].mean()
    assert np.allclose(per_level.loc[rec["levels"]].to_numpy(), rec["model_accuracy"])
    assert (frame["animal"] == (frame["label"] < 398)).all()
    full = frame[frame["level"] == stimuli.FULL_LEVEL]
    assert len(full) == N_IMAGES and np.isclose(rec["top1_measured"], (full["pred"] == full["label"]).mean())
    human = pd.DataFrame(np.load(task.data.human_path)["data_human"], columns=["Revelation", "correct", "subject"])
    assert np.allclose(human[human.Revelation != 200].groupby("Revelation")["correct"].mean(), rec["human_accuracy"])
    expect = scores.curve_alignment(rec["model_accuracy"], rec["human_accuracy"], n_boot=200, seed=0)
    assert np.isclose(rec["score"], expect.mean)


def test_skip_then_recompute_on_new_rule(setup):
    root, task = setup
    cfg = config(root)
    score(task, "looks-at-revealed", cfg, loader)
    assert score(task, "looks-at-revealed", cfg, loader).status == "skipped"
    other_rule = PsychophysicsTask(task.data, decision_rule="summed_probability", n_boot=200)
    out = score(other_rule, "looks-at-revealed", cfg, loader)
    assert out.status == "ok" and out.record["decision_rule"] == "summed_probability"


def test_failure_is_recorded(setup):
    root, task = setup

    def broken(model_id, **kw):
        raise RuntimeError("no weights here")

    out = score(task, "broken", config(root), broken)
    assert out.status == "failed" and "no weights here" in out.error
    assert records.read_record(records.record_path(root / "results", "psychophysics", "broken"))["status"] == "failed"


def test_runner_dispatches_to_the_task_and_humans_baseline(setup):
    root, task = setup
    cfg = config(root, models=["looks-at-revealed"], force=True)
    summary = runner.run(cfg, task=task, loader=loader)
    assert [o.status for o in summary.outcomes] == ["ok"]
    base = summary.baseline
    assert base["model"] == "humans" and base["task"] == "psychophysics"
    assert np.isfinite(base["score"]) and base["flat_model_alignment"] < base["score"]
    assert (root / "results" / "psychophysics" / "_baseline-humans.json").is_file()


def test_level_mismatch_is_a_clear_error(setup, tmp_path):
    root, task = setup
    human = humans.write_synthetic_responses(tmp_path / "h.npz", [0.6] * 4, revelations=[1, 2, 3, 4])
    other = PsychophysicsTask(PsychophysicsData(stimuli=root / "stimuli", human_data=human), n_boot=50)
    with pytest.raises(InvalidInputError, match="10 levels.*has 4"):  # the data's problem, not a model's
        score(other, "looks-at-revealed", config(tmp_path), loader)


def test_plot_curves_and_cli(setup, tmp_path):
    from alignbench.cli import main

    root, task = setup
    cfg = config(root)
    score(task, "looks-at-revealed", cfg, loader)
    score(task, "looks-at-background", cfg, loader)
    out = tmp_path / "fig.png"
    assert main(["plot-curves", "--results", str(cfg.results_dir), "--model", "looks-at-revealed",
                 "--model", "looks-at-background", "--output", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-curves", "--results", str(cfg.results_dir), "--model", "nope", "--output", str(out)]) == 2
    assert main(["psychophysics", "make-stimuli", "--source", str(root / "release"), "--output",
                 str(tmp_path / "s"), "--seed", "0", "--limit", "2"]) == 0
    made = stimuli.read_stimuli(tmp_path / "s")
    assert len(made.rows) == 22
    same = {r["file"]: (root / "stimuli" / r["file"]).read_bytes() for r in made.rows}
    assert all((tmp_path / "s" / f).read_bytes() == b for f, b in same.items())  # same seed, same files
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["source"]["synthetic"] is True
