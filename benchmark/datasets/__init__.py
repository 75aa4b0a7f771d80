"""Human data: ClickMe-format TFRecord datasets (official shards, mirrors, local or synthetic).

``get_dataset("clickme-val")`` returns a :class:`ClickMeDataset` whose ``batches()`` yield the
paper's exact preprocessing, read from a prepared copy after the first full pass
(:mod:`benchmark.datasets.prepared`; ``prepared=False`` or ``ALIGNBENCH_PREPARED=0`` to opt out).
Records left out are in ``dataset.skips`` (a :class:`SkipReport`). Importing this package loads
neither TensorFlow nor PyTorch.
"""
from benchmark.datasets.batch import Batch, SkipReport
from benchmark.datasets.clickme import ClickMeDataset, load_clickme, preprocess_heatmaps, preprocess_images
from benchmark.datasets.registry import get_dataset, list_datasets, register_dataset, results_name

__all__ = ["Batch", "ClickMeDataset", "SkipReport", "get_dataset", "list_datasets", "load_clickme",
           "preprocess_heatmaps", "preprocess_images", "register_dataset", "results_name"]
