"""Build a submitted plugin's model in a sandbox; the leaderboard process never imports it.

A plugin is a Python file defining ``build_model()``: code from a stranger. It runs in
:mod:`leaderboard.plugin_child`, started by bubblewrap (``bwrap``, Debian package ``bubblewrap``) in
new user, PID, network, IPC, UTS and cgroup namespaces, with every capability dropped:

* **no network**: the network namespace has only a loopback device of its own (127.0.0.1 of the
  host is unreachable);
* **files**: the root is empty but for the Python installation and system libraries (read-only),
  the plugin's own folder (read-only, at ``/sandbox/plugin``: a plugin may read the weights next
  to it) and a scratch folder (``/sandbox/work``, the only writable place, deleted afterwards); the
  leaderboard's results, home and working folder are not there;
* **environment**: cleared (``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and thread counts only);
* **processes**: the plugin is a child of a small supervisor that is the subreaper of its
  descendants (``prctl(PR_SET_CHILD_SUBREAPER)``) and kills all of them when the plugin returns; the
  whole PID namespace dies with it, so a ``setsid``/double-forked child cannot outlive the build;
* **limits**: address space, CPU seconds, largest file and no core dumps (hard rlimits the child
  sets before importing the plugin), a wall-clock timeout, and a cap on what it may print (its
  output is streamed through a bounded buffer, never collected whole).

What comes back is data, validated here before anyone uses it: ``result.json`` and
``architecture.json`` (size-limited JSON; the architecture against a strict schema, see
:func:`leaderboard.architecture.check_architecture`), and the weights file (a regular file, no link,
within the file limit), loaded later in a safe format only.

Where no sandbox can be set up (no ``bwrap``, or user namespaces disabled) a plugin is refused
unless the caller passes ``trust_plugin=True`` (``--trust-plugin``): it then runs in a plain child
process with the same supervisor, limits, output cap and validation, but with the machine's network
and files. cgroup limits are not used (no delegated cgroup-v2 tree is assumed).
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leaderboard.architecture import check_architecture
from leaderboard.bounds import read_json_bounded
from model_zoo.errors import AlignbenchError, InvalidInputError
from model_zoo.fileio import sha256_file

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("plugin_child.py")
SANDBOX_ROOT = "/sandbox"
EXPORT_FILES = {"torch": "weights.safetensors", "keras": "model.keras"}
_SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime")
_NOBODY = 65534


class SandboxError(AlignbenchError):
    """The plugin could not be built: it failed, timed out or exceeded a limit (message says which)."""


class SandboxUnavailable(SandboxError):
    """No sandbox can be set up here, and the plugin was not explicitly trusted."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of a plugin build: wall seconds, CPU seconds, address space (MiB), largest
    file (MiB), and how much it may print (MiB, stdout and stderr together)."""

    timeout_s: float = 600.0
    cpu_s: int | None = 1200
    memory_mb: int = 16384
    file_mb: int = 8192
    output_mb: float = 16.0

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_mb <= 0 or self.file_mb <= 0 or self.output_mb <= 0 \
                or (self.cpu_s is not None and self.cpu_s <= 0):
            raise InvalidInputError(f"plugin limits must be positive: {self}")


@dataclass
class PluginExport:
    """What a plugin build produced: ``folder`` holds ``architecture.json`` and the weights file;
    ``sandboxed``: whether it ran in the bubblewrap sandbox (False: trusted, ``--trust-plugin``)."""

    folder: Path
    architecture: dict[str, Any]
    weights_file: Path
    weights_sha256: str
    seconds: float
    sandboxed: bool = True
    log: str = field(default="", repr=False)


# ----------------------------------------------------------------------------------- the sandbox
def bwrap_path() -> str | None:
    """The bubblewrap binary: ``$ALIGNBENCH_BWRAP`` when set (empty: none), else ``bwrap`` on PATH."""
    if "ALIGNBENCH_BWRAP" in os.environ:
        return os.environ["ALIGNBENCH_BWRAP"] or None
    return shutil.which("bwrap")


def _runtime_binds() -> list[str]:
    """Read-only binds of the interpreter and system libraries, mirroring top-level symlinks."""
    args: list[str] = []
    for name in _SYSTEM_DIRS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent}
    for root in sorted(roots, key=lambda p: len(p.parts)):
        if root.is_dir() and not any(str(root) == f"/{d}" or str(root).startswith(f"/{d}/") for d in _SYSTEM_DIRS):
            args += ["--ro-bind", str(root), str(root)]
    for path in _SYSTEM_FILES:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    return args


def _env(threads: int) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": f"{SANDBOX_ROOT}/work", "TMPDIR": "/tmp",
            "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def bwrap_command(bwrap: str, plugin_dir: Path, work: Path, argv: list[str]) -> list[str]:
    """The bubblewrap command line running ``argv`` (paths as seen inside) in the sandbox."""
    # the fresh /proc, /dev and /tmp first: binds of an interpreter that lives under /tmp (a venv in a
    # fresh checkout) are then mounted on top of the sandbox's own /tmp instead of being hidden by it
    cmd = [bwrap, "--unshare-all", "--uid", str(_NOBODY), "--gid", str(_NOBODY), "--cap-drop", "ALL",
           "--die-with-parent", "--new-session", "--hostname", "sandbox",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", *_runtime_binds(),
           "--ro-bind", str(CHILD), f"{SANDBOX_ROOT}/plugin_child.py",
           "--ro-bind", str(plugin_dir), f"{SANDBOX_ROOT}/plugin",
           "--bind", str(work), f"{SANDBOX_ROOT}/work", "--chdir", f"{SANDBOX_ROOT}/work", "--clearenv"]
    for key, value in _env(min(8, os.cpu_count() or 1)).items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", *argv]


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str | None) -> tuple[bool, str]:
    if bwrap is None:
        return False, "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory(prefix="alignbench-probe-") as tmp:
        work = Path(tmp)
        cmd = bwrap_command(bwrap, work, work, [sys.executable, "-I", "-c", "print('sandbox ok')"])
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"{bwrap} could not run ({exc})"
    if proc.returncode != 0 or "sandbox ok" not in proc.stdout:
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return False, f"{bwrap} cannot set up a sandbox here ({why}; user namespaces may be disabled)"
    return True, f"bubblewrap sandbox ({bwrap})"


def sandbox_status() -> tuple[bool, str]:
    """(whether plugins can be sandboxed here, a one-line reason or description)."""
    return _probe(bwrap_path())


# ----------------------------------------------------------------------------------- output
class _Output(threading.Thread):
    """Drains a pipe, keeping the first and last few KiB; calls ``on_overflow`` once past ``cap`` bytes."""

    def __init__(self, pipe: Any, cap: int, on_overflow: Any, keep: int = 8192) -> None:
        super().__init__(daemon=True)
        self.pipe, self.cap, self.on_overflow, self.keep = pipe, cap, on_overflow, keep
        self.head, self.tail, self.total, self.overflowed = b"", b"", 0, False

    def run(self) -> None:
        try:
            while True:
                chunk = self.pipe.read1(65536) if hasattr(self.pipe, "read1") else self.pipe.read(65536)
                if not chunk:
                    return
                self.total += len(chunk)
                if len(self.head) < self.keep:
                    self.head += chunk[: self.keep - len(self.head)]
                self.tail = (self.tail + chunk)[-self.keep:]
                if self.total > self.cap and not self.overflowed:
                    self.overflowed = True
                    self.on_overflow()
        except (OSError, ValueError):
            return

    def text(self, n: int = 1500) -> str:
        data = self.head if self.total <= len(self.head) else self.head[:512] + b"\n...\n" + self.tail
        text = data.decode("utf-8", errors="replace").strip()
        return text if len(text) <= n else "..." + text[-n:]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----------------------------------------------------------------------------------- building
def build_plugin(plugin: str | Path, out_dir: str | Path, *, limits: Limits = Limits(),
                 trust_plugin: bool = False) -> PluginExport:
    """Run ``plugin``'s ``build_model()`` in the sandbox; copy its validated export to ``out_dir``.

    Raises :class:`SandboxUnavailable` when no sandbox can be set up and ``trust_plugin`` is False,
    and :class:`SandboxError` with a one-line reason (the plugin's own exception with its file:line,
    timeout, CPU, memory, file or output limit) and the tail of its output otherwise.
    """
    plugin = Path(plugin).resolve()
    if not plugin.is_file() or plugin.suffix != ".py":
        raise InvalidInputError(f"--plugin {plugin}: expected an existing .py file defining build_model()")
    available, why = sandbox_status()
    if not available and not trust_plugin:
        raise SandboxUnavailable(f"plugin {plugin.name}: refused: no sandbox can be set up here: {why}. Install "
                                 "bubblewrap, or pass --trust-plugin to run this plugin WITHOUT a sandbox "
                                 "(it can then read and write your files and use the network)")
    if not available:
        log.warning("running plugin %s WITHOUT a sandbox (--trust-plugin): %s", plugin.name, why)
    workdir = Path(tempfile.mkdtemp(prefix="alignbench-plugin-"))
    work = workdir / "work"
    work.mkdir()
    export = work / "export"
    export.mkdir()
    started = time.monotonic()
    try:
        numbers = [str(limits.memory_mb), str(limits.cpu_s or 0), str(limits.file_mb)]
        if available:
            inside = f"{SANDBOX_ROOT}/plugin/{plugin.name}"
            cmd = bwrap_command(bwrap_path(), plugin.parent, work,
                                [sys.executable, "-I", f"{SANDBOX_ROOT}/plugin_child.py", inside,
                                 f"{SANDBOX_ROOT}/work/export", *numbers])
            env, cwd = {}, str(workdir)
        else:
            cmd = [sys.executable, "-I", str(CHILD), str(plugin), str(export), *numbers]
            env, cwd = {**_env(min(8, os.cpu_count() or 1)), "HOME": str(work), "TMPDIR": str(work)}, str(work)
        outcome, output = _run(cmd, env, cwd, limits)
        seconds = time.monotonic() - started
        arch = _check_outcome(plugin, outcome, export, output, limits)
        return _copy_export(export, Path(out_dir), arch, limits, seconds, available, output.text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class _Outcome:
    returncode: int
    timed_out: bool
    overflowed: bool


def _run(cmd: list[str], env: dict[str, str], cwd: str, limits: Limits) -> tuple[_Outcome, _Output]:
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    reader = _Output(proc.stdout, int(limits.output_mb * 1024 * 1024), lambda: _kill(proc))
    reader.start()
    timed_out = False
    deadline = time.monotonic() + limits.timeout_s
    try:
        # wait for the process, not for the end of its output (a descendant holding the pipe open must
        # not turn a plugin that failed at once into a "timeout"), and without reaping it, so that the
        # process group id cannot be reused by an unrelated process before the group is killed below
        while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.05)
    finally:
        _kill(proc)  # the process group: bwrap (and with it the sandbox), or the trusted supervisor's
        proc.wait()
        reader.join(timeout=2.0)
        proc.stdout.close()
    return _Outcome(proc.returncode, timed_out, reader.overflowed), reader


def _read_result(export: Path) -> dict[str, Any] | None:
    path = export / "result.json"
    if not path.exists() and not path.is_symlink():
        return None
    try:
        result = read_json_bounded(path, "result.json")
    except InvalidInputError:
        return None
    return result if isinstance(result, dict) else None


def _check_outcome(plugin: Path, outcome: _Outcome, export: Path, output: _Output, limits: Limits) -> dict[str, Any]:
    """The validated architecture of a successful build, else a :class:`SandboxError` saying why."""
    result = _read_result(export)
    text = output.text()
    log = f"\n--- plugin output (tail) ---\n{text}" if text else ""
    name = plugin.name
    if isinstance(result, dict) and isinstance(result.get("error"), str) and result.get("ok") is not True:
        error = result["error"][:2000]
        if "MemoryError: the plugin ran out of memory" in error:
            raise SandboxError(f"plugin {name}: exceeded the memory limit of {limits.memory_mb} MiB ({error}){log}")
        raise SandboxError(f"plugin {name}: {error}{log}")
    if outcome.overflowed:
        raise SandboxError(f"plugin {name}: printed more than the output limit of {limits.output_mb:g} MiB "
                           f"({output.total / 2**20:.0f} MiB seen) and was killed{log}")
    if outcome.timed_out:
        raise SandboxError(f"plugin {name}: build_model() did not finish within {limits.timeout_s:g} s "
                           "(wall-clock limit); the plugin process was killed")
    code = outcome.returncode
    if code == 0 and isinstance(result, dict) and result.get("ok") is True:
        path = export / "architecture.json"
        if path.is_symlink() or not path.is_file():
            raise SandboxError(f"plugin {name}: the build reported success but wrote no architecture.json")
        try:
            return check_architecture(read_json_bounded(path, "architecture.json"), "the plugin's architecture.json")
        except InvalidInputError as exc:
            raise SandboxError(f"plugin {name}: {exc}") from None
    sig = _child_signal(export, code)
    if sig == "SIGXCPU" or (sig == "SIGKILL" and limits.cpu_s is not None):
        # SIGXCPU at the soft CPU limit; SIGKILL at the hard one, 5 s later, when the plugin ignores it
        raise SandboxError(f"plugin {name}: exceeded the CPU-time limit of {limits.cpu_s} s and was killed{log}")
    if sig == "SIGXFSZ":
        raise SandboxError(f"plugin {name}: wrote a file larger than the limit of {limits.file_mb} MiB{log}")
    if sig:
        raise SandboxError(f"plugin {name}: the build process died of {sig} (a native crash; with a "
                           f"{limits.memory_mb} MiB memory limit this is often a failed allocation){log}")
    if "MemoryError" in text or "bad_alloc" in text:
        raise SandboxError(f"plugin {name}: exceeded the memory limit of {limits.memory_mb} MiB{log}")
    raise SandboxError(f"plugin {name}: the build process exited with status {code}{log}")


def _child_signal(export: Path, code: int) -> str:
    """The signal that ended the plugin: the supervisor's note (``signal.txt``), else the exit status."""
    note = export / "signal.txt"
    if note.is_file() and not note.is_symlink() and note.stat().st_size < 64:
        return note.read_text(encoding="ascii", errors="replace").strip()
    for value in (-code, code - 128):
        if 0 < value < 65:
            try:
                return signal.Signals(value).name
            except ValueError:
                return ""
    return ""


