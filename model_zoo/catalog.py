"""The model catalog: one :class:`ModelSpec` per row of ``catalog.csv``, parsed and validated.

``catalog.csv`` starts from the reference reconstruction of the paper's model list
(``shared/reference/models.csv``: every row and column kept) and adds four columns:

* ``channel_order``: ``RGB``, or ``BGR`` for Keras caffe-mode models (VGG16/19, ResNet50/152);
* ``builder``: which module of :mod:`model_zoo.builders` builds the architecture;
* ``weights_url``: the checkpoint fetched into ``cache_dir("weights")`` (blank where the source library's
  own hub/cache fetches the weights: timm, torchvision, keras.applications, open_clip);
* ``weights_sha256``: expected digest of that file (blank: not known, the digest is recorded instead).

``framework`` is the framework alignbench runs a model in. It differs from the reference (the
authors' framework) for the rows of :data:`FRAMEWORK_CHANGED`.

Two numeric columns were made exact where the reference rounded a library constant: Keras caffe-mode
mean (``keras.applications.imagenet_utils``: BGR 103.939, 116.779, 123.68, written in RGB 0-1 units) and
the 1/255 std that marks "feed raw 0-255 pixels".

This module imports neither torch nor TensorFlow.
"""
from __future__ import annotations

import csv
import difflib
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any, Iterable, Mapping

from model_zoo.errors import InvalidInputError, UnknownModelError

FAMILIES = ("cnn", "cnn_extra_data", "transformer", "self_supervised", "robust", "harmonized")
FRAMEWORKS = ("torch", "keras")
IN_PAPER_VALUES = ("yes", "likely", "guess", "no")
PAPER_LEVELS = ("yes", "likely", "guess")  # a row is one of the paper's models at one of these confidences
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "")
CHANNEL_ORDERS = ("RGB", "BGR")

# The paper's own family counts for its compared models (text: 50 CNN + 6 CNN extra data + 10 ViT +
# 6 self-supervised + 13 robust). They add to 85 although its abstract says 84 (models_notes.md).
PAPER_FAMILY_COUNTS = {"cnn": 50, "cnn_extra_data": 6, "transformer": 10, "self_supervised": 6, "robust": 13}

_REQUIRED = ("id", "display_name", "family", "framework", "source", "source_id", "input_size", "builder")


# Rows run in another framework than the reference's (the authors'): reference -> catalog. The
# authors built these with keras-cv-attention-models under Keras 2, whose MaxViT and LeViT do not
# build under Keras 3; their weights are converted on load to the timm models that compute the same
# function (model_zoo.convert, model_zoo.builders.harmonized).
FRAMEWORK_CHANGED = {
    "harmonized_convnext_tiny": ("keras", "torch"),
    "harmonized_maxvit_tiny": ("keras", "torch"),
    "harmonized_levit_128": ("keras", "torch"),
}

