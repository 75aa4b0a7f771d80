"""alignbench's application layer: the ``alignbench`` command line, the demo and the printed reports.

The libraries (``model_zoo``, ``benchmark``, ``leaderboard``) never import this package; every command
here is a thin call into one of them, which tests and notebooks can make directly.
"""
from benchmark import __version__

__all__ = ["__version__"]
