"""The "how" task: rapid animal / non-animal categorisation of partially revealed images, models
against humans (the paper's Figure 5).

Per stimulus the model's 1000-way output is read out as animal / non-animal by a decision rule
(:mod:`benchmark.psychophysics.decisions`); per revelation level that gives the model's accuracy
curve, scored against the humans' (:func:`benchmark.psychophysics.scores.curve_alignment`: -log MSE
of the min-max-normalised curves, bootstrap over levels; higher is closer; no ceiling). For
comparison only, the released code's model-independent score is kept in the record
(``published_code_score_buggy``; ``paper-notes.md`` §4 row 17).

Levels compared: the stimuli's partial levels (1 % .. 63.1 %) against the human data's partial
revelation levels, matched in ascending order; the full image is left out, as the published code
drops ``Revelation == 200`` (``include_full=True`` adds it on both sides).

The reference record (``_baseline-humans.json``) holds the humans' curve, the split-half agreement
of two random halves of the trials in the same units (what a model as human-like as another group of
humans would score) and the score of a flat curve (a model that ignores the stimulus).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from benchmark import records
from benchmark.provenance import provenance
from benchmark.psychophysics import decisions, humans, scores, stimuli
from benchmark.scores import score_fields
from benchmark.tasks.base import Chunk, References, ScoringContext, Task, model_call
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import sha256_file

HUMANS_FILE = "_baseline-humans.json"
N_SPLITS = 100
DEFAULT_SEED = 0


class PsychophysicsTask(Task):
    """Models against humans on a :class:`benchmark.psychophysics.data.PsychophysicsData`.

    ``decision_rule``: how a 1000-way output becomes animal / non-animal (default: the paper's
    argmax); ``include_full``: compare the full-image level too; ``n_boot``, ``seed``: the bootstrap."""

    kind = "psychophysics"
    score_name = scores.SCORE_NAME
    columns = ("file", "image_id", "level", "label", "animal", "pred", "decision", "correct")
    revision = "psychophysics/1"

    def __init__(self, data: Any, *, decision_rule: str | None = None, include_full: bool = False,
                 n_boot: int = scores.N_BOOT, seed: int = DEFAULT_SEED) -> None:
        super().__init__(data)
        rule = decision_rule or decisions.DEFAULT_RULE
        if rule not in decisions.RULES:
            raise InvalidInputError(f"decision rule {rule!r}: expected one of {', '.join(decisions.RULES)}")
        self.rule, self.include_full, self.n_boot, self.seed = rule, include_full, n_boot, seed

    def settings(self) -> dict[str, Any]:
        return {"decision_rule": self.rule, "include_full": self.include_full, "n_boot": self.n_boot,
                "seed": self.seed}

    # -- the humans
    def human_curve(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.human_curve(self.include_full)

    def model_levels(self) -> np.ndarray:
        return self.data.model_levels(self.include_full)

    def _check_levels(self, revelations: np.ndarray) -> None:
        levels = self.model_levels()
        if len(levels) != len(revelations):
            raise InvalidInputError(
                f"{self.name}: the stimuli have {len(levels)} levels to compare ({list(levels)}) but the human data "
                f"has {len(revelations)} ({list(revelations)}); levels are matched in ascending order")

    def ensure_references(self, results_dir: Path, *, force: bool = False, limit: int | None = None,
                          batch_size: int = 64) -> References:
        """The humans' record (written once per fingerprint and settings, reused unless ``force``)."""
        path = Path(results_dir) / records.safe_name(self.name, "dataset") / HUMANS_FILE
        old = records.reusable(path, fingerprint=self.fingerprint(), force=force, n_boot=self.n_boot,
                               settings=self.settings())
        if old is not None:
            return References(baseline=old)
        rev, acc = self.human_curve()
        self._check_levels(rev)
        responses = self.data.responses
        hc = humans.human_curve(responses)
        rng = np.random.default_rng(self.seed)
        splits = []
        for i in range(N_SPLITS):
            a, b = humans.split_half_curves(responses, rng)
            if self.include_full:
                a, b = np.append(a, hc.full_accuracy), np.append(b, hc.full_accuracy)
            splits.append(scores.curve_alignment(a, b, n_boot=self.n_boot, seed=self.seed + i).mean)
        flat = scores.curve_alignment(np.zeros_like(acc), acc, n_boot=self.n_boot, seed=self.seed)
        record = {
            "kind": "baseline", "task": self.kind, "dataset": self.name, "dataset_fingerprint": self.fingerprint(),
            "settings": self.settings(), "model": "humans", "display_name": "Humans (split-half of trials)",
            "spearman_mean": None, "n_images": int(len(responses)), "n_trials": [int(n) for n in hc.n_trials],
            "revelations": [float(r) for r in rev], "human_accuracy": [float(a) for a in acc],
            "full_accuracy": hc.full_accuracy,
            **score_fields(float(np.mean(splits)), score_name=self.score_name, n=int(len(responses)),
                           error=float(np.std(splits, ddof=1))),
            "alignment_method": {"name": "split-half of trials per level, curve_alignment of the halves",
                                 "n_splits": N_SPLITS, "seed": self.seed},
            "flat_model_alignment": flat.mean, "n_boot": self.n_boot,
            "human_data": {"file": self.data.human_path.name, "sha256": sha256_file(self.data.human_path)},
            "provenance": provenance(),
        }
        records.write_record(path, record)
        return References(baseline=records.read_record(path))

    # -- a model
    def score(self, adapter: Any, ctx: ScoringContext, *, part: str | None = None) -> Iterator[Chunk]:
        stimulus_set = self.data.stimulus_set
        rows = stimulus_set.select(ctx.limit)[ctx.start:]
        for batch_rows, images in stimulus_set.batches(rows, ctx.batch_size):
            with model_call(ctx.model_id):
                logits = np.asarray(adapter.predict(images))
            decided = decisions.decide(logits, self.rule)
            truth = np.array([r["animal"] for r in batch_rows], bool)
            yield Chunk({"file": np.array([r["file"] for r in batch_rows]),
                         "image_id": np.array([r["image_id"] for r in batch_rows]),
                         "level": np.array([r["level"] for r in batch_rows], np.int64),
                         "label": np.array([r["label"] for r in batch_rows], np.int64),
                         "animal": truth.astype(np.int64), "pred": logits.argmax(axis=1).astype(np.int64),
                         "decision": decided.astype(np.int64), "correct": (decided == truth).astype(np.int64)})
            ctx.progress(len(batch_rows))

    def rows(self, limit: int | None = None) -> int:
        """Stimuli scored per model (every level of the first ``limit`` images)."""
        return len(self.data.stimulus_set.select(limit))

    def summarize(self, columns: Mapping[str, np.ndarray], extras: Mapping[str, Any],
                  references: References) -> dict[str, Any]:
        truth, decided = np.asarray(columns["animal"], bool), np.asarray(columns["decision"], bool)
        level, labels, preds = (np.asarray(columns[k], np.int64) for k in ("level", "label", "pred"))
        per_level = scores.accuracy_per_level(decided, truth, level)
        keep = np.isin(per_level.levels, self.model_levels())
        model_acc = per_level.accuracy[keep]
        rev, human_acc = self.human_curve()
        self._check_levels(rev)
        if keep.sum() != len(human_acc):
            raise InvalidInputError(f"{self.name}: the selected stimuli cover {int(keep.sum())} of the "
                                    f"{len(human_acc)} levels compared")
        ca = scores.curve_alignment(model_acc, human_acc, n_boot=self.n_boot, seed=self.seed)
        buggy = scores.published_code_score_BUGGY(model_acc, human_acc, stimuli.level_percent(per_level.levels),
                                                  n_boot=self.n_boot, seed=self.seed)
        full = per_level.levels == stimuli.FULL_LEVEL
        full_rows = level == stimuli.FULL_LEVEL
        n_images = len(set(np.asarray(columns["image_id"]).tolist()))
        return {
            "n_images": n_images, "n_stimuli": int(len(level)), "decision_rule": self.rule,
            "levels": [int(k) for k in per_level.levels[keep]],
            "levels_percent": [float(p) for p in stimuli.level_percent(per_level.levels[keep])],
            "human_revelations": [float(r) for r in rev],
            "model_accuracy": [float(a) for a in model_acc], "human_accuracy": [float(a) for a in human_acc],
            "model_full_accuracy": float(per_level.accuracy[full][0]) if full.any() else None,
            "model_curve_flat": ca.model_flat,
            **score_fields(ca.mean, score_name=self.score_name, n=n_images, error=ca.sd),
            "alignment_method": ca.to_dict(),
            "published_code_score_buggy": {"mean": buggy[0], "std": buggy[1],
                                           "note": "model-independent (paper-notes §4 row 17); comparison only"},
            # ImageNet top-1 on this dataset's images: the full-image (100 %) stimuli, as the maps task
            # measures it on its images; the accuracy axis of plot-pareto for models without a published top-1
            "top1_measured": float(np.mean(preds[full_rows] == labels[full_rows])) if full_rows.any() else None,
        }
