"""Human data: ClickMe-format TFRecord datasets (official shards, mirrors, local or synthetic).

``get_dataset("clickme-val")`` returns a :class:`ClickMeDataset` whose ``batches()`` yield the
paper's exact preprocessing. Importing this package loads neither TensorFlow nor PyTorch.
"""
from benchmark.datasets.clickme import (Batch, ClickMeDataset, SkipReport, load_clickme, preprocess_heatmaps,
                                        preprocess_images)
from benchmark.datasets.registry import get_dataset, list_datasets, register_dataset, results_name

__all__ = ["Batch", "ClickMeDataset", "SkipReport", "get_dataset", "list_datasets", "load_clickme",
           "preprocess_heatmaps", "preprocess_images", "register_dataset", "results_name"]
