"""One worker process of ``gravtrain tune --workers N`` (``python -m gravtrain.tune.worker``): it opens the
study its driver created and takes trials until none is left.

A worker whose driver dies (killed, even by SIGKILL) exits within a second, leaving its trial RUNNING for
``--resume`` to re-queue: no orphan goes on training.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from typing import Sequence

from gravtrain import quiet_tensorflow

logger = logging.getLogger("gravtrain")


def _exit_with_parent(parent: int) -> None:
    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)  # the driver is gone; nothing to flush: the trial stays RUNNING for --resume
            time.sleep(1.0)

    threading.Thread(target=watch, name="gravtrain-driver-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gravtrain.tune.worker",
                                     description="one worker of `gravtrain tune --workers N`")
    parser.add_argument("sweep")
    parser.add_argument("--storage", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--verbose", action="store_true", help="TensorFlow's start-up lines too")
    args = parser.parse_args(argv)
    quiet_tensorflow.install(args.verbose)
    _exit_with_parent(os.getppid())
    handler = logging.StreamHandler(sys.stderr)  # the driver prefixes every line (gravtrain.tune.worker_output)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False

    import optuna

    from gravtrain.tune.driver import work
    from gravtrain.tune.plan import plan_sweep
    from gravtrain.tune.sampling import make_pruner, make_sampler
    from gravtrain.tune.study import PARENT_RUN, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = plan_sweep(args.sweep, args.overrides)  # checked by the driver already
    header = plan.sweep.header
    study = optuna.load_study(study_name=header.name, storage=open_storage(args.storage),
                              sampler=make_sampler(header.sampler, header.seed, worker=args.worker + 1),
                              pruner=make_pruner(header.pruner, header.pruner_warmup_epochs))
    try:
        ran = work(plan, study, study.user_attrs.get(PARENT_RUN))
    except KeyboardInterrupt:
        return 130
    logger.info("no trial left; this worker ran %d", ran)
    return 0


if __name__ == "__main__":
    sys.exit(main())
