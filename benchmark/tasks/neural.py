"""The IT-cortex task (the 2023 follow-up): how well a model's layer activations predict spatially
resolved IT recordings.

For each model:

1. layers: ``layers`` if given, else :func:`model_zoo.activations.spatial_layers` (up to
   ``max_layers`` blocks spread evenly over the depth);
2. features: one forward pass per image set (monkey 1's two panels share theirs), pooled to the
   panel's grid and reduced to at most 600 channels, cached per (model, layer)
   (:mod:`benchmark.neural.activations`);
3. scores: :func:`benchmark.neural.predictivity.score_panel` per panel (PLS-25, leave-one-image-out,
   median Pearson r over sites, layer chosen on held-out images, the paper's best-on-test variant
   kept and labelled, ceiling, bootstrap 95% CI, spatial-map Spearman).

The record holds one entry per panel (monkey and region) under ``panels``; its ``score`` is the
mean held-out predictivity over panels (raw Pearson r, not divided by the ceiling: the 2023
paper's figure is uncorrected; ``normalized`` is score / mean panel ceiling). Per-site
correlations go to the scores file (panel, image_id, site, layer, r, r_best_on_test).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from benchmark import records
from benchmark.neural import predictivity as pr
from benchmark.provenance import provenance
from benchmark.scores import score_fields
from benchmark.tasks.base import Chunk, ModelFailure, References, ScoringContext, Task, model_call
from model_zoo.errors import InvalidInputError

log = logging.getLogger(__name__)

CEILING_FILE = "_ceiling.json"
SCORE_NAME = "IT predictivity (median Pearson r over sites, layer chosen on held-out images)"
CEILING_SCORE_NAME = "noise ceiling (pearson r)"
DEFAULT_MAX_LAYERS = 12


class NeuralTask(Task):
    """Recordings (:class:`benchmark.neural.data.NeuralData`) scored per model.

    ``layers``: layer names to score (default: the model's spatial blocks, ``max_layers`` of them);
    ``max_channels``: channel-group averaging above this width (the paper's 600; None: keep all);
    ``n_components``, ``normalize``, ``engine``: see :func:`~benchmark.neural.predictivity.score_panel`;
    ``cache_root``: the activation cache (default ``cache_dir("neural", "activations")``).
    """

    kind = "neural"
    score_name = SCORE_NAME
    columns = ("panel", "image_id", "site", "layer", "r", "r_best_on_test")
    revision = "neural/1"

    def __init__(self, data: Any, *, layers: Sequence[str] | None = None, max_layers: int | None = DEFAULT_MAX_LAYERS,
                 max_channels: int | None = 600, n_components: int = pr.N_COMPONENTS,
                 normalize: str | None = "minmax", engine: str = "moments", n_resamples: int = 2000, seed: int = 0,
                 cache_root: str | Path | None = None) -> None:
        super().__init__(data)
        if engine not in pr.ENGINES:
            raise InvalidInputError(f"engine {engine!r}: expected one of {pr.ENGINES}")
        if n_components < 1:
            raise InvalidInputError(f"n_components must be >= 1, got {n_components}")
        self.layers = list(layers) if layers else None
        self.max_layers, self.max_channels = max_layers, max_channels
        self.n_components, self.normalize, self.engine = n_components, normalize, engine
        self.n_resamples, self.seed, self.cache_root = n_resamples, seed, cache_root

    def settings(self) -> dict[str, Any]:
        return {"layers": self.layers, "max_layers": self.max_layers, "max_channels": self.max_channels,
                "n_components": self.n_components, "normalize": self.normalize, "engine": self.engine,
                "n_resamples": self.n_resamples, "seed": self.seed, "score": "nested-loo/v1"}

    # -- the ceiling
    def ensure_references(self, results_dir: Path, *, force: bool = False, limit: int | None = None,
                          batch_size: int = 64) -> References:
        """The noise ceiling of every panel (``_ceiling.json``), written once per fingerprint and limit."""
        path = Path(results_dir) / records.safe_name(self.name, "dataset") / CEILING_FILE
        old = records.reusable(path, fingerprint=self.fingerprint(), force=force, limit=limit, seed=self.seed)
        if old is not None:
            return References(ceiling=old)
        panels = {}
        for p in self.data.selected(limit):
            c = pr.ceiling_for(p.responses, p.trials, seed=self.seed)
            panels[p.panel] = {**c.to_dict(), "subject": p.subject, "region": p.region,
                               "per_image": [float(v) for v in c.per_image], "n_images": p.n_images,
                               "n_sites": p.n_sites, "grid": p.grid}
        values = [v["value"] for v in panels.values() if v["value"] is not None and np.isfinite(v["value"])]
        methods = sorted({v["method"] for v in panels.values()})
        value = float(np.mean(values)) if values else None
        record = {
            "kind": "ceiling", "task": self.kind, "dataset": self.name, "dataset_fingerprint": self.fingerprint(),
            "model": "noise-ceiling", "display_name": "Noise ceiling (mean over panels, same units as models)",
            "value": value, "seed": self.seed,
            **score_fields(value, score_name=CEILING_SCORE_NAME, n=sum(v["n_images"] for v in panels.values())),
            "source": f"mean over panels of the {' / '.join(methods)} ceiling (see panels.*.description)",
            "limit": limit, "panels": panels, "provenance": provenance(),
        }
        records.write_record(path, record)
        return References(ceiling=records.read_record(path))

    # -- a model
    def score_adapter(self, adapter: Any, *, limit: int | None = None, key: str | None = None,
                      progress: bool = False) -> tuple[list[str], dict[str, pr.PanelResult]]:
        """Score one adapter on every panel: (layers scored, {panel: PanelResult}). ``key``: its
        activation-cache key (None: no cache)."""
        from benchmark.neural.activations import grid_features
        from model_zoo.activations import spatial_layers

        name = getattr(adapter, "name", "model")
        with model_call(name):
            layers = self.layers or spatial_layers(adapter, max_layers=self.max_layers)
        if not layers:
            raise ModelFailure(f"{name}: no layer with a spatial output to score")
        panels = self.data.selected(limit)
        features: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        results = {}
        for p in panels:
            fkey = (p.image_fingerprint(), p.grid)
            if fkey not in features:
                with model_call(name):
                    features[fkey] = grid_features(adapter, p.images, layers, p.grid, image_fingerprint=fkey[0],
                                                   key=key, max_channels=self.max_channels, cache_root=self.cache_root)
            if progress:
                log.info("%s: scoring %d layers on %s", name, len(layers), p.panel)
            results[p.panel] = pr.score_panel(p.responses, features[fkey], panel=p.panel, trials=p.trials,
                                              n_components=self.n_components, normalize=self.normalize,
                                              engine=self.engine, n_resamples=self.n_resamples, seed=self.seed)
        return layers, results

    def rows(self, limit: int | None = None) -> int:
        """One progress unit per panel (the scoring is per panel, not per image)."""
        return len(self.data.selected(limit))

    def score(self, adapter: Any, ctx: ScoringContext, *, part: str | None = None) -> Iterator[Chunk]:
        from benchmark.neural.activations import model_key

        key = model_key(ctx.model_id, getattr(adapter, "weights_sha256", None), getattr(adapter, "precision", "float32"))
        layers, results = self.score_adapter(adapter, limit=ctx.limit, key=key)
        extras, rows = self._summary(results, layers)
        ctx.progress(len(results))
        yield Chunk({name: np.asarray([r[i] for r in rows]) for i, name in enumerate(self.columns)}, extras)

    def _summary(self, results: dict[str, pr.PanelResult], layers: list[str]) -> tuple[dict[str, Any], list[tuple]]:
        panels = {p.panel: p for p in self.data.panels}
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
                                 float(res.layers[k].site_r[i, s]), float(res.layers[best].site_r[i, s])))
        combined = pr.combine_intervals([r.heldout for r in results.values()])
        optimistic = pr.combine_intervals([r.best_on_test for r in results.values()])
        ceilings = [r.ceiling.value for r in results.values() if np.isfinite(r.ceiling.value)]
        extras = {
            "score": combined.mean, "error": combined.sd,
            "ceiling": float(np.mean(ceilings)) if ceilings else None,
            "score_ci95": [combined.low, combined.high], "predictivity": combined.mean,
            "predictivity_label": pr.HELDOUT_LABEL,
            "best_on_test": {"label": pr.OPTIMISTIC_LABEL, **optimistic.to_dict()},
            "ceiling_source": "; ".join(sorted({r.ceiling.method for r in results.values()})),
            "n_images": len({(p["subject"], i) for p in out.values() for i in p["image_ids"]}),
            "n_panels": len(out), "layers": layers, "settings": self.settings(), "panels": out,
            "top1_measured": None,
        }
        return extras, rows

    @classmethod
    def plot(cls, results_dir: Path, dataset: str, output: Path | None = None, **options: Any
             ) -> tuple[list[Path], list[str]]:
        """IT predictivity against ImageNet top-1, one subplot per panel (the 2023 paper's Figure 3)."""
        from benchmark.neural.plots import plot_pareto_neural

        options.pop("accuracy", None)  # this task measures no accuracy: the x axis is the published top-1
        options.pop("label_top", None)
        if options.pop("explainer", "saliency") != "saliency":
            from model_zoo.errors import InvalidInputError

            raise InvalidInputError(f"--explainer: the neural task of {dataset!r} computes no maps")
        return plot_pareto_neural(results_dir, dataset, output, **options)

    def summarize(self, columns: Mapping[str, np.ndarray], extras: Mapping[str, Any],
                  references: References) -> dict[str, Any]:
        fields = score_fields(extras.get("score"), score_name=self.score_name, error=extras.get("error"),
                              n=extras.get("n_images"), ceiling=extras.get("ceiling"))
        return {**{k: v for k, v in extras.items() if k not in fields}, **fields}
