"""alignbench's benchmark package: datasets, metrics, runner, records, plots and the CLI.

Importing it imports neither TensorFlow nor PyTorch; they load on first use.
"""
__version__ = "0.1.0"
