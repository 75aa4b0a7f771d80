"""The architecture of docs/architecture.md holds in the code: imports flow one way, no import cycle,
no module uses another module's private names, and importing the packages loads no framework.

The rules are read from the code itself (ast), with no exemption list: a break fails the test.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("alignbench", "benchmark", "model_zoo", "leaderboard")
# package -> packages it must never import (alignbench, the application layer, may import all)
FORBIDDEN = {
    "model_zoo": {"benchmark", "leaderboard", "alignbench"},
    "benchmark": {"leaderboard", "alignbench"},
    "leaderboard": {"alignbench"},
}
# `python -m benchmark` is kept for compatibility: the one module of a library that starts the CLI
ENTRY_POINT_SHIMS = {"benchmark.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom) -> str | None:
    is_package = MODULES[module].name == "__init__.py"
    base = module if is_package else module.rpartition(".")[0]
    if node.level:
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        return f"{base}.{node.module}" if node.module else base
    return node.module


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import anywhere in ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _target(module, node)
            out += [(target, a.name, node.lineno) for a in node.names if target]
    return [(m, n, line) for m, n, line in out if m.split(".")[0] in PACKAGES]


def _edges() -> dict[str, set[str]]:
    edges = {}
    for module in MODULES:
        out = set()
        for target, name, _ in _imports(module):
            full = _resolve(f"{target}.{name}" if name and f"{target}.{name}" in MODULES else target)
            if full and full != module:
                out.add(full)
        edges[module] = out
    return edges


def test_imports_point_one_way():
    offenders = []
    for module in MODULES:
        if module in ENTRY_POINT_SHIMS:
            continue
        banned = FORBIDDEN.get(module.split(".")[0], set())
        for target, _, line in _imports(module):
            if target.split(".")[0] in banned:
                offenders.append(f"{MODULES[module].relative_to(REPO)}:{line} imports {target}")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycles():
    edges = _edges()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package and its own submodule importing each other (__init__ re-exports) is not a cycle
            if len(component) > 1 and not (len(component) == 2 and (
                    component[0].startswith(component[1] + ".") or component[1].startswith(component[0] + "."))):
                cycles.append(" -> ".join(sorted(component)))

    sys.setrecursionlimit(10_000)
    for module in MODULES:
        if module not in index:
            visit(module)
    assert not cycles, "\n".join(cycles)


def test_no_module_uses_another_modules_private_names():
    offenders = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _target(module, node)
                for a in node.names:
                    if not target or target.split(".")[0] not in PACKAGES:
                        continue
                    if a.name.startswith("_") and not a.name.startswith("__") and f"{target}.{a.name}" not in MODULES:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {a.name} from {target}")
                    if f"{target}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in MODULES:
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != module):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("package", ["model_zoo", "benchmark", "leaderboard"])
def test_the_checks_see_every_library_module(package):
    """The rules above run over every file (a module the walk missed would be unchecked)."""
    files = {p for p in (REPO / package).rglob("*.py")}
    assert files and files <= set(MODULES.values())


def test_importing_the_packages_loads_no_framework():
    code = ("import sys, model_zoo, benchmark, alignbench, alignbench.cli, benchmark.metrics, benchmark.datasets, "
            "benchmark.runner, benchmark.tasks, benchmark.job, leaderboard; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'timm', 'keras', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
