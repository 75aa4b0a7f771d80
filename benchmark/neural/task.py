"""The IT neural-predictivity benchmark as a dataset the runner dispatches to (``task = "neural"``).

``alignbench run --dataset it-arcaro2020`` calls :meth:`NeuralTask.ensure_baselines` once (the
noise ceiling of every panel, ``results/it-arcaro2020/_ceiling.json``), then
:meth:`NeuralTask.run_model` per model. For each model:

1. layers: ``layers`` if given, else :func:`model_zoo.activations.spatial_layers` (up to
   ``max_layers`` blocks spread evenly over the depth);
2. features: one forward pass per image set (monkey 1's two panels share theirs), pooled to the
   panel's grid and reduced to at most 600 channels, cached per (model, layer)
   (:mod:`benchmark.neural.activations`);
3. scores: :func:`benchmark.neural.predictivity.score_panel` per panel (PLS-25, leave-one-image-out,
   median Pearson r over sites, layer chosen on held-out images, the paper's best-on-test variant
   kept and labelled, ceiling, bootstrap 95% CI, spatial-map Spearman).

The record (``results/it-arcaro2020/<model>.json``) holds one entry per panel (monkey and region)
under ``panels``, and as its headline ``alignment`` the mean held-out predictivity over panels
(raw Pearson r, not divided by the ceiling: the 2023 paper's figure is uncorrected; the ratio is
``predictivity_normalized`` per panel). Per-site correlations go to ``<model>.scores.csv``
(panel, image_id, site, layer, r, r_best_on_test), from which every number can be recomputed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmark.neural import predictivity as pr
from benchmark.neural.recordings import NeuralRecording
from benchmark.scores import score_fields
from model_zoo.errors import InvalidInputError

log = logging.getLogger(__name__)

NAME = "it-arcaro2020"
CEILING_FILE = "_ceiling.json"
SCORE_COLUMNS = ("panel", "image_id", "site", "layer", "r", "r_best_on_test")
SCORE_NAME = "IT predictivity (median Pearson r over sites, layer chosen on held-out images)"
CEILING_SCORE_NAME = "noise ceiling (pearson r)"
DEFAULT_MAX_LAYERS = 12


class NeuralTask:
    """Recordings (panels) scored per model. ``recordings``: a list of :class:`NeuralRecording` or a
    function returning one (called on first use, so nothing is downloaded before it is needed).

    ``layers``: layer names to score (default: the model's spatial blocks, ``max_layers`` of them);
    ``max_channels``: channel-group averaging above this width (the paper's 600; None: keep all);
    ``n_components``, ``normalize``, ``engine``: see :func:`~benchmark.neural.predictivity.score_panel`;
    ``cache_root``: the activation cache (default ``cache_dir("neural", "activations")``).
    """

    task = "neural"
    score_name = SCORE_NAME

    def __init__(self, recordings: Sequence[NeuralRecording] | Callable[[], Sequence[NeuralRecording]], *,
                 name: str = NAME, layers: Sequence[str] | None = None, max_layers: int | None = DEFAULT_MAX_LAYERS,
                 max_channels: int | None = 600, n_components: int = pr.N_COMPONENTS,
                 normalize: str | None = "minmax", engine: str = "moments", n_resamples: int = 2000, seed: int = 0,
                 cache_root: str | Path | None = None, description: str = "") -> None:
        if engine not in pr.ENGINES:
            raise InvalidInputError(f"engine {engine!r}: expected one of {pr.ENGINES}")
        if n_components < 1:
            raise InvalidInputError(f"n_components must be >= 1, got {n_components}")
        self.name, self.description = name, description
        self.layers = list(layers) if layers else None
        self.max_layers, self.max_channels = max_layers, max_channels
        self.n_components, self.normalize, self.engine = n_components, normalize, engine
        self.n_resamples, self.seed, self.cache_root = n_resamples, seed, cache_root
        self._source = recordings
        self._panels: list[NeuralRecording] | None = None
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"NeuralTask({self.name!r}, layers={self.layers or f'auto<= {self.max_layers}'})"

    # -- data
    @property
    def panels(self) -> list[NeuralRecording]:
        if self._panels is None:
            src = self._source
            panels = list(src() if callable(src) else src)
            if not panels:
                raise InvalidInputError(f"{self.name}: no recordings")
            names = [p.panel for p in panels]
            if len(set(names)) != len(names):
                raise InvalidInputError(f"{self.name}: duplicate panel names {names}")
            self._panels = panels
        return self._panels

    def settings(self) -> dict[str, Any]:
        """Everything besides the data that changes a score (part of the fingerprint)."""
        return {"layers": self.layers, "max_layers": self.max_layers, "max_channels": self.max_channels,
                "n_components": self.n_components, "normalize": self.normalize, "engine": self.engine,
                "n_resamples": self.n_resamples, "seed": self.seed, "score": "nested-loo/v1"}

    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over every panel's images, responses, trials and window, and the settings."""
        if self._fingerprint is None:
            h = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode())
            for p in self.panels:
                h.update(f"{p.panel}\t{p.fingerprint()}\n".encode())
            self._fingerprint = "sha256:" + h.hexdigest()
        return self._fingerprint

    def num_images(self) -> int:
        """Distinct images over all panels (panels sharing a stimulus set count it once)."""
        return len({(p.image_fingerprint(), i) for p in self.panels for i in p.image_ids})

    def files(self) -> list[Path]:
        """The recording files the panels were read from (``alignbench data download``)."""
        return [Path(f) for f in dict.fromkeys(p.source for p in self.panels if p.source)]

    def info(self) -> dict[str, Any]:
        """The summary ``alignbench data info`` prints."""
        return {"name": self.name, "synthetic": any("synthetic" in n.lower() for p in self.panels for n in p.notes),
                "files": [str(f) for f in self.files()], "images": self.num_images(),
                "records": sum(p.n_images for p in self.panels), "fingerprint": self.fingerprint(),
                "has_participant_maps": False, "description": self.description,
                "panels": {p.panel: {"subject": p.subject, "region": p.region, "images": p.n_images,
                                     "grid": p.grid, "sites": p.n_sites, "window_ms": p.window_ms,
                                     "single_trials": p.trials is not None} for p in self.panels}}

    class _NoSkips:
        @staticmethod
        def summary() -> str:
            return "no images skipped"

        @staticmethod
        def to_dict() -> dict[str, Any]:
            return {}

    skips = _NoSkips()

    def selected(self, limit: int | None) -> list[NeuralRecording]:
        """The panels, each cut to its first ``limit`` images (``--limit``; at least 3)."""
        if limit is None:
            return self.panels
        if limit < 3:
            raise InvalidInputError(f"--limit {limit}: leave-one-image-out needs at least 3 images per panel")
        return [p.subset(limit) if limit < p.n_images else p for p in self.panels]

    # -- the ceiling
    def ensure_baselines(self, config: Any) -> dict[str, Any]:
        """The noise ceiling of every panel (``_ceiling.json``), written once per fingerprint and limit."""
        from benchmark import records
        from benchmark.provenance import provenance

        from benchmark.baselines import reusable_record

        path = Path(config.results_dir) / records.safe_name(self.name, "dataset") / CEILING_FILE
        old = reusable_record(path, self, config.force, limit=config.limit)
        if old is not None:
            return old
        panels = {}
        for p in self.selected(config.limit):
            c = pr.ceiling_for(p.responses, p.trials, seed=self.seed)
            panels[p.panel] = {**c.to_dict(), "subject": p.subject, "region": p.region,
                               "per_image": [float(v) for v in c.per_image], "n_images": p.n_images,
                               "n_sites": p.n_sites, "grid": p.grid}
        values = [v["value"] for v in panels.values() if v["value"] is not None and np.isfinite(v["value"])]
        methods = sorted({v["method"] for v in panels.values()})
        record = {
            "kind": "ceiling", "task": self.task, "dataset": self.name, "dataset_fingerprint": self.fingerprint(),
            "model": "noise-ceiling", "display_name": "Noise ceiling (mean over panels, same units as models)",
            "value": float(np.mean(values)) if values else None,
            **score_fields(float(np.mean(values)) if values else None, score_name=CEILING_SCORE_NAME,
                           n=sum(v["n_images"] for v in panels.values())),
            "source": f"mean over panels of the {' / '.join(methods)} ceiling (see panels.*.description)",
            "limit": config.limit, "panels": panels, "provenance": provenance(),
        }
        records.write_record(path, record)
        return records.read_record(path)

    # -- models
    def score_adapter(self, adapter: Any, *, limit: int | None = None, key: str | None = None,
                      progress: bool = False) -> tuple[list[str], dict[str, pr.PanelResult]]:
        """Score one adapter on every panel: (layers scored, {panel: PanelResult}). ``key``: its
        activation-cache key (None: no cache)."""
        from benchmark.neural.activations import grid_features
        from model_zoo.activations import spatial_layers

        layers = self.layers or spatial_layers(adapter, max_layers=self.max_layers)
        if not layers:
            raise InvalidInputError(f"{getattr(adapter, 'name', adapter)}: no layer with a spatial output to score")
        panels = self.selected(limit)
        features: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        results = {}
        for p in panels:
            fkey = (p.image_fingerprint(), p.grid)
            if fkey not in features:
                features[fkey] = grid_features(adapter, p.images, layers, p.grid, image_fingerprint=fkey[0], key=key,
                                               max_channels=self.max_channels, cache_root=self.cache_root)
            if progress:
                log.info("%s: scoring %d layers on %s", getattr(adapter, "name", "model"), len(layers), p.panel)
            results[p.panel] = pr.score_panel(p.responses, features[fkey], panel=p.panel, trials=p.trials,
                                              n_components=self.n_components, normalize=self.normalize,
                                              engine=self.engine, n_resamples=self.n_resamples, seed=self.seed)
        return layers, results

    def run_model(self, model_id: str, config: Any, *, loader: Callable[..., Any] | None = None) -> Any:
        """Score one model; returns a :class:`benchmark.runner.ModelOutcome` (failures are recorded)."""
        from benchmark import records, runner
        from benchmark.neural.activations import model_key
        from benchmark.provenance import provenance

        device = runner.resolve_device(config.device)
        rid = runner.record_id(model_id, config.weights)
        rpath = records.record_path(config.results_dir, self.name, rid)
        done = self._existing(rpath, config)
        if done is not None:
            return runner.ModelOutcome(rid, "skipped", record=done)
        started = time.perf_counter()
        try:
            if loader is None:
                import model_zoo

                loader = model_zoo.load
            adapter = loader(model_id, weights=config.weights, device=device, precision=config.precision)
            key = model_key(rid, getattr(adapter, "weights_sha256", None), config.precision)
            layers, results = self.score_adapter(adapter, limit=config.limit, key=key, progress=config.progress)
            record, rows = self._record(results, layers)
        except Exception as exc:  # noqa: BLE001 - a model's failure is recorded and the run goes on
            reason = f"{type(exc).__name__}: {exc}"
            log.error("model %s failed: %s", rid, reason)
            rec = runner.failed_record(self, rid, model_id, config, reason, device)
            records.write_record(rpath, rec)
            return runner.ModelOutcome(rid, "failed", record=rec, error=reason, seconds=time.perf_counter() - started)
        spath = records.scores_path(config.results_dir, self.name, rid)
        sha = records.write_table(spath, SCORE_COLUMNS, rows)
        record.update(runner._spec_fields(adapter, rid, config.weights))
        record.update(
            kind="model", task=self.task, dataset=self.name, dataset_fingerprint=self.fingerprint(),
            model_id=getattr(getattr(adapter, "spec", None), "id", model_id), weights=config.weights,
            weights_sha256=getattr(adapter, "weights_sha256", None), precision=config.precision, status="ok",
            limit=config.limit, scores_file=spath.name, scores_sha256=sha, top1_measured=None,
            seconds=round(time.perf_counter() - started, 3), provenance=provenance(device=device))
        records.write_record(rpath, record)
        return runner.ModelOutcome(rid, "ok", record=record, seconds=record["seconds"])

    def _record(self, results: dict[str, pr.PanelResult], layers: list[str]) -> tuple[dict[str, Any], list[tuple]]:
        panels = {p.panel: p for p in self.panels}
        out, rows = {}, []
        for name, res in results.items():
            rec = panels[name]
            spatial_full, spatial_coarse = res.spatial_per_image
            out[name] = {**res.to_dict(), "subject": rec.subject, "region": rec.region,
                         "window_ms": list(rec.window_ms) if rec.window_ms else None, "notes": rec.notes,
                         "image_ids": rec.image_ids[:res.meta["n_images"]],
                         "spatial_map_spearman_per_image": [float(v) for v in spatial_full],
                         "spatial_map_spearman_coarse_per_image": [float(v) for v in spatial_coarse]}
            best = next(k for k, layer in enumerate(res.layers) if layer.layer == res.best_layer)
            for i, k in enumerate(res.chosen):
                for s, site in enumerate(rec.site_ids):
                    rows.append((name, rec.image_ids[i], site, res.layers[k].layer,
                                 res.layers[k].site_r[i, s], res.layers[best].site_r[i, s]))
        combined = pr.combine_intervals([r.heldout for r in results.values()])
        optimistic = pr.combine_intervals([r.best_on_test for r in results.values()])
        ceilings = [r.ceiling.value for r in results.values() if np.isfinite(r.ceiling.value)]
        record = {
            **score_fields(combined.mean, score_name=SCORE_NAME, error=combined.sd,
                           n=len({(p["subject"], i) for p in out.values() for i in p["image_ids"]}),
                           ceiling=float(np.mean(ceilings)) if ceilings else None),
            "score_ci95": [combined.low, combined.high], "predictivity": combined.mean,
            "predictivity_label": pr.HELDOUT_LABEL,
            "best_on_test": {"label": pr.OPTIMISTIC_LABEL, **optimistic.to_dict()},
            "ceiling_source": "; ".join(sorted({r.ceiling.method for r in results.values()})),
            "n_images": len({(p["subject"], i) for p in out.values() for i in p["image_ids"]}),
            "n_panels": len(out), "layers": layers, "settings": self.settings(), "panels": out,
        }
        return record, rows

    def _existing(self, path: Path, config: Any) -> dict[str, Any] | None:
        from benchmark import records

        if config.force or not path.exists():
            return None
        try:
            rec = records.read_record(path)
        except InvalidInputError:
            return None
        same = (rec.get("status") == "ok" and rec.get("limit") == config.limit
                and rec.get("dataset_fingerprint") == self.fingerprint() and rec.get("weights") == config.weights
                and rec.get("precision") == config.precision)
        return rec if same else None


# --------------------------------------------------------------------------- the named dataset
def _source(mirror: str | None) -> tuple[str | None, str | None]:
    """(root, url) from ``--mirror``: a URL of the zip or of a folder holding it, or a local path."""
    if mirror is None:
        return None, None
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", mirror):
        from benchmark.neural.arcaro import ZIP_NAME

        return None, mirror if mirror.endswith(".zip") else f"{mirror.rstrip('/')}/{ZIP_NAME}"
    return mirror, None


def neural_dataset(*, download: bool = True, mirror: str | None = None, root: str | Path | None = None,
                   panels: Sequence[str] | None = None, window: str | tuple[int, int] = "docstring",
                   channel_split: str = "docstring", **settings: Any) -> NeuralTask:
    """The named dataset ``it-arcaro2020``: the three panels of the 2023 paper (monkey 1 PL and ML,
    monkey 2 ML) from the Arcaro 2020 release, fetched on first use. ``mirror``: a URL (of the zip,
    or of a folder holding ``Arcaro2020.zip``) or a local zip/extracted folder; ``root``: the same
    as a local path. ``settings`` go to :class:`NeuralTask`."""
    from benchmark.neural.arcaro import load_arcaro2020

    local, url = _source(mirror)
    local = root if root is not None else local

    def load() -> list[NeuralRecording]:
        return load_arcaro2020(local, panels=panels, window=window, channel_split=channel_split,
                               download=download, url=url)

    return NeuralTask(load, description="Arcaro, Ponce & Livingstone 2020 IT recordings (2023 paper's panels)",
                      **settings)


def recordings_dataset(path: str | Path, *, name: str | None = None, regions: Sequence[str] | None = None,
                       **settings: Any) -> NeuralTask:
    """A :class:`NeuralTask` over a user's ``.npz`` recordings (format: :mod:`benchmark.neural.recordings`)."""
    from benchmark.neural.recordings import load_recordings_npz

    path = Path(path)
    return NeuralTask(lambda: load_recordings_npz(path, regions=regions), name=name or path.stem,
                      description=f"recordings in {path}", **settings)
