"""The psychophysics ("how") benchmark as a dataset the runner dispatches to (``task = "psychophysics"``).

``alignbench run --dataset psychophysics`` calls :meth:`PsychophysicsTask.ensure_baselines` once,
then :meth:`PsychophysicsTask.run_model` per model. A model's record (``results/psychophysics/
<model>.json``) holds its accuracy per level, the human accuracy per level, the decision rule, the
curve alignment (``score`` +- ``error``, :func:`~benchmark.psychophysics.scores.curve_alignment`) and, for comparison only, the published code's model-independent score. Per-
stimulus decisions go to ``<model>.scores.csv`` (file,image_id,level,label,animal,pred,decision,correct).

Levels compared: the stimuli's partial levels (1 % .. 63.1 %) against the human data's partial
revelation levels, matched in ascending order; the full image is left out, as the published code
drops ``Revelation == 200`` (``include_full=True`` adds it on both sides).

The humans' own record (``_baseline-humans.json``) holds their curve, the split-half agreement of
two random halves of the trials in the same units (what a model as human-like as another group
of humans would score) and the score of a flat curve (a model that ignores the stimulus).
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmark.psychophysics import decisions, humans, scores, stimuli
from benchmark.scores import score_fields
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_text, cache_dir, sha256_file

log = logging.getLogger(__name__)

NAME = "psychophysics"
HUMANS_FILE = "_baseline-humans.json"
SCORE_COLUMNS = ("file", "image_id", "level", "label", "animal", "pred", "decision", "correct")
N_SPLITS = 100
DEFAULT_SEED = 0


class PsychophysicsTask:
    """Stimuli (a folder from :func:`stimuli.make_stimuli`) + human responses, scored per model.

    ``stimuli`` and ``human_data``: a path, or a function returning one (called on first use, so
    nothing is generated or downloaded before it is needed).
    """

    task = "psychophysics"
    score_name = scores.SCORE_NAME

    def __init__(self, *, stimuli: str | Path | Callable[[], Path], human_data: str | Path | Callable[[], Path],
                 name: str = NAME, rule: str = decisions.DEFAULT_RULE, include_full: bool = False,
                 n_boot: int = scores.N_BOOT, seed: int = DEFAULT_SEED, trust_pickle: bool = False) -> None:
        if rule not in decisions.RULES:
            raise InvalidInputError(f"decision rule {rule!r}: expected one of {', '.join(decisions.RULES)}")
        self.name, self.rule, self.include_full = name, rule, include_full
        self.n_boot, self.seed, self.trust_pickle = n_boot, seed, trust_pickle
        self._stimuli_src, self._human_src = stimuli, human_data
        self._stimuli: stimuli.StimulusSet | None = None
        self._frame: Any = None
        self._human_path: Path | None = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"PsychophysicsTask({self.name!r}, rule={self.rule!r})"

    # -- data
    @property
    def stimulus_set(self) -> stimuli.StimulusSet:
        if self._stimuli is None:
            src = self._stimuli_src
            self._stimuli = stimuli.read_stimuli(src() if callable(src) else src)
        return self._stimuli

    @property
    def human_path(self) -> Path:
        if self._human_path is None:
            src = self._human_src
            self._human_path = Path(src() if callable(src) else src)
        return self._human_path

    @property
    def responses(self) -> Any:
        if self._frame is None:
            self._frame = humans.read_responses(self.human_path, trust_pickle=self.trust_pickle)
        return self._frame

    def human_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(revelations, accuracy) of the levels compared (partial, plus full when include_full)."""
        hc = humans.human_curve(self.responses)
        rev, acc = hc.revelations, hc.accuracy
        if self.include_full:
            if hc.full_accuracy is None:
                raise InvalidInputError(f"{self.human_path}: include_full needs full-image trials (Revelation 200)")
            rev, acc = np.append(rev, humans.FULL_REVELATION), np.append(acc, hc.full_accuracy)
        return rev, acc

    def model_levels(self) -> np.ndarray:
        levels = sorted({r["level"] for r in self.stimulus_set.rows})
        return np.array([k for k in levels if self.include_full or k != stimuli.FULL_LEVEL], np.int64)

    def files(self) -> list[Path]:
        folder = self.stimulus_set.folder
        return [folder / stimuli.MANIFEST_CSV, *(folder / r["file"] for r in self.stimulus_set.rows), self.human_path]

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over every stimulus file, the manifest, the human data and the level choice."""
        if self._fingerprint is None:
            h = hashlib.sha256(f"include_full={self.include_full}\n".encode())
            for p in self.files():
                h.update(f"{p.name}\t{sha256_file(p)}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    def num_images(self) -> int:
        return len(self.stimulus_set.image_ids)

    @property
    def skips(self) -> Any:
        """Nothing is skipped: a stimulus that cannot be read is an error naming it."""
        from benchmark.datasets.clickme import SkipReport

        return SkipReport()

    def info(self) -> dict[str, Any]:
        """Summary for ``alignbench data info`` (reads the stimuli and the human responses)."""
        s = self.stimulus_set
        source = s.params.get("source") or {}
        return {"name": self.name, "task": self.task, "synthetic": bool(source.get("synthetic")),
                "files": [str(s.folder / stimuli.MANIFEST_CSV)], "records": len(s.rows),
                "images": self.num_images(), "levels": [int(k) for k in self.model_levels()],
                "human_data": str(self.human_path), "human_trials": int(len(self.responses)),
                "decision_rule": self.rule, "fingerprint": self.fingerprint(), "has_participant_maps": False,
                "stimulus_source": source}

    # -- humans
    def ensure_baselines(self, config: Any) -> dict[str, Any]:
        """The humans' record (written once per fingerprint, reused unless ``config.force``)."""
        from benchmark import records
        from benchmark.provenance import provenance

        from benchmark.baselines import reusable_record

        path = Path(config.results_dir) / records.safe_name(self.name, "dataset") / HUMANS_FILE
        old = reusable_record(path, self, config.force, n_boot=self.n_boot)
        if old is not None:
            return old
        rev, acc = self.human_curve()
        self._check_levels(rev)
        hc = humans.human_curve(self.responses)
        rng = np.random.default_rng(self.seed)
        splits = []
        for i in range(N_SPLITS):
            a, b = humans.split_half_curves(self.responses, rng)
            if self.include_full:
                a, b = np.append(a, hc.full_accuracy), np.append(b, hc.full_accuracy)
            splits.append(scores.curve_alignment(a, b, n_boot=self.n_boot, seed=self.seed + i).mean)
        flat = scores.curve_alignment(np.zeros_like(acc), acc, n_boot=self.n_boot, seed=self.seed)
        record = {
            "kind": "baseline", "task": self.task, "dataset": self.name, "dataset_fingerprint": self.fingerprint(),
            "model": "humans", "display_name": "Humans (split-half of trials)", "spearman_mean": None,
            "n_images": int(len(self.responses)), "n_trials": [int(n) for n in hc.n_trials],
            "revelations": [float(r) for r in rev], "human_accuracy": [float(a) for a in acc],
            "full_accuracy": hc.full_accuracy,
            **score_fields(float(np.mean(splits)), score_name=scores.SCORE_NAME, n=int(len(self.responses)),
                           error=float(np.std(splits, ddof=1))),
            "alignment_method": {"name": "split-half of trials per level, curve_alignment of the halves",
                                 "n_splits": N_SPLITS, "seed": self.seed},
            "flat_model_alignment": flat.mean, "n_boot": self.n_boot,
            "human_data": {"file": self.human_path.name, "sha256": sha256_file(self.human_path)},
            "provenance": provenance(),
        }
        records.write_record(path, record)
        return records.read_record(path)

    def _check_levels(self, revelations: np.ndarray) -> None:
        levels = self.model_levels()
        if len(levels) != len(revelations):
            raise InvalidInputError(
                f"{self.name}: the stimuli have {len(levels)} levels to compare ({list(levels)}) but the human data "
                f"has {len(revelations)} ({list(revelations)}); levels are matched in ascending order")

    # -- models
    def run_model(self, model_id: str, config: Any, *, loader: Callable[..., Any] | None = None) -> Any:
        """Score one model; returns a :class:`benchmark.runner.ModelOutcome` (failures are recorded)."""
        from benchmark import records, runner
        from benchmark.provenance import provenance

        rule = getattr(config, "decision_rule", None) or self.rule
        device = runner.resolve_device(config.device)
        rid = runner.record_id(model_id, config.weights)
        rpath = records.record_path(config.results_dir, self.name, rid)
        done = self._existing(rpath, config, rule)
        if done is not None:
            return runner.ModelOutcome(rid, "skipped", record=done)
        started = time.perf_counter()
        try:
            if loader is None:
                import model_zoo

                loader = model_zoo.load
            adapter = loader(model_id, weights=config.weights, device=device, precision=config.precision)
            rows = self.stimulus_set.select(config.limit)
            preds, decided = [], []
            bar = runner._progress(len(rows), 0, rid, config.progress)
            for part, images in self.stimulus_set.batches(rows, config.batch_size):
                logits = np.asarray(adapter.predict(images))
                preds.append(logits.argmax(axis=1))
                decided.append(decisions.decide(logits, rule))
                bar.update(len(part))
            bar.close()
            record, columns = self._score(rows, np.concatenate(preds), np.concatenate(decided), rule)
        except Exception as exc:  # noqa: BLE001 - a model's failure is recorded and the run goes on
            reason = f"{type(exc).__name__}: {exc}"
            log.error("model %s failed: %s", rid, reason)
            rec = runner.failed_record(self, rid, model_id, config, reason, device)
            rec["decision_rule"] = rule
            records.write_record(rpath, rec)
            return runner.ModelOutcome(rid, "failed", record=rec, error=reason, seconds=time.perf_counter() - started)
        spath = records.scores_path(config.results_dir, self.name, rid)
        sha = _write_scores(spath, columns)
        record.update(runner._spec_fields(adapter, rid, config.weights))
        record.update(
            kind="model", task=self.task, dataset=self.name, dataset_fingerprint=self.fingerprint(),
            model_id=getattr(getattr(adapter, "spec", None), "id", model_id), weights=config.weights,
            weights_sha256=getattr(adapter, "weights_sha256", None), precision=config.precision, status="ok",
            limit=config.limit, scores_file=spath.name, scores_sha256=sha,
            seconds=round(time.perf_counter() - started, 3), provenance=provenance(device=device))
        records.write_record(rpath, record)
        return runner.ModelOutcome(rid, "ok", record=record, seconds=record["seconds"])

    def _score(self, rows: list[dict[str, Any]], preds: np.ndarray, decided: np.ndarray,
               rule: str) -> tuple[dict[str, Any], dict[str, list]]:
        truth = np.array([r["animal"] for r in rows], bool)
        level = np.array([r["level"] for r in rows], np.int64)
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
        labels = np.array([r["label"] for r in rows], np.int64)
        full_rows = level == stimuli.FULL_LEVEL
        record = {
            "n_images": len({r["image_id"] for r in rows}), "n_stimuli": len(rows), "decision_rule": rule,
            "levels": [int(k) for k in per_level.levels[keep]],
            "levels_percent": [float(p) for p in stimuli.level_percent(per_level.levels[keep])],
            "human_revelations": [float(r) for r in rev],
            "model_accuracy": [float(a) for a in model_acc], "human_accuracy": [float(a) for a in human_acc],
            "model_full_accuracy": float(per_level.accuracy[full][0]) if full.any() else None,
            "model_curve_flat": ca.model_flat,
            **score_fields(ca.mean, score_name=scores.SCORE_NAME, n=len({r["image_id"] for r in rows}), error=ca.sd),
            "alignment_method": ca.to_dict(),
            "published_code_score_buggy": {"mean": buggy[0], "std": buggy[1],
                                           "note": "model-independent (paper-notes §4 row 17); comparison only"},
            # ImageNet top-1 on this dataset's images: the full-image (100 %) stimuli, as the maps task
            # measures it on its images; the accuracy axis of plot-pareto for models without a published top-1
            "top1_measured": float(np.mean(preds[full_rows] == labels[full_rows])) if full_rows.any() else None,
        }
        columns = {"file": [r["file"] for r in rows], "image_id": [r["image_id"] for r in rows], "level": level,
                   "label": [r["label"] for r in rows], "animal": truth.astype(int), "pred": preds,
                   "decision": decided.astype(int), "correct": (decided == truth).astype(int)}
        return record, columns

    def _existing(self, path: Path, config: Any, rule: str) -> dict[str, Any] | None:
        from benchmark import records

        if config.force or not path.exists():
            return None
        try:
            rec = records.read_record(path)
        except InvalidInputError:
            return None
        same = (rec.get("status") == "ok" and rec.get("limit") == config.limit and rec.get("decision_rule") == rule
                and rec.get("dataset_fingerprint") == self.fingerprint() and rec.get("weights") == config.weights
                and rec.get("precision") == config.precision
                and (rec.get("alignment_method") or {}).get("n_boot") == self.n_boot)
        return rec if same else None


