"""Animal vs non-animal decisions from 1000-way ImageNet outputs.

ImageNet classes 0..397 (tench .. puffer) are animals, as in the paper's code (paper-notes §3.4).
Rules (the one used is stored with every result):

* ``"argmax"``: animal when the arg-max class is < 398 (the published code's scored decision);
* ``"summed_probability"``: animal when the softmax probability summed over the 398 animal classes
  exceeds 0.5 (the total over the other 602);
* ``"mean_logit"``: animal when the mean animal logit exceeds the mean non-animal logit (the
  published code's ``decisioness_mean``, computed there but not scored); kept for comparison.
"""
from __future__ import annotations

import numpy as np

from model_zoo.errors import InvalidInputError

ANIMAL_CLASSES = 398
NUM_CLASSES = 1000
RULES = ("argmax", "summed_probability", "mean_logit")
DEFAULT_RULE = "argmax"


def is_animal_label(labels: np.ndarray) -> np.ndarray:
    """Ground truth: bool (N,) for ImageNet indices (N,) in 0..999."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise InvalidInputError(f"labels must be ImageNet indices in 0..999, got range {labels.min()}..{labels.max()}")
    return labels < ANIMAL_CLASSES


def decide(logits: np.ndarray, rule: str = DEFAULT_RULE) -> np.ndarray:
    """bool (N,): True = "animal", from logits (N, 1000) under ``rule`` (one of :data:`RULES`)."""
    if rule not in RULES:
        raise InvalidInputError(f"decision rule {rule!r}: expected one of {', '.join(RULES)}")
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] != NUM_CLASSES:
        raise InvalidInputError(f"logits must have shape (N, {NUM_CLASSES}) (ImageNet classes), got {z.shape}")
    if not np.isfinite(z).all():
        raise InvalidInputError("logits contain NaN or infinite values")
    if rule == "argmax":
        return z.argmax(axis=1) < ANIMAL_CLASSES
    if rule == "mean_logit":
        return z[:, :ANIMAL_CLASSES].mean(axis=1) > z[:, ANIMAL_CLASSES:].mean(axis=1)
    from scipy.special import logsumexp

    # log P(animal) > log P(non-animal), in log space so large logits cannot overflow
    return logsumexp(z[:, :ANIMAL_CLASSES], axis=1) > logsumexp(z[:, ANIMAL_CLASSES:], axis=1)
