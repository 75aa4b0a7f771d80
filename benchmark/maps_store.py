"""The saved saliency maps of a run (``alignbench run --save-maps``): one compressed file per model.

Layout beside the records::

    results/<dataset>/<model>.maps.npz             the maps of every scored image (format below)
    results/<dataset>/.partial-maps/<model>/       compressed chunks of a run in progress (resume)

The file is a NumPy ``.npz`` (a zip, deflate-compressed) that :func:`numpy.load` opens: ``format``
(:data:`FORMAT`), ``identity`` (the JSON identity of the record the maps belong to, see
:func:`benchmark.job.identity`), ``image_id`` (N ids in scoring order) and one member per image,
``map_<row>`` (float32 (224, 224), the raw map the record's scores were computed from), so a few
images are read without decompressing the rest. Written atomically once the model's rows are all
scored, before its record; the chunks of an interrupted run are kept (keyed by the identity, like
the rows' chunks) and a resumed run carries on after them.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from benchmark import records
from model_zoo.errors import InvalidInputError
from model_zoo.fileio import atomic_output

FORMAT = "alignbench.maps/1"
SUFFIX = ".maps.npz"
COLUMNS = ("image_id", "maps")


def store_path(results_dir: str | Path, dataset: str, record_id: str) -> Path:
    """``<results>/<dataset>/<record id>.maps.npz``."""
    return (Path(results_dir) / records.safe_name(dataset, "dataset")
            / f"{records.safe_name(record_id, 'model id')}{SUFFIX}")


def partial_folder(results_dir: str | Path, dataset: str, record_id: str) -> Path:
    return Path(results_dir) / records.safe_name(dataset, "dataset") / ".partial-maps" / records.safe_name(record_id)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def write_store(path: str | Path, identity: Mapping[str, Any], chunks: Sequence[Mapping[str, np.ndarray]],
                image_ids: Sequence[str]) -> Path:
    """Write the store file from ``chunks`` (each ``{"image_id": (n,), "maps": (n, H, W)}``, in row
    order), which must hold exactly ``image_ids``; streamed, one chunk in memory at a time; atomic."""
    expected = [str(i) for i in image_ids]
    row = 0
    with atomic_output(path, suffix=".npz") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        def put(name: str, array: np.ndarray) -> None:
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(array), allow_pickle=False)

        put("format", np.asarray(FORMAT))
        put("identity", np.asarray(_json(identity)))
        put("image_id", np.asarray(expected))
        for chunk in chunks:
            ids = [str(i) for i in np.asarray(chunk["image_id"])]
            maps = np.asarray(chunk["maps"], dtype=np.float32)
            if ids != expected[row:row + len(ids)] or len(maps) != len(ids):
                raise ValueError(f"{path}: saved maps do not line up with the scored images at row {row}")
            for k in range(len(ids)):
                put(f"map_{row + k:07d}", maps[k])
            row += len(ids)
        if row != len(expected):
            raise ValueError(f"{path}: maps saved for {row} of {len(expected)} scored images")
    return Path(path)


class MapsStore:
    """One model's saved maps (read side). ``identity`` is the record identity they were saved under."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._npz = np.load(self.path, allow_pickle=False)
            fmt = str(self._npz["format"])
            self.identity = json.loads(str(self._npz["identity"]))
            self.image_ids = [str(i) for i in self._npz["image_id"]]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise InvalidInputError(f"{self.path}: not a readable maps store ({type(exc).__name__}: {exc})") from None
        if fmt != FORMAT:
            raise InvalidInputError(f"{self.path}: format {fmt!r}, expected {FORMAT!r}")
        self._rows = {image_id: row for row, image_id in enumerate(self.image_ids)}

    def __enter__(self) -> "MapsStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._npz.close()

    def matches(self, identity: Mapping[str, Any]) -> bool:
        """Whether these maps were saved under ``identity`` (the record's, in full)."""
        return _json(self.identity) == _json(identity)

    def get(self, image_ids: Sequence[str]) -> np.ndarray:
        """float32 (len(image_ids), H, W): the saved maps of ``image_ids``; an id not saved is an error
        naming it."""
        missing = [i for i in image_ids if i not in self._rows]
        if missing:
            raise InvalidInputError(f"{self.path}: no saved map for image id(s) {', '.join(missing[:5])}"
                                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return np.stack([self._npz[f"map_{self._rows[i]:07d}"] for i in image_ids]).astype(np.float32, copy=False)


def open_store(results_dir: str | Path, dataset: str, record_id: str) -> MapsStore | None:
    """The saved maps of ``record_id`` on ``dataset``, or None when there are none."""
    path = store_path(results_dir, dataset, record_id)
    return MapsStore(path) if path.exists() else None


def store_matches(results_dir: str | Path, dataset: str, record_id: str, identity: Mapping[str, Any]) -> bool:
    """Whether a readable store of ``record_id`` saved under ``identity`` exists."""
    try:
        store = open_store(results_dir, dataset, record_id)
    except InvalidInputError:
        return False
    if store is None:
        return False
    with store:
        return store.matches(identity)
