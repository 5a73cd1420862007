"""Staged training, top to bottom: ``train(config)`` is the one training path (the CLI calls it too).

    load config → stage options checked → seed → events → feature statistics → model → optimizer, loss
        → MLflow run (or none)
    for each stage: learning rate, batch size, batch-norm/loss overrides, freeze → epochs of batches
        each batch: compiled train step (NaN guard inside) → records every Plotting.record_frequency batches
        every Plotting.plot_frequency batches and at each epoch end: plots, metrics flushed, checkpoint
        each epoch end: validation in inference mode, epoch averages, throughput, early stopping, and every
            Plotting.physics_frequency epochs the physics metrics (physics/*) on the validation events
    after the last stage: the model (.keras and MLflow's Keras flavour), physics metrics and figures on the
    validation set.

Metrics reach the store only up to the latest checkpoint before it is written (flush, then checkpoint), and a
resumed run drops records the store already holds, so a run killed at any moment and resumed has every step
exactly once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import keras

from gravtrain.config import ConfigError, ConfigIssue, load_config, resolve_config
from gravtrain.config.schema import Config
from gravtrain.data import FeatureStats, load_event_sets
from gravtrain.data.batching import HitBudgetBatcher
from gravtrain.model import (
    build_training_parts, check_freeze_patterns, check_stage_options, data_parallel_strategy, model_summary,
)
from gravtrain.tracking import store_model_fetcher
from gravtrain.training import checkpoint as ckpt
from gravtrain.training.outcome import EpochEnd, TrainResult
from gravtrain.training.run import open_run
from gravtrain.training.staged import StagedTrainer
from gravtrain.training.wall_clock import WallClock

logger = logging.getLogger(__name__)



def train(config_or_path, overrides=(), tracking: bool = True, *, resume: str | None = None,
          explicit: bool = False, run_name: str | None = None, tags: Mapping[str, str] | None = None,
          epoch_end: EpochEnd | None = None) -> TrainResult:
    """Train a config end to end (module docstring).

    Args:
        config_or_path: a YAML path (its bytes are logged as the original config) or a ``Config``.
        overrides: ``KEY=VALUE`` strings, as ``--set`` (only with a path).
        tracking: log to MLflow; False trains with no run (``--no-tracking``).
        resume: an MLflow run ID (or, with tracking off, a checkpoint directory) to continue from its latest
            checkpoint.
        explicit: refuse a config in which any key took its default.
        run_name: the MLflow run's name (default: ``Tracking.run_name``, else ``General.name``).
        tags: more tags of a new run, e.g. ``mlflow.parentRunId`` to nest it under another run (a sweep's).
        epoch_end: called after each epoch's records with the epoch (1-based) and its metrics (``epoch/*``,
            ``val/*``, ``physics/*``); a string it returns stops training after this epoch, with that string as
            the stage's end reason (a sweep's pruner returns "pruned"). The model is still saved and evaluated.

    Raises:
        ConfigError: the config is wrong; nothing was trained.
        ResumeError: the run cannot be resumed (unknown run, no checkpoint, a changed config).
        NonFiniteLossError: training went non-finite; the run is FAILED and the last good checkpoint kept.
        TrainingInterrupted: Ctrl-C; the run is KILLED after a checkpoint.
    """
    started = time.perf_counter()
    clock = WallClock()
    config, config_path, config_bytes = _load(config_or_path, overrides, explicit)
    check_stage_options(config)  # before the events load: a stage option nothing takes is a config mistake
    strategy = data_parallel_strategy(config.General.devices)  # too few devices: a config mistake too
    keras.utils.set_random_seed(config.General.seed)
    with clock.part("events"):
        train_store, val_store = load_event_sets(config.Data)
        stats = FeatureStats.from_store(train_store)
    logger.info("%d training events (%d hits), %d validation events", train_store.n_events, train_store.n_hits,
                val_store.n_events)
    _check_batches_per_step(config, train_store)
    with clock.part("model"):
        # on several devices, every variable mirrored on each; a pre-model a runs:/ URI names comes from the store
        parts = build_training_parts(config, stats, strategy, fetch=store_model_fetcher(config.Tracking))
    model, optimizer, loss, pre_model = parts.model, parts.optimizer, parts.loss, parts.pre_model
    check_freeze_patterns(config, model)
    if strategy is not None:
        logger.info("training on %d devices (%s): each step takes one batch per device", strategy.num_replicas_in_sync,
                    ", ".join(strategy.extended.worker_devices))

    run_started = time.perf_counter()
    with open_run(config, config_path, config_bytes, tracking=tracking, resume=resume, run_name=run_name,
                  tags=tags) as run:
        progress = ckpt.Progress()
        if run.resumed_from is not None:
            progress = ckpt.restore_checkpoint(run.resumed_from, model, optimizer)
            logger.info("resuming from %s: stage %d, epoch %d, step %d", run.resumed_from.name, progress.stage + 1,
                        progress.epoch, progress.step)
        else:
            run.log_start(config, stats, model_summary(model))
            if pre_model is not None:
                run.log_pre_model(pre_model)
        trainer = StagedTrainer(config, model, optimizer, loss, run, progress, train_store, val_store, strategy,
                                 clock=clock)
        trainer.epoch_end = epoch_end
        loop_started, loop_cpu_started = time.perf_counter(), _cpu_seconds()
        clock.seconds["run start"] = loop_started - run_started
        with _graceful_interrupt() as interrupt:
            trainer.interrupt = interrupt
            trainer.run_stages()
        loop_seconds, loop_cpu_seconds = time.perf_counter() - loop_started, _cpu_seconds() - loop_cpu_started
        clock.add_stages(loop_seconds)
        with clock.part("final"):
            metrics = trainer.finish()
    logger.info("wall time by part, %s", clock.summary())
    return TrainResult(run_id=run.run_id, experiment_id=run.tracker.experiment_id, run_dir=run.run_dir,
                       model=model, metrics=metrics,
                       stage_end_reasons=list(progress.stage_end_reasons),
                       curves=dict(trainer.recorder.curves),
                       seconds=time.perf_counter() - started,
                       loop_seconds=loop_seconds, loop_cpu_seconds=loop_cpu_seconds,
                       wall_times=clock.breakdown(), headline=trainer.final_headline)


def _check_batches_per_step(config: Config, train_store) -> None:
    """``ConfigError`` for a stage whose batch size packs the training events into fewer batches than a step on
    ``General.devices`` devices takes (one per device): it would train on nothing."""
    devices, issues = config.General.devices, []
    if devices == 1:  # (a stage of no batches at all is the skipped events' warning, `_report_skipped`)
        return
    for index, stage in enumerate(config.Training):
        n_batches = HitBudgetBatcher(train_store, stage.batch_size, seed=config.General.seed).plan(0).n_batches
        if n_batches < devices:
            issues.append(ConfigIssue(
                path=f"Training.{index}.batch_size",
                message=f"packs the {train_store.n_events} training events ({train_store.n_hits} hits) into "
                        f"{n_batches} batch(es), but a step on General.devices {devices} takes {devices}, one per "
                        f"device. Lower batch_size to about {train_store.n_hits // devices} hits or less, or use "
                        f"fewer devices."))
    if issues:
        raise ConfigError(issues)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its ended children (this process alone without ``resource``)."""
    try:
        import resource
    except ImportError:  # not a Unix system
        return time.process_time()
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def _load(config_or_path, overrides, explicit) -> tuple[Config, Path | None, bytes | None]:
    if isinstance(config_or_path, Config):
        if overrides:
            raise ValueError("overrides apply to a config file; change a Config object with Config.from_dict")
        return config_or_path, None, None
    path = Path(config_or_path)
    config = resolve_config(path, list(overrides), explicit).config if explicit else load_config(path, overrides)
    return config, path, path.read_bytes()


@contextmanager
def _graceful_interrupt():
    """The first Ctrl-C sets a flag the loop checks after each batch; a second one interrupts at once."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum, frame):
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        logger.warning("interrupt received: finishing this batch and writing a checkpoint (Ctrl-C again to abort)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)
