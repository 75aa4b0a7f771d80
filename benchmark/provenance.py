"""Provenance stamped on every result record: code version, environment, date."""
from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the alignbench checkout this code runs from, or None (installed from a wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out + ("-dirty" if dirty else "")


def framework_versions() -> dict[str, str]:
    """Versions of the frameworks already imported (never imports one just to ask)."""
    versions = {}
    for name in ("numpy", "torch", "timm", "tensorflow", "keras"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance(**extra: Any) -> dict[str, Any]:
    from benchmark import __version__

    info: dict[str, Any] = {
        "alignbench_version": __version__,
        "git_commit": git_commit(),
        "date": now_utc(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "frameworks": framework_versions(),
    }
    info.update(extra)
    return info
