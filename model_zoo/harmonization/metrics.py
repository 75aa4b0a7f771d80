"""Per-step training metrics: an append-safe CSV, plus TensorBoard when it is installed.

After a kill the CSV may hold rows for steps past the last checkpoint, and a half-written last
line. :class:`MetricsLog` opened with ``resume_step`` rewrites the file (atomically) keeping only
complete rows up to that step, so a resumed run's log has each step exactly once.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from model_zoo.fileio import atomic_write_text

COLUMNS = ("step", "epoch", "lr", "total", "cross_entropy", "weight_decay", "harmonization", "accuracy",
           "images_per_s", "seconds")


class MetricsLog:
    """Rows of :data:`COLUMNS`, flushed line by line to ``path``."""

    def __init__(self, path: str | Path, *, resume_step: int = 0, tensorboard_dir: str | Path | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = self._kept_rows(resume_step)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buf.getvalue())
        self._fh = open(self.path, "a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, COLUMNS, lineterminator="\n")
        self._tb = _tensorboard(tensorboard_dir) if tensorboard_dir else None

    def _kept_rows(self, resume_step: int) -> list[dict[str, str]]:
        if resume_step <= 0 or not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]  # drop a torn last line
        rows = []
        for row in csv.DictReader(io.StringIO(text)):
            try:
                if None not in row.values() and int(row["step"]) <= resume_step:
                    rows.append({k: row[k] for k in COLUMNS})
            except (KeyError, TypeError, ValueError):
                continue
        return rows

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: _fmt(row.get(k, "")) for k in COLUMNS})
        self._fh.flush()
        if self._tb is not None:
            step = int(row["step"])
            for k in COLUMNS[2:]:
                if isinstance(row.get(k), (int, float)):
                    self._tb(f"train/{k}", float(row[k]), step)

    def close(self) -> None:
        self._fh.close()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _tensorboard(log_dir: str | Path):
    """``(tag, value, step) -> None`` writing TensorBoard events, or None when neither torch's
    SummaryWriter (needs the ``tensorboard`` package) nor an already imported TensorFlow is there.
    Both writers need the ``tensorboard`` package (``tf.summary.scalar`` raises without it), so
    without it the log is the CSV only, said once by a warning."""
    import importlib.util
    import sys
    import warnings

    if importlib.util.find_spec("tensorboard") is None:
        warnings.warn("the tensorboard package is not installed: training metrics go to metrics.csv only "
                      "(pip install tensorboard for TensorBoard events)", RuntimeWarning, stacklevel=3)
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(log_dir))
        return lambda tag, value, step: writer.add_scalar(tag, value, step)
    except Exception:
        pass
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        writer = tf.summary.create_file_writer(str(log_dir))

        def add(tag: str, value: float, step: int) -> None:
            with writer.as_default():
                tf.summary.scalar(tag, value, step=step)
        return add
    return None
