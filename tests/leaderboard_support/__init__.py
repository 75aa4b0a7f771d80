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


def site_results(root: Path) -> Path:
    """A results folder like the maintainers': two catalog models and the published points on
    ``clickme-val`` (a small fake dataset of that name), one valid submission whose text carries HTML
    payloads, and one preview submission that must be left out. No framework is imported."""
    import json

    from benchmark import runner
    from benchmark.tasks.maps import MapsTask
    from leaderboard import submit as submit_mod
    from leaderboard.loading import ModelSource
    from tests.runner_support.fakes import FakeDataset, fake_loader

    results = root / "results"
    repo = Path(__file__).resolve().parents[2]
    shutil.copytree(repo / "results" / "published", results / "published")
    ds = FakeDataset(n=12, name="clickme-val")
    config = runner.RunConfig(dataset=ds.name, models=["good-model", "anti-model"], results_dir=results,
                              batch_size=6, device="cpu", progress=False)
    runner.run(config, task=MapsTask(ds), loader=fake_loader())
    for model, top1 in (("good-model", 81.0), ("anti-model", 58.0)):
        path = results / ds.name / f"{model}.json"
        rec = json.loads(path.read_text())
        rec["top1_published"] = top1
        rec["weights_sha256"] = {"good-model": "1", "anti-model": "2"}[model] * 64
        path.write_text(json.dumps(rec))

    original = submit_mod.load_adapter
    submit_mod.load_adapter = lambda source, spec, **kw: _GradientAdapter(spec)
    try:
        dummy = root / "weights.safetensors"
        dummy.write_bytes(b"not read: the adapter is a stand-in")
        source = ModelSource("weights", name="test_resnet", path=dummy)
        m = meta(submitter=XSS_SUBMITTER, description=XSS_DESCRIPTION, model_name="Tiny <b>Net</b>",
                 family="transformer", top1_claimed=66.5, url="javascript:alert(1)")
        res = submit_mod.submit(source, m, datasets=[ds], results_dir=results, submission_id="tiny-net",
                                device="cpu", progress=False)
        assert res.ok, res.instructions
        preview = submit_mod.submit(source, meta(model_name="Preview Net"), datasets=[ds], results_dir=results,
                                    submission_id="preview-net", device="cpu", progress=False, limit=5)
        assert preview.ok, preview.instructions
    finally:
        submit_mod.load_adapter = original
    return results
