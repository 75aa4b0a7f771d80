"""The "how" benchmark: rapid animal / non-animal categorisation of partially revealed images.

Modules: :mod:`.stimuli` (make and read stimulus sets), :mod:`.decisions` (animal vs non-animal from
1000-way outputs), :mod:`.humans` (released per-trial responses), :mod:`.scores` (accuracy curves and
the curve alignment), :mod:`.data` (stimuli + human responses: the dataset that ``alignbench run
--dataset psychophysics`` scores with :class:`benchmark.tasks.psychophysics.PsychophysicsTask`),
:mod:`.plots` (Figure 5c). Importing this package loads neither TensorFlow nor PyTorch.
"""
