"""``alignbench plot-maps``: the paper's Figure 2 for chosen images of a dataset.

Which images: ids given by the user, or the N most and least aligned images of one model's run (its
per-image scores file). Which maps: for each model, the maps saved by ``alignbench run --save-maps``
when their identity matches the model's record (:mod:`benchmark.maps_store`), else recomputed for
just those images (the model loaded through the zoo, the images read from the dataset at their rows).
The Spearman printed under each map is computed from the map drawn, with the task's own scoring
(:func:`benchmark.tasks.maps.score_batch`), and checked against the record's per-image scores: a
difference is reported, never hidden.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmark import maps_store, records
from benchmark.plots_maps import DISPLAY_SIGMA, draw_map_grid
from model_zoo.errors import InvalidInputError

SOURCES = ("auto", "store", "recompute")
RHO_TOLERANCE = 1e-6  # recomputed vs recorded per-image Spearman (float32 maps, same code: equal)


@dataclass
class MapsFigureConfig:
    """What to draw. ``models``: model ids or exported model folders, named as ``alignbench run``
    names them (with ``weights`` / ``precision``); ``image_ids``, or ``most`` / ``least``: the N most
    / least aligned images by the per-image Spearman of ``by`` (default: the first model);
    ``source``: ``auto`` (saved maps when they match the record, else recomputed), ``store`` or
    ``recompute``; ``explainer``: passed to ``adapter.explain`` when recomputing (None: the task's
    saliency); ``output``: a file (its extension picks the format) or a stem."""

    dataset: str
    models: Sequence[str]
    results_dir: Path = Path("results")
    image_ids: Sequence[str] = ()
    most: int = 0
    least: int = 0
    by: str | None = None
    weights: str = "pretrained"
    precision: str = "float32"
    device: str = "cpu"
    batch_size: int = 16
    source: str = "auto"
    explainer: str | None = None
    smooth_sigma: float | None = DISPLAY_SIGMA
    output: Path | None = None
    formats: Sequence[str] = ("png", "svg", "pdf")
    download: bool = True


@dataclass
class Selected:
    """The chosen images, in figure order, with a short label per row."""

    ids: list[str]
    labels: list[str] = field(default_factory=list)


def select_extremes(image_ids: Sequence[str], rho: Sequence[float], most: int, least: int) -> Selected:
    """The ``most`` images of highest and the ``least`` of lowest defined Spearman (NaN left out; ties
    broken by id), highest first then lowest first; an image is listed once."""
    if most < 0 or least < 0:
        raise InvalidInputError("--most / --least must be >= 0")
    pairs = [(float(r), str(i)) for i, r in zip(image_ids, rho) if r is not None and not math.isnan(float(r))]
    by_high = sorted(pairs, key=lambda p: (-p[0], p[1]))
    by_low = sorted(pairs, key=lambda p: (p[0], p[1]))
    out = Selected([])
    for k, (_, i) in enumerate(by_high[:most]):
        out.ids.append(i)
        out.labels.append(f"most aligned #{k + 1}")
    for k, (_, i) in enumerate(by_low[:least]):
        if i not in out.ids:
            out.ids.append(i)
            out.labels.append(f"least aligned #{k + 1}")
    return out


def fetch_images(data: Any, ids: Sequence[str], positions: dict[str, int]) -> tuple[np.ndarray, ...]:
    """(images (k,224,224,3), human maps (k,224,224), labels (k,)) of ``ids`` from the dataset: each
    read at its row (``positions``, from a scores file) when known and confirmed there, else by one
    pass over the dataset. An id the dataset does not hold is an error naming it."""
    found: dict[str, tuple[Any, Any, Any]] = {}
    for image_id in ids:
        row = positions.get(image_id)
        if row is None:
            continue
        batch = next(iter(data.batches(1, start=row, limit=1)), None)
        if batch is not None and list(batch.ids) == [image_id]:
            found[image_id] = (batch.images[0], batch.heatmaps[0], batch.labels[0])
    rest = [i for i in ids if i not in found]
    if rest:
        wanted = set(rest)
        for batch in data.batches(64):
            for k, image_id in enumerate(batch.ids):
                if image_id in wanted:
                    found[image_id] = (batch.images[k], batch.heatmaps[k], batch.labels[k])
            if wanted <= set(found):
                break
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInputError(f"--image-id: dataset {data.name} holds no image {', '.join(missing[:5])}")
    return tuple(np.stack([np.asarray(found[i][j]) for i in ids]) for j in range(3))


def compute_maps(adapter: Any, images: np.ndarray, labels: np.ndarray, explainer: str | None = None) -> np.ndarray:
    """The maps the maps task scores (``predict_and_saliency``), or ``adapter.explain(images, labels,
    explainer)`` for a named explainer."""
    if explainer is None:
        return adapter.predict_and_saliency(images, labels)[1]
    explain = getattr(adapter, "explain", None)
    if explain is None:
        raise InvalidInputError(f"--explainer {explainer}: this model's adapter has no explain()")
    return explain(images, labels, explainer)


@dataclass
class MapsFigure:
    """A drawn figure (``figure``: matplotlib Figure), its rows' image ids, the Spearman printed under
    each model's maps (display name -> (rows,)), and notes (differences from the records, sources)."""

    figure: Any
    image_ids: list[str]
    spearman: dict[str, np.ndarray]
    notes: list[str]
    dataset: str = ""


