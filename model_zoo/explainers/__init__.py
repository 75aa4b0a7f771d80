"""Explainers as data (:class:`Explainer`) and their registry; the adapters compute them.

``adapter.explain(images, labels, explainer)`` -> (N, 224, 224) float32 maps, for PyTorch and Keras
alike; :func:`get_explainer` resolves a name (``saliency`` is the default), :func:`register_explainer`
adds one, and the ``alignbench.explainers`` entry-point group brings in third-party ones.
"""
from __future__ import annotations

from model_zoo.explainers.registry import (DEFAULT, ENTRY_POINT_GROUP, get_explainer, is_default,
                                           list_explainers, register_explainer, unregister_explainer)
from model_zoo.explainers.spec import METHODS, REDUCTIONS, TARGETS, WRT, Explainer

__all__ = ["DEFAULT", "ENTRY_POINT_GROUP", "METHODS", "REDUCTIONS", "TARGETS", "WRT", "Explainer", "get_explainer",
           "is_default", "list_explainers", "register_explainer", "unregister_explainer"]
