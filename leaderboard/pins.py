"""Pinned dataset facts: what the leaderboard checks every bundle against, never taken from a bundle.

``leaderboard/known_datasets.json`` (schema :data:`SCHEMA`) holds, per dataset the leaderboard
knows, the numbers a submitter must not choose: the valid-image count, the dataset fingerprint,
the sha256 of its image-id set, the human ceiling, and whether the data is generated
(``synthetic``). Each entry says how it was computed (``how``: the command, the code revision, the
ceiling record's source and method, a generator's parameters), and every entry is written by
:func:`measure_pin` from the data and the ceiling record the suite computes (``alignbench
leaderboard pin DATASET --write``), never typed in. Entries of datasets not measured yet keep
``n_images``/``fingerprint``/``image_ids_sha256`` null and are *unpinned*: bundles on them are
listed apart, as unverified (:mod:`leaderboard.site`). A published ceiling (ClickMe's) is pinned
with its citation from :data:`benchmark.baselines.PUBLISHED_CEILINGS`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_write_text

SCHEMA = "alignbench.known-datasets/2"
TABLE_FILE = "known_datasets.json"
#: The datasets of the paper and its follow-up the leaderboard is about (name -> task).
LEADERBOARD_DATASETS = {"clickme-val": "maps", "clickme-val-all": "maps", "clicktionary": "maps",
                        "psychophysics": "psychophysics", "it-arcaro2020": "neural"}
#: A record's ceiling may differ from the pinned one by this much (relative): a computed ceiling is a
#: float32 pipeline whose last digits differ between CPU kinds; a tampered one differs by far more.
CEILING_RTOL = 1e-6
IDS_METHOD = "sha256 of the sorted image ids, one per line (utf-8), as 'sha256:<hex>'"
_COMMENT = ("Facts the leaderboard checks every submission against (never a number the bundle chose). "
            "Written by `alignbench leaderboard pin DATASET --write` from the data and the ceiling record the "
            "suite computes; each entry's 'how' says how. An entry whose n_images/fingerprint/image_ids_sha256 "
            "are null is unpinned: the data was not available where the table was written, and bundles on it "
            "are listed apart as unverified. Do not edit by hand.")
_ENTRY_KEYS = {"task", "synthetic", "n_images", "fingerprint", "image_ids_sha256", "ceiling", "ceiling_source",
               "how", "note"}


@dataclass(frozen=True)
class DatasetPin:
    """One dataset's pinned facts. ``n_images``, ``fingerprint`` and ``image_ids_sha256`` are None
    until measured; ``ceiling`` (a Spearman in (0, 1]) may be pinned on its own (a published value)."""

    name: str
    task: str = "maps"
    synthetic: bool = False
    n_images: int | None = None
    fingerprint: str | None = None
    image_ids_sha256: str | None = None
    ceiling: float | None = None
    ceiling_source: str | None = None
    how: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def pinned(self) -> bool:
        """Whether count, fingerprint and id set are all pinned (a bundle can then be fully checked)."""
        return None not in (self.n_images, self.fingerprint, self.image_ids_sha256)

    def to_json(self) -> dict[str, Any]:
        out = {"task": self.task, "synthetic": self.synthetic, "n_images": self.n_images,
               "fingerprint": self.fingerprint, "image_ids_sha256": self.image_ids_sha256,
               "ceiling": self.ceiling, "ceiling_source": self.ceiling_source, "how": dict(self.how)}
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, name: str, data: Any, where: str) -> "DatasetPin":
        """Parse one entry; raises :class:`InvalidInputError` naming ``where`` and the field."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"{where}: datasets.{name}: expected an object")
        unknown = sorted(set(data) - _ENTRY_KEYS)
        if unknown:
            raise InvalidInputError(f"{where}: datasets.{name}: unknown field(s) {unknown}")

        def get(key: str, kinds: tuple[type, ...], default: Any = None) -> Any:
            value = data.get(key, default)
            if value is not None and (isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds)):
                raise InvalidInputError(f"{where}: datasets.{name}.{key}: expected {'/'.join(k.__name__ for k in kinds)}"
                                        f" or null, found {value!r}")
            return value

        n = get("n_images", (int,))
        if n is not None and n < 1:
            raise InvalidInputError(f"{where}: datasets.{name}.n_images: expected a positive count, found {n}")
        ceiling = get("ceiling", (int, float))
        if ceiling is not None and not 0 < ceiling <= 1:
            raise InvalidInputError(f"{where}: datasets.{name}.ceiling: expected a number in (0, 1], found {ceiling}")
        for key in ("fingerprint", "image_ids_sha256"):
            value = get(key, (str,))
            if value is not None and not value.startswith("sha256:"):
                raise InvalidInputError(f"{where}: datasets.{name}.{key}: expected 'sha256:<hex>', found {value!r}")
        return cls(name=name, task=get("task", (str,), "maps"), synthetic=bool(get("synthetic", (bool,), False)),
                   n_images=n, fingerprint=data.get("fingerprint"), image_ids_sha256=data.get("image_ids_sha256"),
                   ceiling=None if ceiling is None else float(ceiling), ceiling_source=get("ceiling_source", (str,)),
                   how=get("how", (dict,)) or {}, note=get("note", (str,)))


