"""What every "maps" dataset hands its consumers: :class:`Batch`, and the :class:`SkipReport` of the
records it left out. Shared by the ClickMe and Clicktionary readers and the prepared copy."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Batch:
    """One batch as every consumer sees it (B <= batch size; the last one may be shorter).

    ``human_ranks``: the :class:`~benchmark.ranking.RankedMaps` of ``heatmaps`` when the batch came
    from a prepared copy (ranked once, when the copy was written), else None; identical to
    ``rank_maps(heatmaps)``, so a consumer may pass it to ``spearman_ranked`` instead of ranking.
    """

    images: np.ndarray  # float32 (B,224,224,3) in [0,255]
    heatmaps: np.ndarray  # float32 (B,224,224)
    labels: np.ndarray  # int64 (B,), ImageNet indices 0..999
    ids: list[str]  # "<shard stem>:<record index, 6 digits>" (ClickMe), the image_id (Clicktionary)
    human_ranks: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class SkipReport:
    """Records left out, counted per reason, with up to ``max_examples`` ids per reason."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def add(self, reason: str, record_id: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(record_id)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One line: ``"3 records skipped: 2 wrong shape (e.g. val-0:000001, ...); 1 ..."``."""
        if not self.total:
            return "no records skipped"
        parts = [f"{n} {reason} (e.g. {', '.join(self.examples[reason])})" for reason, n in sorted(self.counts.items())]
        return f"{self.total} record{'s' if self.total != 1 else ''} skipped: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "counts": dict(self.counts),
                "examples": {k: list(v) for k, v in self.examples.items()}}
