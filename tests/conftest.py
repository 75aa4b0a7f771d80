"""Shared pytest fixtures. Data fixtures are generated (never downloaded) and session-scoped."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every test session gets its own ``$ALIGNBENCH_CACHE``: tests never read or fill the user's cache."""
    old = os.environ.get("ALIGNBENCH_CACHE")
    os.environ["ALIGNBENCH_CACHE"] = str(tmp_path_factory.mktemp("alignbench-cache"))
    yield
    if old is None:
        os.environ.pop("ALIGNBENCH_CACHE", None)
    else:
        os.environ["ALIGNBENCH_CACHE"] = old


CLICKME_FIXTURE = {"n_images": 25, "n_shards": 3, "n_participants": 4, "n_classes": 10, "seed": 0}


@pytest.fixture(scope="session")
def clickme_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic ClickMe-format folder: 25 images (9+8+8) in val-0..2.tfrecords, 4 participants each,
    10 classes spread over ImageNet 0..999, plus manifest.json. Read-only: copy it before modifying."""
    from benchmark.datasets.synthetic import write_clickme_shards

    out = tmp_path_factory.mktemp("clickme-synthetic")
    write_clickme_shards(out, CLICKME_FIXTURE["n_images"], n_shards=CLICKME_FIXTURE["n_shards"],
                         n_participants=CLICKME_FIXTURE["n_participants"], n_classes=CLICKME_FIXTURE["n_classes"],
                         seed=CLICKME_FIXTURE["seed"])
    return out


@pytest.fixture(scope="session")
def clickme_dataset(clickme_dir: Path):
    """:class:`benchmark.datasets.ClickMeDataset` over :func:`clickme_dir`."""
    from benchmark.datasets import get_dataset

    return get_dataset(str(clickme_dir))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when tests that need a machine tool (Chromium, bubblewrap) were skipped for its absence:
    they were NOT run, whatever the exit status. ``.ci/run`` makes such an absence a failure instead."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {}
    for report in skipped:
        text = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        for marker in ("BROWSER TESTS NOT RUN", "SANDBOX TESTS NOT RUN"):
            if marker in text:
                reasons.setdefault(marker, [0, text.split("Skipped: ", 1)[-1]])[0] += 1
    for marker, (count, text) in sorted(reasons.items()):
        terminalreporter.write_sep("!", f"{count} test(s) SKIPPED: {text}", yellow=True, bold=True)
