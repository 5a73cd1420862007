"""Train a GravNet model from a YAML config: ``python config_trainer.py configs/toy.yaml``.

A thin entry point; everything lives in `gravtrain.cli` (also installed as the ``gravtrain`` command).
"""

import sys

from gravtrain.cli import main

if __name__ == "__main__":
    sys.exit(main())
