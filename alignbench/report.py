"""What ``alignbench run`` prints: one line per model as it finishes, and the table at the end.

Formatting only: every number comes from the records (score shape of :mod:`benchmark.records`).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from benchmark import records

#: Short column titles of each task's raw score.
SCORE_TITLES = {"maps": "spearman", "psychophysics": "-log mse", "neural": "pearson r"}


def _num(value: Any, pct: bool = False) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return "-"
    return f"{100 * value:.1f}" if pct else f"{value:.3f}"


def _task(outcomes: Sequence[Any]) -> str:
    for o in outcomes:
        if o.record and o.record.get("task"):
            return o.record["task"]
    return "maps"


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


class RunProgress:
    """Overall progress of a run: ``line(i, n, outcome)`` is ``[i/n, elapsed, ETA] <model line>``.
    The ETA is the mean time of the models computed so far (not those reused) times those left."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock, self.start, self.computed = clock, clock(), []

    def line(self, i: int, n: int, outcome: Any) -> str:
        now = self.clock()
        if outcome.status != "skipped":
            self.computed.append(outcome.seconds or 0.0)
        left = n - (i + 1)
        eta = f", ETA {_clock(left * sum(self.computed) / len(self.computed))}" if left and self.computed else ""
        return f"[{i + 1}/{n}, {_clock(now - self.start)} elapsed{eta}] {model_line(outcome)}"


def model_line(outcome: Any) -> str:
    """One line for a model just finished (printed as the run goes)."""
    r = outcome.record or {}
    if outcome.status == "failed":
        return f"{outcome.model}: FAILED ({outcome.error})"
    value, error = records.headline(r)
    pct = records.HEADLINE.get(r.get("task", "maps")) == "normalized"
    shown = f"{_num(value, pct)}{'%' if pct and value is not None else ''}"
    err = f" +- {_num(error, pct)}" if error is not None else ""
    what = "alignment" if pct else (r.get("score_name") or "score")
    return (f"{outcome.model}: {outcome.status}, {what} {shown}{err} ({r.get('n', '-')} images, "
            f"{r.get('seconds', outcome.seconds) or 0:.1f} s)")


def format_summary(summary: Any) -> str:
    """The table printed at the end of a run, then the dataset's references, then failures in full."""
    task = _task(summary.outcomes)
    normalized = records.HEADLINE.get(task) == "normalized"
    maps = task == "maps"
    header = ["model", "top-1(pub)", "acc(data)", SCORE_TITLES.get(task, "score")]
    header += ["alignment", "sd"] if normalized else ["sd"]
    header += ["dice", "iou"] if maps else []
    header += ["images", "undef", "seconds", "status"]
    rows = []
    for o in summary.outcomes:
        r = o.record or {}
        top1 = r.get("top1_published")
        row = [o.model, f"{top1:.1f}" if isinstance(top1, (int, float)) else "-", _num(r.get("top1_measured"), True),
               _num(r.get("score"))]
        row += [_num(r.get("normalized"), True), _num(r.get("normalized_error"), True)] if normalized else \
            [_num(r.get("error"))]
        row += [_num(r.get("dice_mean")), _num(r.get("iou_mean"))] if maps else []
        row += [str(r.get("n", "-") if r.get("n") is not None else "-"), str(r.get("n_undefined", "-")),
                f"{r.get('seconds', o.seconds) or 0:.1f}", "FAILED" if o.status == "failed" else o.status]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in rows]
    lines += _references(summary)
    lines.append(_footer(task))
    skips = getattr(summary, "skips", None)
    if skips is not None and getattr(skips, "total", 0):
        lines.append(f"dataset: {skips.summary()}")
    if summary.failed:
        lines.append(f"{len(summary.failed)} model(s) failed:")
        lines += [f"  {o.model}: {o.error}" for o in summary.failed]
    return "\n".join(lines)


def _references(summary: Any) -> list[str]:
    lines = []
    ceiling = summary.ceiling
    if ceiling:
        value = ceiling.get("value")
        shown = f"{value:.4f}" if isinstance(value, (int, float)) and value == value else "undefined"
        lines.append(f"ceiling: {shown} ({ceiling.get('source', 'unknown source')})")
    b = summary.baseline
    if b and b.get("model") == "center-bias":
        lines.append(f"center-bias baseline: spearman {_num(b.get('score'))}"
                     + (f", alignment {_num(b.get('normalized'), True)}%" if b.get("normalized") is not None else ""))
    elif b:  # a task's own reference (the humans' split-half agreement, a noise ceiling)
        err = f" +- {b['error']:.3f}" if b.get("error") is not None else ""
        lines.append(f"{b.get('display_name') or b.get('model')}: {_num(b.get('score'))}{err} ({b.get('score_name')})")
    return lines


def _footer(task: str) -> str:
    if task == "maps":
        return ("top-1(pub): published ImageNet top-1 of these weights (- for random or own weights); acc(data): % "
                "of this dataset's images classified correctly; spearman: mean per-image rho with the human maps; "
                "alignment, sd: % of the human ceiling")
    if task == "psychophysics":
        return ("-log mse: agreement of the model's and the humans' accuracy curves (higher is closer; no ceiling); "
                "sd: bootstrap over revelation levels; acc(data): top-1 on the full images")
    return ("pearson r: IT predictivity (median over sites, layer chosen on held-out images), uncorrected; "
            "sd: bootstrap over images")
