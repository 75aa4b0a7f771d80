"""Helpers shared by the leaderboard tests: submitter metadata and a real, tiny submission bundle
(timm ``test_resnet`` with seeded random weights, scored by the runner on a given dataset)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ARCH = "test_resnet"  # a few thousand parameters: a real timm network that runs in a blink on CPU


def meta(**overrides: Any):
    from leaderboard.bundle import SubmissionMeta

    fields = dict(submitter="Ada Tester", model_name="Tiny Net", description="A tiny random ResNet for tests.",
                  licence="MIT", affiliation="Test Lab", family="cnn", top1_claimed=12.5,
                  top1_method="timm validate.py on ImageNet val")
    fields.update(overrides)
    return SubmissionMeta(**fields)


def make_bundle(results_dir: Path, dataset: Any, *, submission_id: str = "tiny-net", **kw: Any):
    """Submit ``test_resnet`` (seeded random weights) on ``dataset``; returns the SubmitResult."""
    from leaderboard.loading import ModelSource
    from leaderboard.submit import submit

    kw.setdefault("meta", meta())
    m = kw.pop("meta")
    return submit(ModelSource("timm", name=ARCH, weights="random"), m, datasets=[dataset], results_dir=results_dir,
                  submission_id=submission_id, device="cpu", batch_size=32, progress=False, **kw)


def copy_bundle(src: Path, results_dir: Path, new_id: str | None = None) -> Path:
    """Copy a bundle into ``results_dir/submissions`` (renaming its files when ``new_id`` is given)."""
    import json

    new_id = new_id or src.name
    dest = results_dir / "submissions" / new_id
    shutil.copytree(src, dest)
    if new_id != src.name:
        for path in list(dest.rglob(f"{src.name}.*")):
            path.rename(path.with_name(path.name.replace(src.name, new_id, 1)))
        for rec in dest.glob(f"*/{new_id}.json"):
            data = json.loads(rec.read_text())
            data["model"] = new_id
            data["scores_file"] = f"{new_id}.scores.csv"
            rec.write_text(json.dumps(data))
        sub = json.loads((dest / "submission.json").read_text())
        sub["id"] = new_id
        (dest / "submission.json").write_text(json.dumps(sub))
    return dest


# ----------------------------------------------------------------------------------- a site's results
XSS_DESCRIPTION = "<script>document.body.setAttribute('data-pwned', 'script')</script>"
XSS_SUBMITTER = "<img src=x onerror=\"document.body.setAttribute('data-pwned', 'img')\">"


class _GradientAdapter:
    """A fake submitted model (no framework): saliency = the object's channel plus a left-right
    gradient, so its scores differ from the catalog's fake models."""

    framework = "torch"

    def __init__(self, spec):
        import hashlib

        self.spec = spec
        self.weights_sha256 = hashlib.sha256(spec.id.encode("utf-8")).hexdigest()  # one model per id

    def predict_and_saliency(self, images, labels):
        import numpy as np

        n = len(images)
        logits = np.zeros((n, 1000), np.float32)
        logits[np.arange(n), (np.asarray(labels) + np.arange(n) % 2) % 1000] = 1.0  # right on half of them
        ramp = np.linspace(0, 0.6, 224, dtype=np.float32)[None, None, :]
        return logits, (images[..., 0] / 255.0 + ramp).astype(np.float32)


SITE_PINS = "known_datasets.json"  # beside the results folder site_results() makes


