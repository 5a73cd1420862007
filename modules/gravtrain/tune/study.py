"""The sweep's Optuna study: where it is stored, who joins it, and how many of its trials count.

The study lives in Optuna's storage, not in any process: every `gravtrain tune` process (and each of its
workers) opens it by name and asks it for the next trial, so several processes, on one machine or many, share
one sweep without a scheduler. The default storage is a journal file beside the MLflow store (Optuna's
``JournalFileBackend``, safe for many processes through a lock file); ``--storage`` takes any database URL
Optuna accepts (``sqlite:///sweeps.db``, ``postgresql://...``).

A study has exactly ``trials`` *slots*: every trial is a slot except those gravtrain set aside, with the user
attribute `SET_ASIDE`:
- ``requeued``: a trial left RUNNING by a process that died; `requeue_stale_trials` puts a copy of its
  params back in the queue (a WAITING trial, which the next `ask` takes) and closes it as FAIL. A trial that
  died between two ``suggest`` calls had part of a point: the copy keeps that part and samples the rest;
- ``unstarted``: a trial left RUNNING by a process that died before the trial had a point (between Optuna's
  ``ask`` and the first ``suggest``): nothing to train again, so `requeue_stale_trials` only closes it as FAIL
  and its slot goes to the next trial asked;
- ``surplus``: a trial that two processes asked for at the same moment, beyond the last slot: the one with the
  higher number closes it at once.
So the sweep ends with exactly ``trials`` finished trials, numbered without duplicates, however many processes
ran it and however often it was killed and resumed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

SET_ASIDE = "gravtrain.set_aside"
HOST = "gravtrain.host"
PID = "gravtrain.pid"
HEARTBEAT = "gravtrain.heartbeat"
REQUEUE_OF = "gravtrain.requeue_of"
#: Seconds between a running trial's heartbeats, and after which a silent one counts as dead (--resume).
HEARTBEAT_SECONDS = 60.0
STALE_AFTER_SECONDS = 5 * HEARTBEAT_SECONDS
#: Study user attributes: the parent MLflow run, and the fingerprint of the sweep that created the study.
PARENT_RUN = "gravtrain.parent_run_id"
FINGERPRINT = "gravtrain.fingerprint"


class StudyError(Exception):
    """The study cannot be used as asked (another sweep under this name, a storage that cannot be opened)."""


def default_storage(store_directory: Path) -> Path:
    """The journal file of the sweeps of an MLflow store directory: ``mlruns`` -> ``mlruns-sweeps.journal``."""
    return store_directory.parent / f"{store_directory.name}-sweeps.journal"


def open_storage(storage: str):
    """An Optuna storage: a database URL (``sqlite:///...``, ``postgresql://...``) or a journal file path."""
    import optuna

    if "://" in storage:
        try:
            return optuna.storages.RDBStorage(storage)
        except Exception as exc:  # SQLAlchemy's errors for a bad URL or an unreachable server
            raise StudyError(f"cannot open the Optuna storage {storage}: {exc}") from None
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as exc:
        raise StudyError(f"cannot open the Optuna journal {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Census:
    """How the study's slots stand: finished (COMPLETE, PRUNED, FAIL), running, waiting in the queue."""

    finished: int
    running: int
    waiting: int
    complete: int

    @classmethod
    def of(cls, study) -> "Census":
        from optuna.trial import TrialState

        counted = [t for t in study.get_trials(deepcopy=False) if SET_ASIDE not in t.user_attrs]
        finished = [t for t in counted if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]
        return cls(finished=len(finished), running=sum(t.state == TrialState.RUNNING for t in counted),
                   waiting=sum(t.state == TrialState.WAITING for t in counted),
                   complete=sum(t.state == TrialState.COMPLETE for t in counted))


def counted_trials(study) -> list:
    """The trials that fill the study's slots, by number (the set-aside ones left out)."""
    return sorted((t for t in study.get_trials(deepcopy=False) if SET_ASIDE not in t.user_attrs),
                  key=lambda t: t.number)


def next_trial(study, n_trials: int):
    """Ask the study for a trial to run, or None when every slot is finished or taken.

    A queued trial (a grid point, a re-queued one) is taken first; otherwise the sampler proposes one. A trial
    beyond the last slot (two processes asked at once) is set aside as ``surplus`` and None returned.
    """
    from optuna.trial import TrialState

    census = Census.of(study)
    if census.waiting == 0 and census.finished + census.running >= n_trials:
        return None
    trial = study.ask()
    numbers = [t.number for t in counted_trials(study)]
    if trial.number in numbers and numbers.index(trial.number) >= n_trials:
        trial.set_user_attr(SET_ASIDE, "surplus")
        study.tell(trial, state=TrialState.FAIL)
        return None
    trial.set_user_attr(HOST, socket.gethostname())
    trial.set_user_attr(PID, os.getpid())
    trial.set_user_attr(HEARTBEAT, time.time())
    return trial


def is_stale(frozen_trial, now: float | None = None) -> bool:
    """Whether a RUNNING trial's process is gone: on this machine, its process no longer exists; elsewhere,
    its heartbeat is older than `STALE_AFTER_SECONDS`."""
    attrs = frozen_trial.user_attrs
    if attrs.get(HOST) == socket.gethostname() and isinstance(attrs.get(PID), int):
        try:
            os.kill(attrs[PID], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False
    beat = attrs.get(HEARTBEAT)
    return not isinstance(beat, (int, float)) or (now or time.time()) - beat > STALE_AFTER_SECONDS


def stale_trials(study) -> list[int]:
    """The numbers of the RUNNING trials whose process is gone (`is_stale`)."""
    from optuna.trial import TrialState

    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if SET_ASIDE not in t.user_attrs and is_stale(t)]


def requeue_stale_trials(study) -> list[int]:
    """Put the point of every RUNNING trial whose process is gone back in the queue, and set the trial aside
    (FAIL, ``requeued``); returns their numbers. A stale trial without a point is set aside as ``unstarted``."""
    from optuna.trial import Trial, TrialState

    requeued = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if SET_ASIDE not in frozen.user_attrs and is_stale(frozen):
            # Optuna names another process's trial by its storage ID only.
            trial = Trial(study, frozen._trial_id)
            point = point_of(frozen)
            if point:
                requeue(study, trial, point)
                requeued.append(frozen.number)
            else:
                trial.set_user_attr(SET_ASIDE, "unstarted")
                study.tell(frozen.number, state=TrialState.FAIL)
                logger.info("trial %d stopped before it had a point; set aside, its slot goes to the next trial",
                            frozen.number)
    return requeued


def point_of(frozen_trial) -> dict:
    """The params a trial trains: those it suggested, and those queued for it that it had not suggested yet
    (a re-queued or grid point whose process died before reaching every ``suggest``)."""
    return {**frozen_trial.system_attrs.get("fixed_params", {}), **frozen_trial.params}


def requeue(study, trial, params: dict) -> None:
    """Queue a copy of a running ``trial`` with ``params`` (taken before any other new trial) and set the trial
    itself aside (FAIL, ``requeued``): its slot passes to the copy. For a trial whose process died, or was
    interrupted (Ctrl-C): ``--resume`` trains its point again."""
    from optuna.trial import TrialState

    study.enqueue_trial(params, user_attrs={REQUEUE_OF: trial.number}, skip_if_exists=False)
    trial.set_user_attr(SET_ASIDE, "requeued")
    study.tell(trial.number, state=TrialState.FAIL)


class Heartbeat:
    """A thread that stamps a running trial's `HEARTBEAT` every `HEARTBEAT_SECONDS`, for other machines'
    ``--resume`` to tell a live trial from a dead one. Use as a context manager."""

    def __init__(self, trial, every: float = HEARTBEAT_SECONDS):
        import threading

        self._trial, self._every = trial, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="gravtrain-trial-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # a storage hiccup must not end the trial; the next beat tries again
                logger.debug("heartbeat of trial %d failed", self._trial.number, exc_info=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
