"""IT-cortex neural predictivity (the 2023 paper, Linsley*, Rodriguez* et al., NeurIPS 2023).

Modules, one concern each (importing this package imports neither PyTorch nor TensorFlow):

* :mod:`~benchmark.neural.recordings` -- the in-memory recording (:class:`NeuralRecording`) and the
  loader of a user's own recordings (``.npz``, format documented there);
* :mod:`~benchmark.neural.arcaro` -- download and parse the released Arcaro et al. 2020 recordings;
* :mod:`~benchmark.neural.resample` -- feature maps onto the recording grid (numpy);
* :mod:`~benchmark.neural.activations` -- layer features on the recording grid, cached per (model,
  layer); the extraction itself (hooks, Keras sub-models, tokens to grid) is
  :mod:`model_zoo.activations`;
* :mod:`~benchmark.neural.pls` -- PLS regression from per-image moments (equal to scikit-learn's);
* :mod:`~benchmark.neural.predictivity` -- leave-one-image-out scores, layer selection, ceilings, CIs;
* :mod:`~benchmark.neural.data` -- the recordings as a dataset (``it-arcaro2020``, a user's ``.npz``),
  scored by :class:`benchmark.tasks.neural.NeuralTask`;
* :mod:`~benchmark.neural.published` -- the published (digitized) points for ``plot-pareto``;
* :mod:`~benchmark.neural.plots` -- predictivity against top-1, one subplot per panel;
* :mod:`~benchmark.neural.synthetic` -- recordings in the release format with known ground truth.
"""
