"""``python -m benchmark``: kept for compatibility; the command line is :mod:`alignbench.cli`."""
import sys

from alignbench.cli import main

sys.exit(main())