# Harmonized catalog rows -> the catalog row of the same architecture without the harmonizer.
HARMONIZED_BASES = {
    "harmonized_vgg16": "keras_vgg16",
    "harmonized_resnet50v2": "keras_resnet50v2",
    "harmonized_efficientnet_b0": "keras_efficientnetb0",
    "harmonized_vit_b16": "vit_keras_vit_b16",
    "harmonized_convnext_tiny": "timm_convnext_tiny",
    "harmonized_levit_128": "timm_levit_128",
}


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry. Pixel statistics are RGB (also for BGR models), in 0-1 units.

    ``mean``/``std`` of ``None`` mean no normalisation (the model takes ``x * scale`` directly).
    ``top1`` is the published ImageNet-1k top-1 in percent, ``None`` where none was published.
    """

    id: str
    display_name: str
    family: str
    framework: str
    source: str
    source_id: str
    input_size: int = 224
    interpolation: str = "bilinear"
    crop_pct: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    scale: float = 1 / 255
    channel_order: str = "RGB"
    top1: float | None = None
    top1_source: str = ""
    in_paper: str = "no"
    evidence: str = ""
    licence: str = ""
    notes: str = ""
    builder: str = ""
    weights_url: str = ""
    weights_sha256: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def harmonized(self) -> bool:
        return self.family == "harmonized"

    @property
    def base_model(self) -> str | None:
        """For a harmonized model, the id of the same architecture trained without the harmonizer
        (where the Pareto figure's arrow starts); ``None`` when unknown."""
        return self.meta.get("base_model") or HARMONIZED_BASES.get(self.id)

    @property
    def paper_model(self) -> bool:
        """One of the paper's 85 compared models (the harmonized four are counted apart)."""
        return self.in_paper in PAPER_LEVELS and not self.harmonized

    def preprocess(self):
        """The :class:`model_zoo.preprocessing.Preprocess` the adapter applies inside its graph."""
        from model_zoo.preprocessing import Preprocess

        return Preprocess(
            input_size=self.input_size,
            interpolation=self.interpolation or "bilinear",
            mean=self.mean,
            std=self.std,
            scale=self.scale,
            channel_order=self.channel_order,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "meta"}
        out["harmonized"] = self.harmonized
        out["meta"] = dict(self.meta)
        return out


def _triple(value: str, column: str, row_id: str) -> tuple[float, float, float] | None:
    if not value.strip():
        return None
    try:
        parts = tuple(float(p) for p in value.split(";"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(math.isfinite(p) for p in parts):
        raise InvalidInputError(f"catalog row {row_id!r}: column {column!r} must be 3 numbers separated by ';', got {value!r}")
    return parts  # type: ignore[return-value]


def _opt_float(value: str, column: str, row_id: str) -> float | None:
    if not value.strip():
        return None
    try:
        out = float(value)
    except ValueError:
        raise InvalidInputError(f"catalog row {row_id!r}: column {column!r} is not a number: {value!r}") from None
    if not math.isfinite(out):
        raise InvalidInputError(f"catalog row {row_id!r}: column {column!r} is not finite: {value!r}")
    return out


def _choice(value: str, allowed: Iterable[str], column: str, row_id: str) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidInputError(f"catalog row {row_id!r}: column {column!r} is {value!r}; expected one of {allowed}")
    return value


def spec_from_row(row: Mapping[str, str], *, where: str = "catalog.csv") -> ModelSpec:
    """Parse and validate one CSV row (all values strings) into a :class:`ModelSpec`."""
    row_id = (row.get("id") or "").strip()
    for col in _REQUIRED:
        if not (row.get(col) or "").strip():
            raise InvalidInputError(f"{where}: row {row_id or '?'!r} has an empty required column {col!r}")
    size = _opt_float(row["input_size"], "input_size", row_id)
    if size is None or size != int(size) or not 16 <= size <= 1024:
        raise InvalidInputError(f"{where}: row {row_id!r}: input_size must be an integer in [16, 1024], got {row['input_size']!r}")
    std = _triple(row.get("std", ""), "std", row_id)
    if std is not None and min(std) <= 0:
        raise InvalidInputError(f"{where}: row {row_id!r}: std must be positive, got {row['std']!r}")
    mean = _triple(row.get("mean", ""), "mean", row_id)
    if (mean is None) != (std is None):
        raise InvalidInputError(f"{where}: row {row_id!r}: give both mean and std or neither")
    top1 = _opt_float(row.get("top1", ""), "top1", row_id)
    if top1 is not None and not 0 < top1 <= 100:
        raise InvalidInputError(f"{where}: row {row_id!r}: top1 is a percentage, got {top1}")
    sha = (row.get("weights_sha256") or "").strip().lower()
    if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise InvalidInputError(f"{where}: row {row_id!r}: weights_sha256 must be 64 hex digits")
    return ModelSpec(
        id=row_id,
        display_name=row["display_name"].strip(),
        family=_choice(row["family"].strip(), FAMILIES, "family", row_id),
        framework=_choice(row["framework"].strip(), FRAMEWORKS, "framework", row_id),
        source=row["source"].strip(),
        source_id=row["source_id"].strip(),
        input_size=int(size),
        interpolation=_choice((row.get("interpolation") or "").strip(), INTERPOLATIONS, "interpolation", row_id)
        or "bilinear",
        crop_pct=_opt_float(row.get("crop_pct", ""), "crop_pct", row_id),
        mean=mean,
        std=std,
        channel_order=_choice((row.get("channel_order") or "RGB").strip(), CHANNEL_ORDERS, "channel_order", row_id),
        top1=top1,
        top1_source=(row.get("top1_source") or "").strip(),
        in_paper=_choice((row.get("in_paper") or "no").strip(), IN_PAPER_VALUES, "in_paper", row_id),
        evidence=(row.get("evidence") or "").strip(),
        licence=(row.get("licence") or "").strip(),
        notes=(row.get("notes") or "").strip(),
        builder=row["builder"].strip(),
        weights_url=(row.get("weights_url") or "").strip(),
        weights_sha256=sha,
    )


def parse_catalog(text: str, *, where: str = "catalog.csv") -> list[ModelSpec]:
    """Parse catalog CSV text; ids must be unique."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInputError(f"{where}: missing columns {missing}")
    specs, seen = [], set()
    for row in reader:
        spec = spec_from_row(row, where=where)
        if spec.id in seen:
            raise InvalidInputError(f"{where}: duplicate id {spec.id!r}")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def load_catalog() -> list[ModelSpec]:
    """The packaged catalog (``model_zoo/catalog.csv``), in file order."""
    text = resources.files("model_zoo").joinpath("catalog.csv").read_text(encoding="utf-8")
    return parse_catalog(text)


def unknown_model_error(model_id: str, known: Iterable[str]) -> UnknownModelError:
    """An :class:`UnknownModelError` whose message suggests the closest ids (difflib)."""
    known = list(known)
    close = difflib.get_close_matches(model_id, known, n=5, cutoff=0.5)
    # also match on substrings: "resnet50" should find "tv_resnet50", "keras_resnet50", ...
    close += [k for k in known if model_id.lower() in k.lower() and k not in close][: max(0, 8 - len(close))]
    hint = f"; did you mean: {', '.join(close)}?" if close else "; see `alignbench models list`"
    return UnknownModelError(f"unknown model {model_id!r}{hint}")
