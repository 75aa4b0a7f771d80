import sys

from alignbench.cli import main

sys.exit(main())
