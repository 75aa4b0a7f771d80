"""What both trainers (PyTorch and TensorFlow) share about a run: its result, and when a checkpoint
may be resumed."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from model_zoo.errors import InvalidInputError

# options whose change would make a checkpoint's schedule or data position meaningless
RESUME_KEYS = ("model", "harmonize", "seed", "epochs", "batch_size", "steps_per_epoch", "num_classes")


@dataclass
class TrainResult:
    """``steps`` done in total, the run's ``output_dir``, the exported model folder (``None`` when not
    exported), the last step's metrics, and the step this call started from (``resumed_from``: 0 for
    a fresh run, the checkpoint's step when it resumed; ``steps - resumed_from`` were trained now)
    out of the run's ``total_steps``."""

    steps: int
    output_dir: Path
    export_dir: Path | None
    last_metrics: dict[str, float]
    resumed_from: int = 0
    total_steps: int | None = None

    @property
    def trained_now(self) -> int:
        """Optimizer steps this call took."""
        return self.steps - self.resumed_from


def check_resumable(saved: Mapping[str, Any], config: Any, where: Path) -> None:
    """Raise :class:`InvalidInputError` naming every :data:`RESUME_KEYS` option on which the checkpoint's
    saved config (``saved``) and this run's ``config`` differ."""
    changed = [k for k in RESUME_KEYS if saved.get(k) != getattr(config, k)]
    if changed:
        raise InvalidInputError(f"checkpoint {where} was written with different {', '.join(changed)} "
                                f"({', '.join(f'{k}={saved.get(k)!r}' for k in changed)}); "
                                "use the same options or another output folder")
