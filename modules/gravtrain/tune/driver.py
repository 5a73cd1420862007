"""`gravtrain tune SWEEP.yaml`: check the sweep both ways, say exactly what it may train, then run its trials on
Optuna, in this process or in ``--workers N`` processes, and report on the parent MLflow run.

    plan_sweep (both files, every value)  ->  objective checked  ->  the dry-run text (every point or space,
    counts, smallest and largest model)  ->  [--dry-run stops here]  ->  study created (or joined, or resumed)
    and the parent run opened with the sweep file, the base config and the dry-run text  ->  workers take
    trials until every slot is finished  ->  the report on the parent run, which is then FINISHED.

Several `gravtrain tune` processes with the same sweep file and storage share one study (study.py); the one
that finds every slot finished writes the report.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from gravtrain.config import ConfigError, ConfigIssue
from gravtrain.config.validate import did_you_mean
from gravtrain.tracking.run_tags import PARENT_ROLE, SWEEP_ROLE_TAG, SWEEP_TAG
from gravtrain.tune import worker_output
from gravtrain.tune.plan import SweepPlan, plan_sweep
from gravtrain.tune.study import (
    FINGERPRINT,
    PARENT_RUN,
    Census,
    StudyError,
    stale_trials,
    default_storage,
    next_trial,
    open_storage,
    requeue_stale_trials,
)

logger = logging.getLogger(__name__)

#: Seconds a process that joins a study waits for its creator to record the parent run.
PARENT_RUN_WAIT_SECONDS = 120.0


@dataclass
class TuneOutcome:
    """What a `tune` call did: the dry-run text, the study's state when this process stopped, the parent run."""

    dry_run_text: str
    study_name: str = ""
    storage: str = ""
    parent_run_id: str | None = None
    census: Census | None = None
    n_trials: int = 0
    report_text: str = ""
    requeued: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.census is not None and self.census.finished >= self.n_trials


def check_sweep(sweep_file: str | Path, overrides: Sequence[str] = ()) -> SweepPlan:
    """`plan_sweep`, plus the objective's checks, which need the training's metric names (TensorFlow loads)."""
    plan = plan_sweep(sweep_file, overrides)
    from gravtrain.training.metric_names import epoch_metric_names, is_epoch_metric, logged_during_training

    header = plan.sweep.header
    metric = header.objective.metric
    line = plan.sweep.line_of("objective", "metric") or plan.sweep.line_of("objective")
    if not is_epoch_metric(metric):
        raise ConfigError([ConfigIssue("objective.metric", f"'{metric}' is no metric the training logs at epoch "
                                       f"ends; it logs val/objective, val/loss/<term>, physics/<name> and "
                                       f"epoch/<name>.", str(plan.sweep.path), line,
                                       did_you_mean(metric, epoch_metric_names()))], subject="the sweep file")
    if header.pruner != "none" and not logged_during_training(metric, plan.base_config.Plotting.physics_frequency):
        raise ConfigError([ConfigIssue("pruner", f"the median pruner follows {metric} epoch by epoch, but "
                                       f"{plan.base_file.name} sets Plotting.physics_frequency to 0 (physics "
                                       f"metrics only after the last stage); set it to 1 there, or pruner: none.",
                                       str(plan.sweep.path), plan.sweep.line_of("pruner"))],
                          subject="the sweep and its base config")
    for warning in plan.warnings:
        logger.warning("some points of the sweep are no valid config (their trials will fail): %s", warning)
    return plan


def fingerprint(plan: SweepPlan) -> str:
    """What makes two processes' sweeps the same: the sweep file, the base config and the overrides."""
    digest = hashlib.sha256(plan.sweep.text + b"\0" + plan.base_text)
    for text in plan.overrides:
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()