def plot_maps(config: MapsFigureConfig, *, task: Any = None, loader: Callable[..., Any] | None = None
              ) -> tuple[list[Path], list[str]]:
    """Draw the figure of ``config`` (:func:`build_maps_figure`) and write it in ``config.formats``
    (default ``RESULTS/<dataset>/maps.<fmt>``); returns (files written, notes)."""
    drawn = build_maps_figure(config, task=task, loader=loader)
    output = config.output or Path(config.results_dir) / records.safe_name(drawn.dataset, "dataset") / "maps"
    return save_paper_figure(drawn.figure, output, config.formats), drawn.notes


def build_maps_figure(config: MapsFigureConfig, *, task: Any = None, loader: Callable[..., Any] | None = None
                      ) -> MapsFigure:
    """The figure of ``config``, not written. ``task``: a maps task object instead of resolving
    ``config.dataset``; ``loader``: builds adapters (default :func:`model_zoo.load`)."""
    from benchmark.job import Job, JobConfig, resolve_device
    from benchmark.tasks import References, get_task
    from benchmark.tasks.base import ModelFailure, model_call
    from benchmark.tasks.maps import check_maps, score_batch

    if config.source not in SOURCES:
        raise InvalidInputError(f"--maps-from {config.source!r}: expected one of {', '.join(SOURCES)}")
    if not config.models:
        raise InvalidInputError("plot-maps: name at least one --model")
    task = task if task is not None else get_task(config.dataset, download=config.download)
    if not task.has_maps:
        raise InvalidInputError(f"plot-maps: the {task.kind} task of {task.name} has no per-image maps")
    jc = JobConfig(results_dir=Path(config.results_dir), weights=config.weights, device=resolve_device(config.device),
                   precision=config.precision, batch_size=config.batch_size)
    jobs = [Job(task, target, jc, references=References(), loader=loader) for target in config.models]
    notes: list[str] = []
    scored = {job.record_id: _scores(job, notes) for job in jobs}

    if config.image_ids:
        ids = [str(i) for i in dict.fromkeys(config.image_ids)]
        chosen = Selected(ids, [""] * len(ids))
        caption = None
    else:
        most, least = (config.most, config.least) if (config.most or config.least) else (3, 3)
        by = next((j for j in jobs if config.by in (None, j.record_id, j.model.target, j.model.model_id)), None)
        if by is None:
            raise InvalidInputError(f"--by {config.by}: not one of the models drawn ({', '.join(j.record_id for j in jobs)})")
        table = scored[by.record_id]
        if table is None:
            raise InvalidInputError(f"--most / --least rank the images by {by.record_id}'s per-image scores, "
                                    f"but {by.scores_path} does not exist: run `alignbench run` first, or pass --image-id")
        chosen = select_extremes(table["image_id"], table["spearman"], most, least)
        if not chosen.ids:
            raise InvalidInputError(f"{by.scores_path}: no image with a defined Spearman to choose from")
        caption = f"Rows: the {most} most and {least} least aligned images of {by.record_id} (per-image ρ)."
    positions: dict[str, int] = {}
    for table in scored.values():
        if table is not None:
            for row, image_id in enumerate(table["image_id"]):
                positions.setdefault(str(image_id), row)
    images, human, labels = fetch_images(task.data, chosen.ids, positions)

    drawn: dict[str, np.ndarray] = {}
    rho: dict[str, np.ndarray] = {}
    synthetic = bool(task.synthetic)
    for job in jobs:
        record = _record(job)
        synthetic = synthetic or bool((record or {}).get("dataset_synthetic"))
        name = _display_name(record, job.record_id, drawn)
        maps = _saved_maps(job, chosen.ids, config.source, notes)
        if maps is None:
            adapter = _load(job)
            parts = []
            for s in range(0, len(chosen.ids), config.batch_size):
                with model_call(job.record_id):
                    parts.append(compute_maps(adapter, images[s:s + config.batch_size],
                                              labels[s:s + config.batch_size], config.explainer))
            try:
                maps = check_maps(np.concatenate(parts), len(chosen.ids), job.record_id)
            except ModelFailure as exc:
                raise InvalidInputError(str(exc)) from None
        drawn[name] = maps
        rho[name] = score_batch(maps, human)["spearman"]
        _compare(job, scored[job.record_id], chosen.ids, rho[name], notes, recorded_explainer=config.explainer is None)

    row_labels = ["\n".join(filter(None, (lab, image_id, f"class {int(c)}")))
                  for lab, image_id, c in zip(chosen.labels, chosen.ids, labels)]
    fig = draw_map_grid(images, human, drawn, spearman=rho, row_labels=row_labels,
                        smooth_sigma=config.smooth_sigma, synthetic=synthetic, caption=caption)
    return MapsFigure(fig, list(chosen.ids), rho, notes, dataset=task.name)


