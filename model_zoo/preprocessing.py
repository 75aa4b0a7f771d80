"""A model's input preprocessing, as data both framework adapters apply the same way.

Images reach an adapter as float32 NHWC in [0, 255] at 224x224 (DESIGN.md, "Conventions at the
boundaries"). Inside the differentiated function the adapter then, in this order:

1. resizes 224 -> ``input_size`` with ``interpolation`` (half-pixel centres, no antialias: the
   convention of ``tf.image.resize``, equal to ``F.interpolate(align_corners=False, antialias=False)``);
2. computes ``(x * scale - mean) / std`` per RGB channel (just ``x * scale`` when ``mean`` and ``std``
   are None, so ``Preprocess()`` maps to [0, 1]; pass ``preprocess=None`` to an adapter for no
   preprocessing at all);
3. reorders the channels to ``channel_order``.

No crop is applied: ClickMe images are already the 224x224 view the human saw, so a catalog row's
``crop_pct`` (an ImageNet evaluation recipe) does not apply to them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from model_zoo.errors import InvalidInputError

#: Size of the images that cross module boundaries (DESIGN.md).
BOUNDARY_SIZE = 224

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class Preprocess:
    """How a model wants its input, relative to float32 RGB images in [0, 255] at 224x224.

    ``mean`` and ``std`` are RGB, in the units of ``x * scale`` (0-1 units for the default scale).
    Keras "caffe" models are ``mean=(0.485, 0.458, 0.408)``, ``std=(1/255,)*3``,
    ``channel_order="BGR"``; Keras "tf" models ``mean=std=(0.5,)*3``; models that rescale
    internally take ``mean=(0,0,0)``, ``std=(1/255,)*3`` (i.e. raw pixels).

    Resizing note: ``bicubic`` is Keys' cubic with a=-0.75 in PyTorch and a=-0.5 in TensorFlow, so
    the two frameworks agree exactly only for ``bilinear`` and ``nearest``.
    """

    input_size: int = BOUNDARY_SIZE
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    scale: float = 1 / 255
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 1:
            raise InvalidInputError(f"preprocess.input_size must be a positive int, got {self.input_size!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise InvalidInputError(
                f"preprocess.interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}"
            )
        if self.channel_order not in CHANNEL_ORDERS:
            raise InvalidInputError(
                f"preprocess.channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}"
            )
        if (self.mean is None) != (self.std is None):
            raise InvalidInputError("preprocess.mean and preprocess.std must be given together (or both None)")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise InvalidInputError(f"preprocess.scale must be a positive finite number, got {self.scale!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                triple = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"preprocess.{name} must be 3 numbers (RGB), got {value!r}") from None
            if len(triple) != 3 or not all(math.isfinite(v) for v in triple):
                raise InvalidInputError(f"preprocess.{name} must be 3 finite numbers (RGB), got {value!r}")
            if name == "std" and any(v <= 0 for v in triple):
                raise InvalidInputError(f"preprocess.std must be positive, got {value!r}")
            object.__setattr__(self, name, triple)  # normalise lists to tuples (frozen dataclass)

    @property
    def resizes(self) -> bool:
        """Whether the adapter resizes the 224x224 boundary images."""
        return self.input_size != BOUNDARY_SIZE

    def affine(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Per-channel ``(gain, offset)`` in RGB order with ``normalised = x * gain + offset``.

        Folding scale, mean and std into one multiply-add keeps the differentiated graph short.
        """
        if self.mean is None or self.std is None:
            return (float(self.scale),) * 3, (0.0, 0.0, 0.0)  # type: ignore[return-value]
        gain = tuple(self.scale / s for s in self.std)
        offset = tuple(-m / s for m, s in zip(self.mean, self.std))
        return gain, offset  # type: ignore[return-value]

    @classmethod
    def coerce(cls, value: "Preprocess | Mapping[str, Any] | None") -> "Preprocess | None":
        """Accept a :class:`Preprocess`, a dict of its fields, or None (no preprocessing)."""
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise InvalidInputError(
                    f"preprocess: unknown field(s) {unknown}; expected some of {sorted(known)}"
                )
            return cls(**dict(value))
        raise InvalidInputError(
            f"preprocess must be a Preprocess, a dict or None, got {type(value).__name__}"
        )

    @classmethod
    def from_catalog_row(cls, row: Mapping[str, Any]) -> "Preprocess":
        """Build from a models.csv row (values as strings; blank = default).

        Columns used: ``input_size``, ``interpolation``, ``mean`` and ``std`` ("0.485;0.456;0.406"),
        and ``channel_order`` when present. Rows without that column get "BGR" when their ``notes``
        name the Keras caffe preprocessing ("RGB->BGR"), the only BGR models in the catalog.
        """
        rid = row.get("id", "?")

        def text(key: str) -> str:
            value = row.get(key)
            return "" if value is None else str(value).strip()

        def triple(key: str) -> tuple[float, float, float] | None:
            raw = text(key)
            if not raw:
                return None
            try:
                parts = tuple(float(p) for p in raw.split(";"))
            except ValueError:
                raise InvalidInputError(f"models.csv row {rid!r}: field {key!r} is not numbers: {raw!r}") from None
            if len(parts) != 3:
                raise InvalidInputError(f"models.csv row {rid!r}: field {key!r} needs 3 values, got {raw!r}")
            return parts  # type: ignore[return-value]

        size_text = text("input_size")
        try:
            input_size = int(float(size_text)) if size_text else BOUNDARY_SIZE
        except ValueError:
            raise InvalidInputError(f"models.csv row {rid!r}: field 'input_size' is not a number: {size_text!r}") from None
        order = text("channel_order").upper()
        if not order:
            order = "BGR" if "RGB->BGR" in text("notes").upper().replace(" ", "") else "RGB"
        try:
            return cls(
                input_size=input_size,
                interpolation=text("interpolation").lower() or "bilinear",
                mean=triple("mean"),
                std=triple("std"),
                channel_order=order,
            )
        except InvalidInputError as exc:
            raise InvalidInputError(f"models.csv row {rid!r}: {exc}") from None