def storage_for(plan: SweepPlan, given: str | None) -> str:
    """``--storage``, or the journal file beside the base config's MLflow store."""
    if given:
        return given
    from gravtrain.tracking import resolve_tracking_uri
    from gravtrain.tracking.store import local_directory, store_uri

    directory = local_directory(store_uri(resolve_tracking_uri(plan.base_config.Tracking)))
    if directory is None:
        raise StudyError("the MLflow store is no local directory, so there is no default place for the study; "
                         "give --storage (a database URL such as sqlite:///sweeps.db, or a journal file path).")
    return str(default_storage(Path(directory)))


def tune(sweep_file: str | Path, overrides: Sequence[str] = (), *, dry_run: bool = False, workers: int = 1,
         storage: str | None = None, resume: bool = False, devices: Sequence[str] = (),
         report_only: bool = False, trainer: Callable | None = None) -> TuneOutcome:
    """Run (or only check, or only report on) a sweep; the module docstring gives the order of things.

    Args:
        sweep_file: the sweep YAML.
        overrides: ``--set`` strings applied to the base config (none may fix a swept key).
        dry_run: stop after printing what the sweep can train.
        workers: trials at once, each in its own process (1: in this process).
        storage: Optuna storage (default: a journal file beside the MLflow store).
        resume: re-queue the trials that a dead process left running, and go on.
        devices: GPU indices; worker i sees only ``devices[i % len(devices)]``.
        report_only: write the report of the study as it stands (``--report``) and stop.
        trainer: the training function of trials run in this process (default ``gravtrain.train``); tests give
            a fast stand-in.

    Raises:
        ConfigError: the sweep or its base config is wrong; nothing ran.
        StudyError: the study cannot be created, joined or found.
    """
    import optuna

    from gravtrain.tune.dry_run import dry_run_text

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # gravtrain's log says what happens, once
    plan = check_sweep(sweep_file, overrides)
    text = dry_run_text(plan)
    outcome = TuneOutcome(dry_run_text=text, n_trials=plan.sweep.n_trials)
    if dry_run:
        return outcome
    outcome.storage = storage_for(plan, storage)
    outcome.study_name = plan.sweep.header.name
    study = _open_study(plan, outcome, resume=resume, must_exist=report_only)
    if report_only:
        outcome.report_text = _finish(plan, study, outcome, end_parent=False)
        return outcome
    if workers <= 1:
        work(plan, study, outcome.parent_run_id, trainer=trainer)
    else:
        _run_worker_processes(sweep_file, overrides, outcome, workers, devices)
    outcome.census = Census.of(study)
    if outcome.complete:
        outcome.report_text = _finish(plan, study, outcome, end_parent=True)
    else:
        outcome.stale = stale_trials(study)
    return outcome