def _write_scores(path: Path, columns: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORE_COLUMNS)
    writer.writerows(zip(*(list(map(lambda v: v.item() if hasattr(v, "item") else v, columns[c]))
                           for c in SCORE_COLUMNS)))
    atomic_write_text(path, buf.getvalue())
    return sha256_file(path)


# --------------------------------------------------------------------------- sources and the named dataset

def clicktionary_source(source: Any = "clicktionary", *, download: bool = True, mirror: str | None = None,
                        limit: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(iterable of (image_id, label, image (256,256,3), map (256,256)), info) from the named
    Clicktionary dataset, a Clicktionary-format release FOLDER, or a ``ClicktionaryDataset``."""
    from benchmark.datasets import clicktionary as ct

    if isinstance(source, ct.ClicktionaryDataset):
        ds = source
    elif source == "clicktionary":
        ds = ct.clicktionary_dataset(download=download, mirror=mirror)
    elif Path(source).is_dir():
        ds = ct.ClicktionaryDataset(Path(source), name=Path(source).resolve().name)
    else:
        raise InvalidInputError(f"--source {source!r}: expected 'clicktionary' or a Clicktionary release folder")
    items = ((it.image_id, it.label, img, m) for it, img, m in ds.raw_items(limit=limit))
    return items, {"dataset": ds.name, "fingerprint": ds.fingerprint(), "synthetic": ds.synthetic}


def make_stimuli_from(source: Any, output: str | Path, *, seed: int, download: bool = True,
                      mirror: str | None = None, limit: int | None = None) -> Path:
    """``alignbench psychophysics make-stimuli``: stimuli of a Clicktionary source into ``output``."""
    items, info = clicktionary_source(source, download=download, mirror=mirror, limit=limit)
    return stimuli.make_stimuli(items, output, seed=seed, source_info=info)


def psychophysics_dataset(*, download: bool = True, mirror: str | None = None, stimuli_dir: str | Path | None = None,
                          human_data: str | Path | None = None, rule: str = decisions.DEFAULT_RULE,
                          seed: int = DEFAULT_SEED) -> PsychophysicsTask:
    """The named dataset ``psychophysics``. Stimuli: ``stimuli_dir``, else generated once (seed 0)
    from the Clicktionary release into ``cache_dir("psychophysics", "stimuli-seed<seed>-<release>")``
    (keyed by the release's fingerprint, so a changed release never reuses stale stimuli). Human
    responses: ``human_data``, else ``data_for_zahra.npz`` from the cache, ``mirror``,
    ``$ALIGNBENCH_PSYCHOPHYSICS_URL`` or the paper's bucket. Nothing is read before first use."""

    def ensure_stimuli() -> Path:
        if stimuli_dir is not None:
            return Path(stimuli_dir)
        from benchmark.datasets import clicktionary as ct

        release = ct.clicktionary_dataset(download=download)
        folder = cache_dir(NAME, f"stimuli-seed{seed}-{release.fingerprint().split(':')[-1][:16]}")
        if not (folder / stimuli.MANIFEST_CSV).is_file():
            log.warning("generating the psychophysics stimuli (seed %d) from %s into %s", seed, release.root, folder)
            make_stimuli_from(release, folder, seed=seed, download=download)
        return folder

    def ensure_humans() -> Path:
        return Path(human_data) if human_data is not None else humans.fetch_human_data(mirror=mirror, download=download)

    return PsychophysicsTask(stimuli=ensure_stimuli, human_data=ensure_humans, rule=rule, seed=seed)


def psychophysics_folder(folder: str | Path, *, rule: str = decisions.DEFAULT_RULE) -> PsychophysicsTask:
    """``alignbench run --dataset FOLDER`` for a stimulus folder (``manifest.csv`` from ``make-stimuli``):
    human responses from ``FOLDER/data_for_zahra.npz`` when present, else as for the named dataset.
    Records go to ``results/<folder name>/``."""
    folder = Path(folder)
    local = folder / humans.HUMAN_FILE
    return PsychophysicsTask(stimuli=folder, name=folder.resolve().name, rule=rule,
                             human_data=local if local.is_file() else (lambda: humans.fetch_human_data()))