@dataclass
class PinTable:
    """The known-datasets table: pins by dataset name (``path``: where it was read from, if anywhere)."""

    pins: dict[str, DatasetPin]
    path: Path | None = None

    def get(self, name: str) -> DatasetPin | None:
        return self.pins.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.pins

    def names(self) -> list[str]:
        return sorted(self.pins)

    def with_pin(self, pin: DatasetPin) -> "PinTable":
        return PinTable({**self.pins, pin.name: pin}, self.path)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "_comment": _COMMENT,
                "datasets": {name: self.pins[name].to_json() for name in sorted(self.pins)}}

    def write(self, path: str | Path) -> Path:
        """Write the table atomically (stable key order, so a diff shows exactly what changed)."""
        return atomic_write_text(path, json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n")


def package_table_path() -> Path:
    """``leaderboard/known_datasets.json`` of this installation."""
    return Path(str(resources.files("leaderboard").joinpath(TABLE_FILE)))


def load_table(path: str | Path | None = None) -> PinTable:
    """Read a pin table (default: the package's). A malformed table raises
    :class:`InvalidInputError` naming the file and field: the leaderboard never runs unpinned by accident."""
    path = Path(path) if path is not None else package_table_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a readable known-datasets table ({exc})") from None
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
        raise InvalidInputError(f"{path}: schema: expected {SCHEMA!r}, found {found!r}")
    datasets = data.get("datasets")
    if not isinstance(datasets, Mapping):
        raise InvalidInputError(f"{path}: datasets: expected an object of dataset entries")
    return PinTable({str(k): DatasetPin.from_json(str(k), v, str(path)) for k, v in datasets.items()}, path)


def as_table(pins: "PinTable | str | Path | None") -> PinTable:
    """A table from a table, a path, or None (the package's)."""
    return pins if isinstance(pins, PinTable) else load_table(pins)


# ----------------------------------------------------------------------------------- measuring
def ids_digest(ids: Iterable[str]) -> str:
    """:data:`IDS_METHOD` of ``ids`` (order does not matter; duplicates are kept, so they change it)."""
    return "sha256:" + hashlib.sha256("\n".join(sorted(str(i) for i in ids)).encode("utf-8")).hexdigest()


def image_ids(dataset: Any) -> list[str] | None:
    """The ids of a dataset's valid images, in scoring order, as the runner writes them into a scores
    file; None for tasks without per-image maps (psychophysics, neural). ClickMe shards are listed from
    their validation index (nothing decoded); other maps datasets are read once."""
    from benchmark.datasets.clickme import ClickMeDataset, record_id, shard_index

    if getattr(dataset, "task", "maps") != "maps":
        return None
    if isinstance(dataset, ClickMeDataset):
        import numpy as np

        return [record_id(p, int(i)) for p in dataset.files() for i in np.flatnonzero(shard_index(p).valid_mask)]
    items = getattr(dataset, "items", None)
    if callable(items):
        return [str(it.image_id) for it in items()]
    return [str(i) for batch in dataset.batches(256) for i in batch.ids]


def _generator(dataset: Any) -> dict[str, Any] | None:
    """A generated ClickMe-format folder's manifest (function and parameters): enough to regenerate it."""
    files = list(getattr(dataset, "files", lambda: [])())
    manifest = Path(files[0]).parent / "manifest.json" if files else None
    if manifest is None or not manifest.is_file():
        return None
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not doc.get("synthetic"):
        return None
    return {"function": doc.get("generator"), "params": doc.get("params")}


def measure_pin(dataset: Any, results_dir: str | Path, *, command: str, extra_how: Mapping[str, Any] | None = None,
                name: str | None = None) -> DatasetPin:
    """Measure ``dataset``'s pin: count, fingerprint and id set from the data; the ceiling from its
    ceiling record (computed into ``results_dir/<dataset>/_ceiling.json`` if missing, as ``alignbench
    run`` does). ``command``: how this was invoked (recorded in ``how``)."""
    from benchmark import baselines
    from benchmark.provenance import provenance

    task = getattr(dataset, "task", "maps")
    ids = image_ids(dataset)
    n = int(dataset.num_images())
    if n < 1:
        raise InvalidInputError(f"dataset {dataset.name}: no valid image to pin")
    if ids is not None and len(ids) != n:
        raise InvalidInputError(f"dataset {dataset.name}: {len(ids)} image ids for {n} valid images")
    prov = provenance()
    how: dict[str, Any] = {"command": command, "date": prov["date"],
                           "code": {"alignbench_version": prov["alignbench_version"], "git_commit": prov["git_commit"]},
                           "n_images": "valid images after the dataset's validation scan (num_images())",
                           "fingerprint": "the dataset's own fingerprint() over its files",
                           "image_ids": IDS_METHOD if ids is not None else "no per-image ids for this task"}
    ceiling = source = None
    if task == "maps":
        record = baselines.ensure_ceiling(dataset, results_dir)
        if record is not None:
            ceiling, source = float(record["value"]), str(record.get("source"))
            how["ceiling"] = {"record": f"<results>/{dataset.name}/{baselines.CEILING_FILE} (computed by "
                                        "benchmark.baselines.ensure_ceiling, as `alignbench run` does)",
                              "source": source, "method": record.get("method")}
        else:
            how["ceiling"] = "none: no participant maps and no published ceiling"
    generator = _generator(dataset)
    if generator is not None:
        how["generator"] = generator
    how.update(extra_how or {})
    synthetic = bool(getattr(dataset, "synthetic", False)) or generator is not None
    return DatasetPin(name=name or dataset.name, task=task, synthetic=synthetic, n_images=n,
                      fingerprint=dataset.fingerprint(), image_ids_sha256=None if ids is None else ids_digest(ids),
                      ceiling=ceiling, ceiling_source=source, how=how)


def unmeasured_pin(name: str) -> DatasetPin:
    """The entry of a leaderboard dataset not measured yet: only a published ceiling, with its citation."""
    from benchmark import baselines

    task = LEADERBOARD_DATASETS[name]
    published = next((v for k, v in baselines.PUBLISHED_CEILINGS.items() if name.startswith(k)), None) \
        if task == "maps" else None
    how: dict[str, Any] = {"n_images": None, "fingerprint": None, "image_ids": None}
    if published is not None:
        how["ceiling"] = "benchmark.baselines.PUBLISHED_CEILINGS (benchmark.metrics.CLICKME_PUBLISHED_CEILING)"
    return DatasetPin(name=name, task=task, ceiling=None if published is None else float(published[0]),
                      ceiling_source=None if published is None else f"published constant: {published[1]}", how=how,
                      note=f"not measured: the data was not available where this table was written; run `alignbench "
                           f"leaderboard pin {name} --write` on the maintainers' copy")