def save_paper_figure(fig: Any, output: str | Path, formats: Sequence[str]) -> list[Path]:
    """:func:`benchmark.plots.save_figure` with TrueType fonts embedded in PDF (``pdf.fonttype`` 42,
    as publishers ask, instead of Type 3) and text kept as text in SVG."""
    import matplotlib

    from benchmark.plots import save_figure

    with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}):
        return save_figure(fig, output, formats)


def _scores(job: Any, notes: list[str]) -> dict[str, np.ndarray] | None:
    if not job.scores_path.exists():
        notes.append(f"{job.record_id}: no per-image scores ({job.scores_path}); ρ not checked against a record")
        return None
    return records.read_scores(job.scores_path)


def _record(job: Any) -> dict[str, Any] | None:
    try:
        return records.read_record(job.record_path) if job.record_path.exists() else None
    except InvalidInputError:
        return None


def _display_name(record: dict[str, Any] | None, record_id: str, taken: dict[str, Any]) -> str:
    name = str((record or {}).get("display_name") or record_id)
    return name if name not in taken else record_id


def _saved_maps(job: Any, ids: Sequence[str], source: str, notes: list[str]) -> np.ndarray | None:
    """The saved maps of ``ids`` when a store of this record's identity holds them; None: recompute."""
    if source == "recompute":
        return None
    store = maps_store.open_store(job.config.results_dir, job.task.name, job.record_id)
    if store is None:
        if source == "store":
            raise InvalidInputError(f"--maps-from store: {maps_store.store_path(job.config.results_dir, job.task.name, job.record_id)} "
                                    "does not exist (run `alignbench run --save-maps` first)")
        return None
    with store:
        if not store.matches(job.identity):
            message = f"{store.path} was saved under another identity than {job.record_id}'s record (other weights, data or settings)"
            if source == "store":
                raise InvalidInputError(message)
            notes.append(f"{message}: maps recomputed")
            return None
        return store.get(ids)


def _load(job: Any) -> Any:
    from benchmark.tasks.base import ModelFailure

    try:
        return job.load()
    except ModelFailure as exc:
        raise InvalidInputError(f"model {job.record_id}: could not be loaded to recompute its maps: {exc}") from None


def _compare(job: Any, table: dict[str, np.ndarray] | None, ids: Sequence[str], rho: np.ndarray,
             notes: list[str], *, recorded_explainer: bool) -> None:
    """Note every image whose ρ differs from the record's per-image scores."""
    if table is None or not recorded_explainer:
        return
    recorded = {str(i): float(r) for i, r in zip(table["image_id"], table["spearman"])}
    for image_id, value in zip(ids, rho):
        if image_id not in recorded:
            continue
        old = recorded[image_id]
        same = (math.isnan(old) and math.isnan(value)) or abs(old - float(value)) <= RHO_TOLERANCE
        if not same:
            notes.append(f"{job.record_id}, image {image_id}: ρ {float(value):.6f} from the drawn map, "
                         f"{old:.6f} in {job.scores_path.name}")
