"""alignbench's benchmark package: tasks, datasets, metrics, the runner, records and plots.

Importing it imports neither TensorFlow nor PyTorch; they load on first use.
"""
__version__ = "0.1.0"
