"""The framework-neutral adapter contract: validation, batching and out-of-memory fallback.

An adapter turns one model (PyTorch or Keras) into two functions on the boundary format of
DESIGN.md: images float32 NHWC in [0, 255] at 224x224 in, and

* ``predict(images)`` -> logits, float32 (N, C) (C = 1000 for ImageNet models);
* ``saliency(images, labels)`` -> float32 (N, 224, 224) maps, ``max_c |d logit[label] / d image|``
  (the paper's explainer, on the logit rather than the softmax; conventions.md "Saliency");
* ``explain(images, labels, explainer)`` -> float32 (N, 224, 224) maps of any
  :class:`~model_zoo.explainers.Explainer` (``saliency`` is the default and takes the same path).

Framework subclasses implement one chunk at a time; this module splits the batch into chunks,
halves the chunk on out-of-memory errors (remembering the size that worked), and checks inputs and
outputs so that a bad call fails with an :class:`~model_zoo.errors.InvalidInputError` naming the
argument, not deep inside a framework.
"""
from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import numpy as np

from model_zoo.errors import AlignbenchError, InvalidInputError
from model_zoo.explainers import Explainer, get_explainer, is_default
from model_zoo.explainers.compute import attribute, reduce_channels
from model_zoo.preprocessing import BOUNDARY_SIZE, Preprocess

if TYPE_CHECKING:  # the catalog is another module's concern; adapters only carry its spec along
    from model_zoo.catalog import ModelSpec

log = logging.getLogger(__name__)

#: Chunk size when the caller gives none: bounded so that a large call cannot exhaust host memory
#: (on CPU an allocation failure kills the process instead of raising).
DEFAULT_BATCH_SIZE = 32
PRECISIONS = ("float32", "bfloat16", "float16")
# Ways to run the same float32 network faster (TorchAdapter.set_fast_path; bench/bench_saliency.py
# --fast-paths measures each: speed-up and map agreement with "eager"). None changes the
# arithmetic's precision; they reorder it (memory layout, fused kernels), so maps agree with eager
# ones to float32 rounding, not bit for bit.
FAST_PATHS = ("eager", "channels_last", "compile", "fused")
# Pixels a hair outside [0, 255] come from float rounding in upstream resizes, not from bad input.
_RANGE_SLACK = 1e-2

T = TypeVar("T")


