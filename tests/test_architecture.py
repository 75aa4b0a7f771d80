"""DESIGN.md's boundaries: imports point one way, and importing the packages loads no framework."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", [
    ("model_zoo", {"benchmark", "leaderboard"}),   # the zoo stands alone
    ("benchmark", {"leaderboard"}),                # only the CLI wires the leaderboard in
])
def test_imports_point_one_way(package, forbidden):
    offenders = []
    for path in sorted((REPO / package).rglob("*.py")):
        if package == "benchmark" and path.parts[-2] == "cli" or path.name == "demo.py":
            continue  # the CLI (and the demo, a CLI-level tour) may import every package
        bad = _imported_packages(path) & forbidden
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offenders, offenders


def test_importing_the_packages_loads_no_framework():
    code = ("import sys, model_zoo, benchmark, alignbench.cli, benchmark.metrics, benchmark.datasets, "
            "benchmark.runner, leaderboard; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'timm', 'keras', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
