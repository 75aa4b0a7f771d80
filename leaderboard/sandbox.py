"""Build a submitted plugin's model in a separate, limited process; the leaderboard never imports it.

A plugin is a Python file defining ``build_model()``. It is code from a stranger, so it runs in a
child process (:mod:`leaderboard.plugin_child`) started with ``python -I`` (no user site, no
``PYTHON*`` variables, no current folder on ``sys.path``), in a fresh temporary working folder, with a
reduced environment, in its own process group, under

* ``RLIMIT_AS`` (address space; ``memory_mb``), ``RLIMIT_CPU`` (``cpu_s``), ``RLIMIT_FSIZE`` (largest
  file it may write) and ``RLIMIT_CORE`` = 0, set as hard limits by the child itself before it imports
  the plugin (no ``preexec_fn``, which is unsafe in a threaded parent such as one running torch);
* a wall-clock timeout (``timeout_s``), after which the whole process group is killed.

The child exports safetensors + an architecture description (or a Keras file); the parent then
loads those in safe formats only (:mod:`leaderboard.loading`). This limits what a plugin can do to
the machine's resources; it is not a security boundary against a determined attacker (the child
can still read files and use the network, as the submitter's own ``pip install`` could): run
``leaderboard verify`` of plugin bundles in a container or VM.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_zoo.errors import AlignbenchError, InvalidInputError
from model_zoo.fileio import atomic_copy_file, sha256_file

CHILD = Path(__file__).with_name("plugin_child.py")
# environment passed to the plugin: enough to find caches and run; no tokens or credentials
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE",
             "TORCH_HOME", "KERAS_HOME", "XDG_CACHE_HOME", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class SandboxError(AlignbenchError):
    """The plugin could not be built: it failed, timed out or exceeded a limit (message says which)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of a plugin build: wall seconds, CPU seconds, address space (MiB), largest file (MiB)."""

    timeout_s: float = 600.0
    cpu_s: int | None = 1200
    memory_mb: int = 16384
    file_mb: int = 8192

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb <= 0 or self.file_mb <= 0 or (self.cpu_s is not None and self.cpu_s <= 0):
            raise InvalidInputError(f"plugin limits must be positive: {self}")


@dataclass
class PluginExport:
    """What a plugin build produced: ``folder`` holds ``architecture.json`` and the weights file."""

    folder: Path
    architecture: dict[str, Any]
    weights_file: Path
    weights_sha256: str
    seconds: float
    log: str = field(default="", repr=False)


def _child_env(workdir: Path) -> dict[str, str]:
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env["TMPDIR"] = str(workdir)
    env["CUDA_VISIBLE_DEVICES"] = ""  # building needs no GPU; a runaway plugin must not hold one
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _tail(text: str, n: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def build_plugin(plugin: str | Path, out_dir: str | Path, *, limits: Limits = Limits()) -> PluginExport:
    """Run ``plugin``'s ``build_model()`` in a limited child process; copy its export to ``out_dir``.

    Raises :class:`SandboxError` with a one-line reason (timeout, CPU or memory limit, the plugin's
    own exception with its file:line) and the tail of the child's output.
    """
    plugin = Path(plugin).resolve()
    if not plugin.is_file() or plugin.suffix != ".py":
        raise InvalidInputError(f"--plugin {plugin}: expected an existing .py file defining build_model()")
    workdir = Path(tempfile.mkdtemp(prefix="alignbench-plugin-"))
    export = workdir / "export"
    export.mkdir()
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), str(plugin), str(export), str(limits.memory_mb),
             str(limits.cpu_s or 0), str(limits.file_mb)], cwd=workdir, env=_child_env(workdir),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise SandboxError(f"plugin {plugin.name}: build_model() did not finish within {limits.timeout_s:g} s "
                               "(wall-clock limit); the plugin process was killed") from None
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        seconds = time.monotonic() - started
        _check_outcome(plugin, proc.returncode, export, output, limits)
        arch = json.loads((export / "architecture.json").read_text(encoding="utf-8"))
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        weights_name = {"torch": "weights.safetensors", "keras": "model.keras"}[arch.get("framework")]
        for name in ("architecture.json", weights_name):
            atomic_copy_file(export / name, out_dir / name)
        weights = out_dir / weights_name
        return PluginExport(out_dir, arch, weights, sha256_file(weights), seconds, output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_outcome(plugin: Path, returncode: int, export: Path, output: str, limits: Limits) -> None:
    result_path = export / "result.json"
    result = None
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = None
    log = f"\n--- plugin output (tail) ---\n{_tail(output)}" if output.strip() else ""
    if returncode == 0 and isinstance(result, dict) and result.get("ok"):
        if not (export / "architecture.json").is_file():
            raise SandboxError(f"plugin {plugin.name}: the build reported success but wrote no architecture.json")
        return
    if isinstance(result, dict) and result.get("error"):
        error = str(result["error"])
        if "MemoryError: the plugin ran out of memory" in error:
            raise SandboxError(f"plugin {plugin.name}: exceeded the memory limit of {limits.memory_mb} MiB "
                               f"({error}){log}")
        raise SandboxError(f"plugin {plugin.name}: {error}{log}")
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL) and limits.cpu_s is not None:
        raise SandboxError(f"plugin {plugin.name}: exceeded the CPU-time limit of {limits.cpu_s} s and was killed{log}")
    if returncode == -signal.SIGXFSZ:
        raise SandboxError(f"plugin {plugin.name}: wrote a file larger than the limit of {limits.file_mb} MiB{log}")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        raise SandboxError(f"plugin {plugin.name}: the build process died of {name} (a native crash; with a "
                           f"{limits.memory_mb} MiB memory limit this is often a failed allocation){log}")
    if "MemoryError" in output or "bad_alloc" in output:
        raise SandboxError(f"plugin {plugin.name}: exceeded the memory limit of {limits.memory_mb} MiB{log}")
    raise SandboxError(f"plugin {plugin.name}: the build process exited with status {returncode}{log}")
