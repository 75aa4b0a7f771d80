"""`alignbench run --explainer`: the explainer is part of the record's identity, recorded in full,
names non-default records ``<model>+<explainer>``, and `plot-pareto --explainer` draws its records."""
from __future__ import annotations

import json

import numpy as np
import pytest

from alignbench.cli import main
from benchmark import records, runner
from benchmark.job import identity, ModelRef
from benchmark.plots import measured_points
from benchmark.tasks.maps import MapsTask
from model_zoo import wrap
from model_zoo.errors import InvalidInputError
from model_zoo.explainers import get_explainer
from model_zoo.frameworks import import_torch
from tests.runner_support.fakes import FakeDataset

torch = import_torch()
pytestmark = [pytest.mark.torch]


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 8, stride=8)
        self.head = torch.nn.Linear(6, 1000)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x / 255.0)).mean(dim=(2, 3)))


def loader(model_id, *, weights="pretrained", device="cpu", precision="float32"):
    return wrap(Tiny(), None)


def _run(tmp_path, dataset, explainer=None, **kw):
    config = runner.RunConfig(dataset=dataset.name, models=["tiny"], results_dir=tmp_path, batch_size=4,
                              device="cpu", progress=False, **kw)
    return runner.run(config, task=MapsTask(dataset, explainer=explainer), loader=loader)


def test_two_explainers_give_two_records_side_by_side(tmp_path):
    ds = FakeDataset(n=5)
    first = _run(tmp_path, ds)
    sweep = _run(tmp_path, ds, explainer="paper-sweep")
    assert first.outcomes[0].status == sweep.outcomes[0].status == "ok"
    folder = tmp_path / ds.name
    default, other = records.read_record(folder / "tiny.json"), records.read_record(folder / "tiny+paper-sweep.json")
    assert (folder / "tiny+paper-sweep.scores.csv").is_file() and (folder / "tiny.scores.csv").is_file()
    assert default["explainer"] == get_explainer("saliency").description
    assert other["explainer_spec"] == get_explainer("paper-sweep").to_dict()
    assert other["identity"]["settings"]["explainer"]["reduction"] == "abs-mean"
    assert default["identity"]["settings"]["explainer"]["name"] == "saliency"
    assert default["spearman_mean"] != other["spearman_mean"]  # different maps, different scores
    # the per-image scores are those of the explainer's maps
    maps = loader("tiny").explain(ds.images, ds.labels, "paper-sweep")
    from benchmark.metrics import spearman

    np.testing.assert_allclose(records.read_scores(folder / "tiny+paper-sweep.scores.csv")["spearman"],
                               spearman(maps, ds.heat), atol=1e-6)
    # each is reused by its own explainer only
    assert _run(tmp_path, ds).outcomes[0].status == "skipped"
    assert _run(tmp_path, ds, explainer="paper-sweep").outcomes[0].status == "skipped"


def test_the_explainer_is_part_of_the_identity():
    ds = FakeDataset(n=2)
    ref = ModelRef.plain("tiny")
    ids = {name: identity(MapsTask(ds, explainer=name), ref, precision="float32", limit=None)
           for name in ("saliency", "smoothgrad", "paper-release")}
    assert len({json.dumps(i, sort_keys=True) for i in ids.values()}) == 3
    assert MapsTask(ds).record_tags() == [] and MapsTask(ds, explainer="smoothgrad").record_tags() == ["smoothgrad"]


def test_an_unknown_explainer_lists_the_names():
    with pytest.raises(InvalidInputError, match=r"unknown explainer 'salincy': known explainers are .*paper-release"):
        MapsTask(FakeDataset(n=2), explainer="salincy")


def test_plot_pareto_draws_one_explainer(tmp_path):
    ds = FakeDataset(n=5)
    _run(tmp_path, ds)
    _run(tmp_path, ds, explainer="gradient-x-input")
    points, notes, _ = measured_points(tmp_path, ds.name, "measured")
    assert [p.model for p in points] == ["tiny"]
    assert any("gradient-x-input (1)" in n for n in notes)
    points, notes, _ = measured_points(tmp_path, ds.name, "measured", explainer="gradient-x-input")
    assert [p.model for p in points] == ["tiny+gradient-x-input"]
    assert any("saliency (1)" in n for n in notes)
    from benchmark.plots import plot_pareto

    with pytest.raises(InvalidInputError, match="no records of that explainer.*gradient-x-input, saliency"):
        plot_pareto(tmp_path, ds.name, tmp_path / "f.png", explainer="grad-cam")
    # records written before explainers were data carry only the description: read as saliency
    assert records.explainer_name({"explainer": get_explainer().description}) == "saliency"


def test_records_of_several_precisions_drawn_together_are_noted(tmp_path):
    ds = FakeDataset(n=3)
    _run(tmp_path, ds)
    _run(tmp_path, ds, precision="bfloat16")
    points, notes, _ = measured_points(tmp_path, ds.name, "measured")
    assert sorted(p.model for p in points) == ["tiny", "tiny+bf16"]
    assert any("several precisions" in n and "bfloat16, float32" in n for n in notes)
    from benchmark.plots import plot_pareto

    written, _ = plot_pareto(tmp_path, ds.name, tmp_path / "pareto.png")
    assert written and written[0].stat().st_size > 1000


@pytest.mark.slow
def test_cli_run_and_plot_with_an_explainer(tmp_path, capsys):
    from benchmark.datasets.synthetic import write_clickme_shards

    write_clickme_shards(tmp_path / "synthetic-val", 4, n_shards=1, seed=1)
    base = ["run", "--dataset", str(tmp_path / "synthetic-val"), "--model", "tv_mnasnet0_5", "--weights", "random",
            "--results", str(tmp_path / "results"), "--batch-size", "4", "--device", "cpu", "--no-progress"]
    assert main(base + ["--explainer", "paper-release"]) == 0
    folder = tmp_path / "results" / "synthetic-val"
    rec = json.loads((folder / "tv_mnasnet0_5+random+paper-release.json").read_text())
    assert rec["status"] == "ok" and rec["explainer_spec"]["target"] == "probability"
    assert main(base + ["--explainer", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown explainer 'nope'" in err and "smoothgrad" in err and "Traceback" not in err
    assert main(["plot-pareto", "--dataset", "synthetic-val", "--results", str(tmp_path / "results"),
                 "--explainer", "paper-release", "--accuracy", "measured", "--output", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").stat().st_size > 1000
