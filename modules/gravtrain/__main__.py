"""``python -m gravtrain``: the same command line as ``gravtrain``."""

import sys

from gravtrain.cli import main

sys.exit(main())