def _open_study(plan: SweepPlan, outcome: TuneOutcome, *, resume: bool, must_exist: bool):
    """Create the study (and the parent run), or join it; with ``resume``, re-queue its dead trials."""
    import optuna
    from optuna.exceptions import DuplicatedStudyError

    from gravtrain.tune.sampling import make_pruner, make_sampler

    header = plan.sweep.header
    storage = open_storage(outcome.storage)
    direction = "maximize" if header.objective.maximize else "minimize"
    options = dict(study_name=header.name, storage=storage, sampler=make_sampler(header.sampler, header.seed),
                   pruner=make_pruner(header.pruner, header.pruner_warmup_epochs))
    created = False
    if not must_exist:
        try:
            study = optuna.create_study(direction=direction, load_if_exists=False, **options)
            created = True
        except DuplicatedStudyError:
            pass
    if not created:
        try:
            study = optuna.load_study(**options)
        except KeyError:
            raise StudyError(f"no study '{header.name}' in {outcome.storage}; run the sweep first.") from None
    if created:
        study.set_user_attr(FINGERPRINT, fingerprint(plan))
        if header.sampler == "grid":
            for point in plan.grid_points():
                study.enqueue_trial({swept.name: swept.space.to_sampled(point[swept.path]) for swept in plan.keys})
        outcome.parent_run_id = _open_parent_run(plan, outcome)
        study.set_user_attr(PARENT_RUN, outcome.parent_run_id)
        logger.info("study '%s' created in %s; parent MLflow run %s", header.name, outcome.storage,
                    outcome.parent_run_id)
        return study
    if study.user_attrs.get(FINGERPRINT) not in (None, fingerprint(plan)):
        raise StudyError(f"the study '{header.name}' in {outcome.storage} was started from another sweep file, base "
                         f"config or --set (one of them changed since). Give the sweep a new name (name: in "
                         f"{plan.sweep.path.name}), or restore the files it was started with.")
    study_direction = study.direction.name.lower()
    if study_direction != direction:
        raise StudyError(f"the study '{header.name}' was created to {study_direction} its objective; the sweep "
                         f"file now says {direction}. Name the sweep anew.")
    outcome.parent_run_id = _wait_for_parent_run(study, plan, outcome, resume)
    census = Census.of(study)
    if resume:
        outcome.requeued = requeue_stale_trials(study)
        _reopen_parent_run(plan, outcome.parent_run_id)
        logger.info("resuming study '%s': %d of %d trials finished; %d re-queued from stopped processes%s",
                    header.name, census.finished, plan.sweep.n_trials, len(outcome.requeued),
                    f" (trials {', '.join(map(str, outcome.requeued))})" if outcome.requeued else "")
    elif not must_exist:
        logger.info("joining study '%s' in %s: %d of %d trials finished, %d running", header.name,
                    outcome.storage, census.finished, plan.sweep.n_trials, census.running)
    return study


def _wait_for_parent_run(study, plan: SweepPlan, outcome: TuneOutcome, resume: bool) -> str | None:
    """The parent run the study's creator recorded; it may still be opening it. A resume opens one if the
    creator died before recording it."""
    deadline = time.monotonic() + PARENT_RUN_WAIT_SECONDS
    while True:
        parent = study.user_attrs.get(PARENT_RUN)
        if parent:
            return parent
        if resume:
            parent = _open_parent_run(plan, outcome)
            study.set_user_attr(PARENT_RUN, parent)
            return parent
        if time.monotonic() > deadline:
            raise StudyError(f"the study '{plan.sweep.header.name}' has no parent run after "
                             f"{PARENT_RUN_WAIT_SECONDS:.0f} s: the process that created it stopped early. "
                             f"Run again with --resume.")
        time.sleep(1.0)  # study.user_attrs reads the storage again


def _open_parent_run(plan: SweepPlan, outcome: TuneOutcome) -> str:
    """The sweep's parent MLflow run: the sweep file and the base config byte for byte, the dry-run text, the
    sweep's header and spaces as params."""
    header = plan.sweep.header
    tracker = _parent_tracker(plan)
    tracker.set_tags({SWEEP_TAG: header.name, "gravtrain.sweep_storage": outcome.storage,
                      SWEEP_ROLE_TAG: PARENT_ROLE, "mlflow.note.content": outcome.dry_run_text})
    params = {"sweep.sampler": header.sampler, "sweep.trials": str(plan.sweep.n_trials),
              "sweep.seed": str(header.seed), "sweep.pruner": header.pruner, "sweep.repeats": str(header.repeats),
              "sweep.objective.metric": header.objective.metric,
              "sweep.objective.direction": "maximize" if header.objective.maximize else "minimize",
              "sweep.base": header.base, "sweep.overrides": " ".join(plan.overrides) or "(none)"}
    params.update({f"sweep.parameters.{swept.name}": swept.space.describe() for swept in plan.keys})
    tracker.log_params(params)
    tracker.log_bytes(plan.sweep.text, f"sweep/{plan.sweep.path.name}")
    tracker.log_bytes(plan.base_text, f"sweep/{plan.base_file.name}")
    tracker.log_text(outcome.dry_run_text, "sweep/dry_run.txt")
    tracker.flush(wait=True)
    return tracker.run_id