def _copy_export(export: Path, out_dir: Path, arch: dict[str, Any], limits: Limits, seconds: float,
                 sandboxed: bool, text: str) -> PluginExport:
    """Copy architecture.json and the weights out of the scratch folder: regular files only (a link
    planted by the plugin would make this copy read a file of its choosing), within the file limit."""
    import json

    weights_name = EXPORT_FILES[arch["framework"]]
    out_dir.mkdir(parents=True, exist_ok=True)
    # the validated description, re-serialised: nothing of the plugin's file but its checked fields
    (out_dir / "architecture.json").write_text(json.dumps(arch, indent=1), encoding="utf-8")
    for name in (weights_name,):
        src = export / name
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            raise SandboxError(f"the plugin's export {name}: cannot be read as a regular file "
                               f"({exc.strerror or exc}; links are refused)") from None
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SandboxError(f"the plugin's export {name}: not a regular file")
            if info.st_size > limits.file_mb * 1024 * 1024:
                raise SandboxError(f"the plugin's export {name}: larger than the file limit of {limits.file_mb} MiB")
            with open(out_dir / name, "wb") as dst:
                shutil.copyfileobj(fh, dst, 1 << 20)
    weights = out_dir / weights_name
    return PluginExport(out_dir, arch, weights, sha256_file(weights), seconds, sandboxed, text)