def site_results(root: Path) -> Path:
    """A results folder like the maintainers', and its pin table ``root/known_datasets.json``
    (:data:`SITE_PINS`), no framework imported:

    * ``clickme-val`` (a small fake dataset of that name, pinned): two catalog models (``good-model`` with
      its saved maps and the dataset's gallery reference, ``--save-maps``), a random-weight
      control (``anti-model+random``), the published points, one valid submission whose text carries
      HTML payloads (``tiny-net``), one preview submission that must be left out, and a catalog record of
      another explainer (``good-model+paper-release``, never ranked with saliency's);
    * ``synthetic-fake`` (generated, pinned as synthetic): a catalog model and a submission (``tiny-synth``);
    * ``other-fake`` (in no table: unverified): a catalog model and a submission (``tiny-other``).
    """
    import json

    from benchmark import runner
    from benchmark.tasks.maps import MapsTask
    from leaderboard import submit as submit_mod
    from leaderboard.loading import Loaded, ModelSource, Resolved
    from model_zoo.explainers import get_explainer
    from tests.runner_support.fakes import FakeDataset, fake_loader

    results = root / "results"
    ds = FakeDataset(n=12, name="clickme-val")
    synth = FakeDataset(n=8, seed=1, name="synthetic-fake")
    synth.synthetic = True
    other = FakeDataset(n=6, seed=2, name="other-fake")
    catalog = [(ds, "good-model", "pretrained", 81.0), (ds, "anti-model", "pretrained", 58.0),
               (ds, "anti-model", "random", 70.0), (synth, "good-model", "pretrained", 81.0),
               (other, "good-model", "pretrained", 81.0)]
    for i, (data, model, weights, top1) in enumerate(catalog):
        # the first run also saves its maps: its page's gallery and clickme-val's gallery reference
        config = runner.RunConfig(dataset=data.name, models=[model], results_dir=results, batch_size=6, device="cpu",
                                  progress=False, weights=weights, save_maps=i == 0)
        outcome = runner.run(config, task=MapsTask(data), loader=fake_loader()).outcomes[0]
        path = results / data.name / f"{outcome.model}.json"
        rec = json.loads(path.read_text())
        rec["top1_published"] = top1
        rec["weights_sha256"] = str(i + 1) * 64
        path.write_text(json.dumps(rec))
    other_explainer = json.loads((results / ds.name / "good-model.json").read_text())
    other_explainer.update(model="good-model+paper-release", score=0.99 * other_explainer["ceiling"], normalized=0.99,
                           explainer_spec=get_explainer("paper-release").to_dict(),
                           explainer=get_explainer("paper-release").description)
    (results / ds.name / "good-model+paper-release.json").write_text(json.dumps(other_explainer))
    pin_table(root / SITE_PINS, ds, synth, results_dir=results)

    original = submit_mod.load_submitted
    submit_mod.load_submitted = lambda source, spec, **kw: Loaded(_GradientAdapter(spec), Resolved(None, "a stand-in"),
                                                                   "file:" + "f" * 64)
    try:
        dummy = root / "weights.safetensors"
        dummy.write_bytes(b"not read: the adapter is a stand-in")
        source = ModelSource("weights", name="test_resnet", path=dummy)
        m = meta(submitter=XSS_SUBMITTER, description=XSS_DESCRIPTION, model_name="Tiny <b>Net</b>",
                 family="transformer", top1_claimed=66.5, url="javascript:alert(1)")
        for sid, data, kw in (("tiny-net", ds, {"meta": m}), ("preview-net", ds, {"limit": 5}),
                              ("tiny-synth", synth, {}), ("tiny-other", other, {})):
            name = {"preview-net": "Preview Net", "tiny-synth": "Tiny Synth", "tiny-other": "Tiny Other"}.get(sid)
            res = submit_mod.submit(source, kw.pop("meta", None) or meta(model_name=name), datasets=[data],
                                    results_dir=results, submission_id=sid, device="cpu", progress=False, **kw)
            assert res.ok, res.instructions
    finally:
        submit_mod.load_submitted = original
    return results


# ----------------------------------------------------------------------------------- pins and the sandbox
def pin_table(path: Path, *datasets: Any, results_dir: Path | None = None) -> Path:
    """A known-datasets table at ``path``: the package's entries plus ``datasets`` pinned by
    :func:`leaderboard.pins.measure_pin`, exactly as ``alignbench leaderboard pin --write`` does."""
    from leaderboard.pins import load_table, measure_pin

    table = load_table()
    for ds in datasets:
        table = table.with_pin(measure_pin(ds, results_dir or path.parent / "pin-results", command="tests"))
    table.write(path)
    return path


def require_sandbox() -> None:
    """Fail (CI: ``ALIGNBENCH_REQUIRE_SANDBOX=1``, set by .ci/run) or skip with the reason when no
    bubblewrap sandbox can be set up here: the sandbox path is never silently passed off as covered."""
    import os

    import pytest

    from leaderboard.sandbox import sandbox_status

    ok, why = sandbox_status()
    if ok:
        return
    message = f"SANDBOX TESTS NOT RUN: {why}"
    if os.environ.get("ALIGNBENCH_REQUIRE_SANDBOX") == "1":
        pytest.fail(message + " (ALIGNBENCH_REQUIRE_SANDBOX=1: .ci/run installs bubblewrap)")
    pytest.skip(message)
