"""An explainer as data: which attribution method, of which output, reduced how over colour channels.

An :class:`Explainer` is a frozen value (hashable, JSON-able through :meth:`Explainer.to_dict`): two
equal explainers compute the same maps, and a record stores the full spec, so a score can always be
traced to the exact recipe. Adapters compute it with ``adapter.explain(images, labels, explainer)``.

Fields:

* ``method``: ``saliency`` (the input gradient), ``smoothgrad`` (the gradient averaged over noisy
  copies; Smilkov et al. 2017), ``integrated-gradients`` (Sundararajan et al. 2017, Gauss-Legendre
  steps as captum), ``gradient-x-input``, ``grad-cam`` (Selvaraju et al. 2017: ReLU of the
  gradient-weighted activations of the last convolutional stage, upsampled bilinearly to 224x224).
* ``target``: ``logit`` (d logit[label]) or ``probability`` (d softmax(logits)[label]).
* ``reduction`` over the colour channels of an (N, 224, 224, 3) attribution: ``max-abs``
  (max_c |a|), ``mean-abs`` (mean_c |a|), ``abs-mean`` (|mean_c a|), ``signed-mean`` (mean_c a).
  Grad-CAM has no channel axis: its reduction is ``none``.
* ``wrt``: what the gradient is taken with respect to. ``image``: the 224x224 RGB image in [0, 255]
  the humans saw. ``model-input``: the *normalised* image ``z = x * gain + offset`` (the model's
  mean/std/scale, per channel, still at 224x224 and in RGB order), i.e. the tensor the paper's release
  code differentiates (its ``preprocess_inputs`` runs in the data pipeline, before the explainer).
  The two differ per channel by the factor ``gain`` (so ``max-abs`` can pick another channel), and
  for SmoothGrad / Integrated Gradients in where the noise and the zero baseline live.
* ``params``: the method's own parameters (defaults filled in; unknown ones are refused):
  smoothgrad ``samples``, ``sigma`` (noise SD as a fraction of each image's value range), ``seed``;
  integrated-gradients ``steps``; grad-cam ``layer`` (a module / layer name, or null for the last
  4-D activation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from model_zoo.errors import InvalidInputError

METHODS = ("saliency", "smoothgrad", "integrated-gradients", "gradient-x-input", "grad-cam")
TARGETS = ("logit", "probability")
REDUCTIONS = ("max-abs", "mean-abs", "abs-mean", "signed-mean")
WRT = ("image", "model-input")

#: each method's parameters and their defaults (a spec's params are these, overridden)
METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "saliency": {},
    "smoothgrad": {"samples": 50, "sigma": 0.15, "seed": 0},
    "integrated-gradients": {"steps": 50},
    "gradient-x-input": {},
    "grad-cam": {"layer": None},
}
#: methods that differentiate many copies of each image (their copies are batched)
SAMPLE_PARAM = {"smoothgrad": "samples", "integrated-gradients": "steps"}


def _check_param(method: str, key: str, value: Any) -> Any:
    if key in ("samples", "steps", "seed"):
        low = 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"explainer {method}: {key} must be an int >= {low}, got {value!r}")
    elif key == "sigma":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10:
            raise InvalidInputError(f"explainer {method}: sigma must be a number in (0, 10), got {value!r}")
        value = float(value)
    elif key == "layer" and value is not None and not (isinstance(value, str) and value):
        raise InvalidInputError(f"explainer {method}: layer must be a layer name or null, got {value!r}")
    return value


@dataclass(frozen=True)
class Explainer:
    """One attribution recipe (module docstring). ``params`` may be given as a dict; it is stored as
    sorted (key, value) pairs so that the spec stays hashable."""

    name: str
    method: str = "saliency"
    target: str = "logit"
    reduction: str = "max-abs"
    wrt: str = "image"
    params: Any = field(default=())
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(c.isalnum() or c in "-_." for c in self.name):
            raise InvalidInputError(f"explainer name {self.name!r}: use letters, digits, '-', '_', '.'")
        for what, value, allowed in (("method", self.method, METHODS), ("target", self.target, TARGETS),
                                     ("wrt", self.wrt, WRT)):
            if value not in allowed:
                raise InvalidInputError(f"explainer {self.name}: {what} {value!r} is not one of {', '.join(allowed)}")
        if self.method == "grad-cam":
            if self.reduction != "none":
                raise InvalidInputError(f"explainer {self.name}: grad-cam maps have no colour channels; "
                                        "its reduction must be 'none'")
        elif self.reduction not in REDUCTIONS:
            raise InvalidInputError(f"explainer {self.name}: reduction {self.reduction!r} is not one of "
                                    f"{', '.join(REDUCTIONS)}")
        given = dict(self.params.items() if isinstance(self.params, Mapping) else self.params)
        defaults = METHOD_PARAMS[self.method]
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise InvalidInputError(f"explainer {self.name}: parameter(s) {', '.join(unknown)} do not apply to "
                                    f"{self.method} (it takes: {', '.join(defaults) or 'none'})")
        merged = {k: _check_param(self.method, k, given.get(k, v)) for k, v in defaults.items()}
        object.__setattr__(self, "params", tuple(sorted(merged.items())))
        if not self.description:
            object.__setattr__(self, "description", self._describe())

    def param(self, key: str) -> Any:
        """The value of parameter ``key`` (defaults filled in)."""
        return dict(self.params)[key]

    @property
    def samples(self) -> int:
        """Differentiated copies of each image (1 for single-pass methods)."""
        key = SAMPLE_PARAM.get(self.method)
        return int(self.param(key)) if key else 1

    def to_dict(self) -> dict[str, Any]:
        """The full spec, as stored in records (``from_dict`` reads it back)."""
        return {"name": self.name, "method": self.method, "target": self.target, "reduction": self.reduction,
                "wrt": self.wrt, "params": dict(self.params), "description": self.description}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Explainer":
        allowed = {"name", "method", "target", "reduction", "wrt", "params", "description"}
        unknown = sorted(set(doc) - allowed)
        if unknown:
            raise InvalidInputError(f"explainer spec: unknown field(s) {', '.join(unknown)}")
        if "name" not in doc:
            raise InvalidInputError("explainer spec: 'name' is required")
        params = doc.get("params", {})
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise InvalidInputError(f"explainer spec: 'params' must map parameter names to values, got {params!r:.80}")
        return cls(**{k: doc[k] for k in allowed if k in doc})

    def _describe(self) -> str:
        what = {"logit": "logit[label]", "probability": "softmax(logits)[label]"}[self.target]
        frame = {"image": "the 224x224 image", "model-input": "the normalised 224x224 model input"}[self.wrt]
        params = ", ".join(f"{k}={v}" for k, v in self.params)
        head = f"{self.name}: {self.method}" + (f" ({params})" if params else "")
        if self.method == "grad-cam":
            return f"{head} of {what}, ReLU, bilinear to 224x224"
        return f"{head}, {self.reduction} over channels, of d {what} / d {frame}"
