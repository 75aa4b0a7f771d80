"""Numbers do not move: today's code reproduces every number of the golden records.

``tests/golden/v1/<machine kind>/`` holds the records (schema 1) that alignbench wrote for every task
(ClickMe-format maps, the Clicktionary layout, psychophysics, IT recordings) and two random-weight
models (a torch and a Keras one) on generated data, before the task/job spine replaced the runner
(commit 0b9a152's code), once per machine kind seen (``machine.json``: processor, instruction set,
library versions; float32 kernels differ between kinds, and random-weight maps are tie-rich enough
for that to move a per-image Spearman by 1e-3). This test regenerates them with today's code
(``tests/golden/make_golden.py``) and compares every number of every record and per-image scores
file to 1e-12 against the set of this machine's kind; on a kind with no set, to 5e-3 against the
set of the closest instruction set (measured between the two kinds here: per-image scores differ by up to 1.4e-3; a warning
says so: add a set by running make_golden.py at commit 0b9a152 on that kind).
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

GOLDEN_SETS = sorted(p.parent for p in (Path(__file__).parent / "golden" / "v1").glob("*/machine.json"))
sys.path.insert(0, str(Path(__file__).parent / "golden"))
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
def golden(regenerated) -> tuple[Path, float]:
    """The golden set of this machine's kind and the tolerance to compare it to."""
    now = json.loads((regenerated / "machine.json").read_text())
    for folder in GOLDEN_SETS:
        if json.loads((folder / "machine.json").read_text()) == now:
            return folder, 1e-12
    def shared_isa(folder: Path) -> int:
        isa = json.loads((folder / "machine.json").read_text()).get("isa", "")
        return len(set(isa.split()) & set(now.get("isa", "").split()))

    closest = max(GOLDEN_SETS, key=shared_isa)
    warnings.warn(f"no golden records for this machine kind ({now}); comparing to {closest.name}'s to 5e-3 "
                  "(float32 kernels differ between CPU kinds and library versions)", stacklevel=1)
    return closest, 5e-3


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


def _files(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and p.name != "machine.json")


GOLDEN_FILES = _files(GOLDEN_SETS[0])


@pytest.mark.parametrize("folder", GOLDEN_SETS, ids=lambda p: p.name)
def test_every_set_covers_every_task_and_both_frameworks(folder):
    files = _files(folder)
    assert files == GOLDEN_FILES  # every machine kind's set holds the same records
    tasks = {p.parts[0] for p in files}
    assert tasks == {"maps", "clicktionary", "psychophysics", "neural"}
    for task in tasks:
        names = {p.name for p in files if p.parts[0] == task}
        for model in make_golden.MODELS:
            assert f"{model}+random.json" in names and f"{model}+random.scores.csv" in names, (task, model)


@pytest.mark.parametrize("name", [str(p) for p in GOLDEN_FILES], ids=str)
def test_every_number_is_reproduced(name, regenerated, golden):
    folder, tolerance = golden
    then_path, now_path = folder / name, regenerated / name
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
