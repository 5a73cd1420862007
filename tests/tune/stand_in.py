"""A fast stand-in for `gravtrain.train` in the sweep tests of the Optuna driver (resume, shared storage,
repeats, pruning, failures): it opens a real MLflow run with the same params and tags a training run gets and
logs an objective computed from the config, in milliseconds. The driver does not know the difference; one
end-to-end test (test_sweeps.py) trains for real.

    objective = (log10(learning_rate) + 2.5)^2 + seed / 1000

so the best learning rate is 10^-2.5, and each repeat (seed) shifts the value by a known amount.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: A learning rate at which the stand-in raises, to test a failing trial.
FAIL_AT_ENV = "GRAVTRAIN_TEST_STAND_IN_FAIL_AT"
#: A learning rate at which the stand-in is interrupted (Ctrl-C), once: it removes the variable.
INTERRUPT_AT_ENV = "GRAVTRAIN_TEST_STAND_IN_INTERRUPT_AT"
#: ``N:FILE``: the N-th training of the process (from 1) logs its first epoch, writes FILE, and waits there to be
#: killed: a kill point the test chooses (a trial holding its whole point, mid-training).
HOLD_ENV = "GRAVTRAIN_TEST_STAND_IN_HOLD"
#: ``SOCKET``: the first training of each process connects to the test's `Rendezvous` at that Unix socket and
#: waits for its release, which comes when all the processes it waits for have connected: so that they certainly
#: hold a trial at once.
RENDEZVOUS_ENV = "GRAVTRAIN_TEST_STAND_IN_RENDEZVOUS"
#: How long a rendezvous waits for the other processes before the stand-in fails.
RENDEZVOUS_TIMEOUT = 120.0

_trainings = 0  # trainings this process has started


@dataclass
class StandInResult:
    run_id: str | None
    metrics: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    stage_end_reasons: list = field(default_factory=list)


def objective_of(config) -> float:
    return (math.log10(config.Training[0].learning_rate) + 2.5) ** 2 + config.General.seed / 1000


def stand_in_train(config, *, run_name=None, tags=None, epoch_end=None):
    from gravtrain.tracking import MlflowTracker, flatten_params, resolve_tracking_uri

    if os.environ.get(FAIL_AT_ENV) and config.Training[0].learning_rate == float(os.environ[FAIL_AT_ENV]):
        raise FloatingPointError("non-finite loss (stand-in)")
    if os.environ.get(INTERRUPT_AT_ENV) and config.Training[0].learning_rate == float(os.environ[INTERRUPT_AT_ENV]):
        del os.environ[INTERRUPT_AT_ENV]
        raise KeyboardInterrupt
    global _trainings
    _trainings += 1
    if _trainings == 1 and os.environ.get(RENDEZVOUS_ENV):
        _rendezvous(os.environ[RENDEZVOUS_ENV])
    tracker = MlflowTracker.start(tracking_uri=resolve_tracking_uri(config.Tracking),
                                  experiment=config.Tracking.experiment or config.General.experiment,
                                  run_name=run_name or config.General.name)
    with tracker:
        tracker.set_tags(dict(tags or {}))
        tracker.log_params(flatten_params(config.to_dict()))
        value = objective_of(config)
        reasons = ["epochs"]
        for epoch in (1, 2, 3):
            epoch_value = value + (3 - epoch)
            tracker.log_metrics({"val/objective": epoch_value}, step=epoch)
            if epoch == 1:
                _hold_if_asked(tracker)
            if epoch_end is not None and epoch_end(epoch, {"val/objective": epoch_value}):
                reasons = ["pruned"]
                break
        tracker.flush(wait=True)
    return StandInResult(run_id=tracker.run_id, metrics={"val/objective": value}, stage_end_reasons=reasons)


def _hold_if_asked(tracker) -> None:
    """With `HOLD_ENV` naming this training: write its file, then wait for the kill (never returns)."""
    number, _, marker = os.environ.get(HOLD_ENV, "").partition(":")
    if not marker or int(number) != _trainings:
        return
    tracker.flush(wait=True)
    Path(marker).write_text(str(os.getpid()))
    while True:  # the test kills the process here
        signal.pause()


def _rendezvous(path: str) -> None:
    """Connect to the test's `Rendezvous` at ``path`` and block until it releases every process at once."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(RENDEZVOUS_TIMEOUT)
        connection.connect(path)
        if connection.recv(1) != b"+":
            raise ConnectionError("the rendezvous closed before every process arrived")


class Rendezvous:
    """The test's side of `RENDEZVOUS_ENV`: a Unix socket at ``path`` that holds each connecting process until
    ``count`` have connected, then releases them all (a barrier across processes the test did not start itself).
    The socket lives in a short temporary folder of its own (a socket's path has at most about 100 characters).

    Use as a context manager around the processes' lifetime; ``arrived`` counts the connections."""

    def __init__(self, count: int):
        self._folder = tempfile.TemporaryDirectory(prefix="rendezvous-")
        self.path, self.count, self.arrived = os.path.join(self._folder.name, "socket"), count, 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(count)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        waiting = []
        try:
            while len(waiting) < self.count:
                waiting.append(self._server.accept()[0])
                self.arrived = len(waiting)
            for connection in waiting:
                connection.sendall(b"+")
        except OSError:  # closed by __exit__ before everyone came: the waiting processes get an empty answer
            pass
        finally:
            for connection in waiting:
                connection.close()

    def __enter__(self) -> "Rendezvous":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.close()
        self._thread.join(timeout=RENDEZVOUS_TIMEOUT)
        self._folder.cleanup()


def run_sweep_in_this_process(directory: str, sweep: str, *options: str) -> None:
    """``gravtrain tune SWEEP [--resume] [--report]`` with the stand-in, run from ``directory`` (for a
    subprocess: ``python -c 'from tests.tune.stand_in import ...'``)."""
    os.chdir(directory)
    from gravtrain.cli import configure_logging
    from gravtrain.tune import tune

    configure_logging(False)
    outcome = tune(sweep, resume="--resume" in options, trainer=stand_in_train)
    sys.stdout.write(outcome.report_text)


def sweep_command(directory: Path, sweep: Path, *options: str) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from tests.tune.stand_in import run_sweep_in_this_process; "
            f"run_sweep_in_this_process({str(directory)!r}, {str(sweep)!r}, *{list(options)!r})")
    return [sys.executable, "-c", code]