class Adapter(ABC):
    """One model behind the boundary contract (see the module docstring).

    Attributes: ``framework`` ("torch" or "keras"), ``spec`` (the catalog entry, or None for a
    wrapped user model), ``weights_sha256`` (provenance, or None), ``preprocess`` (None = the model
    takes the boundary images as they are), ``precision``, ``batch_size`` (the chunk size in use;
    it shrinks after an out-of-memory error).
    """

    framework: str = ""

    def __init__(
        self,
        preprocess: Preprocess | None,
        *,
        spec: "ModelSpec | None" = None,
        precision: str = "float32",
        weights_sha256: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise InvalidInputError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise InvalidInputError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.preprocess = Preprocess.coerce(preprocess)
        self.spec = spec
        self.precision = precision
        self.weights_sha256 = weights_sha256
        self._chunk = batch_size or DEFAULT_BATCH_SIZE
        self.num_classes: int | None = None  # learnt from the first forward pass when not known earlier

    # ------------------------------------------------------------------ public API
    @property
    def batch_size(self) -> int:
        """Images per forward pass (after any out-of-memory reduction)."""
        return self._chunk

    @property
    def name(self) -> str:
        """The catalog id, or a description of the wrapped model, for messages."""
        spec_id = getattr(self.spec, "id", None)
        return str(spec_id) if spec_id else self._describe_model()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Logits of (N, 224, 224, 3) float32 [0, 255] RGB images -> (N, C) float32."""
        images = check_images(images)
        logits = self._chunked(len(images), lambda a, b: self._predict_chunk(images[a:b]))
        out = np.concatenate(logits) if logits else np.zeros((0, self.num_classes or 0), np.float32)
        self._check_finite(out, "logits")
        return out

    def saliency(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Saliency maps (N, 224, 224) float32 >= 0 of the logit ``labels[i]`` of image ``i``."""
        return self.predict_and_saliency(images, labels)[1]

    def predict_and_saliency(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, C) and saliency maps (N, 224, 224) from one forward and one backward pass."""
        images = check_images(images)
        labels = check_labels(labels, len(images), self.num_classes)
        parts = self._chunked(len(images), lambda a, b: self._saliency_chunk(images[a:b], labels[a:b]))
        if not parts:
            return np.zeros((0, self.num_classes or 0), np.float32), np.zeros((0, BOUNDARY_SIZE, BOUNDARY_SIZE), np.float32)
        logits = np.concatenate([p[0] for p in parts])
        maps = np.concatenate([p[1] for p in parts])
        self._check_finite(logits, "logits")
        self._check_finite(maps, "saliency maps")
        return logits, maps

    def explain(self, images: np.ndarray, labels: np.ndarray, explainer: "str | Explainer | None" = None) -> np.ndarray:
        """Maps (N, 224, 224) float32 of ``explainer`` (a name or an :class:`Explainer`; None: ``saliency``)
        for class ``labels[i]`` of image ``i``."""
        return self._explain(images, labels, explainer, with_logits=False)[1]

    def predict_and_explain(self, images: np.ndarray, labels: np.ndarray,
                            explainer: "str | Explainer | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, C) of the clean images and ``explainer``'s maps (N, 224, 224), float32."""
        return self._explain(images, labels, explainer, with_logits=True)

    def _explain(self, images: np.ndarray, labels: np.ndarray, explainer: "str | Explainer | None",
                 *, with_logits: bool) -> tuple[np.ndarray, np.ndarray]:
        spec = get_explainer(explainer)
        if is_default(spec):
            return self.predict_and_saliency(images, labels)
        images = check_images(images)
        labels = check_labels(labels, len(images), self.num_classes)
        if spec.method == "grad-cam":
            parts = self._chunked(len(images), lambda a, b: self._gradcam_chunk(images[a:b], labels[a:b], spec))
        else:
            # the copies of `step` images fill about one chunk; _rows_gradients splits them further
            step = max(1, self._chunk // spec.samples)
            parts = [self._explain_chunk(images[a:a + step], labels[a:a + step], spec, a, with_logits)
                     for a in range(0, len(images), step)]
        if not parts:
            return np.zeros((0, self.num_classes or 0), np.float32), np.zeros((0, BOUNDARY_SIZE, BOUNDARY_SIZE), np.float32)
        logits = np.concatenate([p[0] for p in parts])
        maps = np.concatenate([p[1] for p in parts])
        if with_logits:
            self._check_finite(logits, "logits")
        self._check_finite(maps, f"{spec.name} maps")
        return logits, maps

    def explain_affine(self, explainer: Explainer) -> tuple[np.ndarray, np.ndarray] | None:
        """(gain, offset), float32 (3,) RGB, of the input the explainer differentiates,
        ``z = image * gain + offset``; None when that is the image itself."""
        if explainer.wrt == "image" or self.preprocess is None:
            return None
        gain, offset = self.preprocess.affine()
        return np.asarray(gain, np.float32), np.asarray(offset, np.float32)

    def _explain_chunk(self, images: np.ndarray, labels: np.ndarray, spec: Explainer, first: int,
                       with_logits: bool) -> tuple[np.ndarray, np.ndarray]:
        affine = self.explain_affine(spec)
        z = images if affine is None else images * affine[0] + affine[1]

        def gradients(rows: np.ndarray, row_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            parts = self._chunked(len(rows), lambda a, b: self._gradient_chunk(
                rows[a:b], row_labels[a:b], spec.target, affine))
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

        logits, attribution = attribute(spec, z, labels, gradients, first=first)
        if logits is None:  # no pass saw the clean images: one more forward when the caller wants logits
            logits = self.predict(images) if with_logits else np.zeros((len(images), 0), np.float32)
        return logits, reduce_channels(attribution, spec.reduction)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, precision={self.precision!r}, "
            f"batch_size={self._chunk}, preprocess={self.preprocess!r})"
        )

    # ------------------------------------------------------------------ framework hooks
    @abstractmethod
    def _predict_chunk(self, images: np.ndarray) -> np.ndarray:
        """Logits (n, C) float32 of a validated chunk."""

    @abstractmethod
    def _saliency_chunk(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits (n, C), maps (n, 224, 224)) float32 of a validated chunk; labels int64 (n,)."""

    @abstractmethod
    def _gradient_chunk(self, z: np.ndarray, labels: np.ndarray, target: str,
                        affine: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """(logits (n, C), d target / d z (n, 224, 224, 3)) float32 of differentiated inputs ``z``
        (the image when ``affine`` is None, else ``image * gain + offset``); ``target``: "logit" |
        "probability" of class ``labels[i]``."""

    @abstractmethod
    def _gradcam_chunk(self, images: np.ndarray, labels: np.ndarray, spec: Explainer) -> tuple[np.ndarray, np.ndarray]:
        """(logits (n, C), Grad-CAM maps (n, 224, 224) >= 0) float32 of a validated chunk."""

    @abstractmethod
    def _is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the framework's out-of-memory error."""

    def _release_memory(self) -> None:
        """Give cached accelerator memory back after an out-of-memory error."""

    def _describe_model(self) -> str:
        return "model"

    # ------------------------------------------------------------------ shared helpers
    def _set_num_classes(self, width: int, labels: np.ndarray | None = None) -> None:
        """Record the logit width and check that ``labels`` index into it."""
        self.num_classes = int(width)
        if labels is not None and labels.size and int(labels.max()) >= width:
            raise InvalidInputError(
                f"labels: {int(labels.max())} is out of range for {self.name}, whose logits have {width} classes"
            )

    def _chunked(self, n: int, run: Callable[[int, int], T]) -> list[T]:
        """Apply ``run(start, stop)`` over [0, n) in chunks, halving the chunk on out-of-memory."""
        out: list[T] = []
        start = 0
        while start < n:
            size = min(self._chunk, n - start)
            try:
                out.append(run(start, start + size))
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled here
                if not self._is_out_of_memory(exc):
                    raise
                self._release_memory()
                if size == 1:
                    raise AlignbenchError(
                        f"{self.name}: out of memory with a batch of one image "
                        f"({self.framework}, precision {self.precision}); use a device with more memory "
                        "or a lower precision"
                    ) from exc
                self._chunk = max(1, size // 2)
                log.warning("%s: out of memory at batch size %d; retrying with %d", self.name, size, self._chunk)
                continue
            start += size
        return out

    def _check_finite(self, array: np.ndarray, what: str) -> None:
        if not np.isfinite(array).all():
            bad = int(np.count_nonzero(~np.isfinite(array).reshape(len(array), -1).any(axis=1)))
            raise InvalidInputError(
                f"{what}: {self.name} produced NaN/inf values for {bad} image(s) "
                f"(precision {self.precision}); check the images and the model's weights"
            )


def check_images(images: Any) -> np.ndarray:
    """Validate boundary images: (N, 224, 224, 3), floating, finite, in [0, 255]; returns float32.

    Integer arrays are refused rather than converted: uint8 input usually means a pipeline that
    skipped the float conversion, and a silent cast would hide it.
    """
    if not isinstance(images, np.ndarray):
        raise InvalidInputError(f"images must be a numpy array, got {type(images).__name__}")
    expected = (BOUNDARY_SIZE, BOUNDARY_SIZE, 3)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise InvalidInputError(
            f"images must have shape (N, {BOUNDARY_SIZE}, {BOUNDARY_SIZE}, 3) (NHWC, RGB), got {images.shape}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise InvalidInputError(
            f"images must be float32 in [0, 255], got dtype {images.dtype} (use images.astype(np.float32))"
        )
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.size:
        lo, hi = float(images.min()), float(images.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise InvalidInputError("images contain NaN or inf values")
        if lo < -_RANGE_SLACK or hi > 255 + _RANGE_SLACK:
            raise InvalidInputError(
                f"images must be in [0, 255] (raw pixels, no normalisation), got values in [{lo:.4g}, {hi:.4g}]"
            )
        if hi <= 1.0 and hi > 0:
            warnings.warn(
                "images are all <= 1: they look scaled to [0, 1], but adapters expect [0, 255]",
                RuntimeWarning,
                stacklevel=3,
            )
    return images


def check_labels(labels: Any, n: int, num_classes: int | None = None) -> np.ndarray:
    """Validate class labels: integers, shape (n,), in [0, num_classes); returns int64."""
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise InvalidInputError(f"labels must have shape ({n},) (one per image), got {labels.shape}")
    if n and not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.isfinite(labels)) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise InvalidInputError(f"labels must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if n:
        lo, hi = int(labels.min()), int(labels.max())
        limit = num_classes if num_classes is not None else None
        if lo < 0 or (limit is not None and hi >= limit):
            raise InvalidInputError(
                f"labels must be in 0..{(limit or 1000) - 1}, got values in [{lo}, {hi}]"
            )
    return labels