def _parent_tracker(plan: SweepPlan, run_id: str | None = None):
    """A new parent run of the sweep, or (``run_id``) the existing one set RUNNING again."""
    from gravtrain.tracking import MlflowTracker, resolve_tracking_uri

    config = plan.base_config
    return MlflowTracker.start(tracking_uri=resolve_tracking_uri(config.Tracking),
                               experiment=config.Tracking.experiment or config.General.experiment,
                               run_name=f"sweep {plan.sweep.header.name}", resume_run_id=run_id)


def _reopen_parent_run(plan: SweepPlan, run_id: str | None) -> None:
    if run_id:
        _parent_tracker(plan, run_id)  # sets it RUNNING again; it is ended by whoever finishes the sweep


def work(plan: SweepPlan, study, parent_run_id: str | None, *, trainer: Callable | None = None) -> int:
    """Take trials from the study and run them until every slot is finished or taken; returns how many this
    process ran."""
    from gravtrain.tune.trial import SweepContext, run_trial

    trainer = trainer or _train_tracked
    context = SweepContext(plan=plan, study_name=plan.sweep.header.name, parent_run_id=parent_run_id)
    done = 0
    while True:
        trial = next_trial(study, plan.sweep.n_trials)
        if trial is None:
            return done
        run_trial(context, study, trial, trainer)
        done += 1


def _train_tracked(config, **options):
    """`gravtrain.train` with tracking, then the Keras session cleared (each trial builds a new model)."""
    import keras

    from gravtrain.training import train

    try:
        return train(config, tracking=True, **options)
    finally:
        keras.backend.clear_session()


def _run_worker_processes(sweep_file, overrides, outcome: TuneOutcome, workers: int, devices: Sequence[str]) -> None:
    """``workers`` processes of `gravtrain.tune.worker`, each taking trials until none is left; Ctrl-C stops
    them (each marks its trial failed; ``--resume`` runs it again). Their output reaches this process's stderr
    with a ``[worker N]`` prefix on every line (`gravtrain.tune.worker_output`)."""
    processes, relays = [], []
    for index in range(workers):
        command = [sys.executable, "-m", "gravtrain.tune.worker", str(sweep_file), "--storage", outcome.storage,
                   "--worker", str(index)]
        for text in overrides:
            command += ["--set", text]
        if logger.isEnabledFor(logging.DEBUG):  # gravtrain -v tune: TensorFlow's start-up lines too
            command.append("--verbose")
        env = dict(os.environ)
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = str(devices[index % len(devices)])
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        relays.append(worker_output.relay(processes[-1].stdout, index, sys.stderr.buffer))
    logger.info("%d worker processes started (pids %s)", workers, ", ".join(str(p.pid) for p in processes))
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            process.wait()
        raise
    finally:
        for thread in relays:
            thread.join(timeout=10)
    failed = [(i, code) for i, code in enumerate(codes) if code != 0]
    for index, code in failed:
        logger.error("worker %d stopped with exit code %d; its running trial is re-queued by `--resume`",
                     index, code)


def _finish(plan: SweepPlan, study, outcome: TuneOutcome, *, end_parent: bool) -> str:
    """The report, logged on the parent run; with ``end_parent`` (every slot finished) the run is then
    FINISHED, otherwise it keeps its status (``--report`` on a sweep still running). Returns the report's text."""
    from gravtrain.tracking import resolve_tracking_uri, run_status
    from gravtrain.tune.report import log_report, sweep_report

    report = sweep_report(plan, study)
    if outcome.parent_run_id:
        status = run_status(resolve_tracking_uri(plan.base_config.Tracking), outcome.parent_run_id)
        tracker = _parent_tracker(plan, outcome.parent_run_id)
        log_report(tracker, report)
        tracker.flush(wait=True)
        if end_parent or status != "RUNNING":
            tracker.end("FINISHED" if end_parent else status)
    return report.summary()


