"""Numbers do not move: today's code reproduces every number of the golden records.

``tests/golden/v1/`` holds the records (schema 1) that alignbench wrote for every task (ClickMe-format
maps, the Clicktionary layout, psychophysics, IT recordings) and two random-weight models (a torch
and a Keras one) on generated data, before the task/job spine replaced the runner. This test
regenerates them with today's code (``tests/golden/make_golden.py``) and compares every number of
every record and per-image scores file: to 1e-12 on the machine kind the fixture was written on
(``machine.json``), to 1e-6 elsewhere, where float32 kernels differ (a warning says so).
Field names that changed on purpose are mapped by :func:`benchmark.records.upgrade` (schema 1 -> 2)
and :data:`RENAMED`; anything else missing is a failure.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import warnings
from pathlib import Path

import pytest

from benchmark import records

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.tf]

GOLDEN = Path(__file__).parent / "golden" / "v1"
sys.path.insert(0, str(GOLDEN.parent))
import make_golden  # noqa: E402

# bookkeeping that is not a result: when and where it ran, how long it took, file digests of
# formatted text, and fields of the record that describe rather than measure
IGNORED = {"provenance", "seconds", "date", "schema", "scores_sha256", "_path", "identity"}
RENAMED: dict[str, str] = {}  # schema-1 field -> today's, beyond records.upgrade
# fields whose definition changed on purpose, per task: the neural dataset's fingerprint covered the
# task's settings (layers, PLS components, ...) as well as the recordings; a dataset is data only
# now, and the settings are part of each record's identity instead
CHANGED = {"neural": {"dataset_fingerprint"}}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden-now")
    make_golden.main(out)
    return out


@pytest.fixture(scope="module")
def tolerance(regenerated):
    then = json.loads((GOLDEN / "machine.json").read_text())
    now = json.loads((regenerated / "machine.json").read_text())
    if then == now:
        return 1e-12
    warnings.warn(f"golden records were written on {then}, this is {now}: comparing to 1e-6 (float32 kernels "
                  "differ between CPU kinds and library versions)", stacklevel=1)
    return 1e-6


def _compare(a, b, where: str, tol: float, problems: list[str], changed: frozenset = frozenset()) -> None:
    if isinstance(a, dict):
        if not isinstance(b, dict):
            problems.append(f"{where}: was an object, now {b!r:.80}")
            return
        for key, value in a.items():
            if key in IGNORED or key in changed:
                continue
            new_key = RENAMED.get(key, key)
            if new_key not in b:
                problems.append(f"{where}.{key}: missing now")
                continue
            _compare(value, b[new_key], f"{where}.{key}", tol, problems)
    elif isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            problems.append(f"{where}: list of {len(a)} was, now {b!r:.80}")
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _compare(x, y, f"{where}[{i}]", tol, problems)
    elif isinstance(a, bool) or a is None or isinstance(a, str):
        if a != b:
            problems.append(f"{where}: {a!r:.80} then, {b!r:.80} now")
    elif isinstance(a, (int, float)):
        if not isinstance(b, (int, float)) or isinstance(b, bool) or not math.isclose(a, b, rel_tol=tol, abs_tol=tol):
            problems.append(f"{where}: {a!r} then, {b!r} now")
    else:  # pragma: no cover - JSON has no other types
        problems.append(f"{where}: unexpected {type(a).__name__}")


def _cells(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _compare_csv(then: Path, now: Path, tol: float, problems: list[str]) -> None:
    a, b = _cells(then), _cells(now)
    if a[0] != b[0] or len(a) != len(b):
        problems.append(f"{then.name}: header {a[0]} / {len(a)} rows then, {b[0]} / {len(b)} rows now")
        return
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:]), start=1):
        for col, x, y in zip(a[0], ra, rb):
            if x == y:
                continue
            try:
                if math.isclose(float(x), float(y), rel_tol=tol, abs_tol=tol):
                    continue
            except ValueError:
                pass
            problems.append(f"{then.name} row {i} {col}: {x!r} then, {y!r} now")


GOLDEN_FILES = sorted(p.relative_to(GOLDEN) for p in GOLDEN.rglob("*") if p.is_file() and p.name != "machine.json")


def test_the_fixture_covers_every_task_and_both_frameworks():
    tasks = {p.parts[0] for p in GOLDEN_FILES}
    assert tasks == {"maps", "clicktionary", "psychophysics", "neural"}
    for task in tasks:
        names = {p.name for p in GOLDEN_FILES if p.parts[0] == task}
        for model in make_golden.MODELS:
            assert f"{model}+random.json" in names and f"{model}+random.scores.csv" in names, (task, model)


@pytest.mark.parametrize("name", [str(p) for p in GOLDEN_FILES], ids=str)
def test_every_number_is_reproduced(name, regenerated, tolerance):
    then_path, now_path = GOLDEN / name, regenerated / name
    assert now_path.is_file(), f"{name} was not written by today's code"
    problems: list[str] = []
    if name.endswith(".json"):
        then = records.upgrade(json.loads(then_path.read_text()))
        now = records.read_record(now_path)
        assert now["schema"] == records.SCHEMA
        _compare(then, now, name, tolerance, problems, frozenset(CHANGED.get(name.split("/")[0], ())))
    else:
        _compare_csv(then_path, now_path, tolerance, problems)
    assert not problems, "\n".join(problems[:20])
