"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a directory ``<run dir>/ckpt-<step>`` holding

- ``model.weights.h5``: every model variable (weights, batch-norm state, regulariser values),
- ``optimizer.npz``: every optimizer variable (iterations, moments, learning rate),
- ``progress.json``: the :class:`Progress` (stage, epochs and steps done, the position in the epoch's batch
  order, the early-stopping state).

It is written completely before the small pointer file ``<run dir>/latest`` is replaced (an atomic rename) to
name it, so a process killed while writing leaves the previous checkpoint in force. Older ``ckpt-*``
directories are removed; the copies made at each stage's end (``stage-<n>-end``) are kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

logger = logging.getLogger(__name__)

LATEST = "latest"
PROGRESS_FILE = "progress.json"
WEIGHTS_FILE = "model.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"


@dataclass
class Progress:
    """Where a run is. Counts are of completed units: ``epoch = 3`` means three epochs are done.

    Attributes:
        stage: index of the stage in progress (or next to start).
        stage_epoch: epochs done in that stage.
        epoch: epochs done in all stages.
        step: optimizer steps done in all stages (the global step of the metrics).
        batch_in_epoch: batches done of the epoch in progress (0 at an epoch boundary).
        best_val_loss, epochs_without_improvement: early-stopping state of the stage.
        smoothed_loss: the stop_below state of the stage (None before its first batch).
        epoch_averages: the running sums of the epoch in progress (``EpochAverages.state()``).
        stage_end_reasons: why each finished stage ended ("epochs", "early_stopping", "stop_below").
        stage_first_steps: the global step at which each stage entered so far began (the plots' stage marks).
        finished: all stages are done.
    """

    stage: int = 0
    stage_epoch: int = 0
    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    best_val_loss: float | None = None
    epochs_without_improvement: int = 0
    smoothed_loss: float | None = None
    stage_end_reasons: list[str] = field(default_factory=list)
    stage_first_steps: list[int] = field(default_factory=list)
    epoch_averages: dict = field(default_factory=dict)
    finished: bool = False

    def start_stage(self, index: int) -> None:
        """Reset the per-stage counters for stage ``index``."""
        self.stage, self.stage_epoch, self.batch_in_epoch = index, 0, 0
        self.best_val_loss, self.epochs_without_improvement, self.smoothed_loss = None, 0, None
        self.epoch_averages = {}


def save_checkpoint(run_dir: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer,
                    progress: Progress, *, keep_as: str | None = None) -> Path:
    """Write a checkpoint of the current state into ``run_dir`` and make it the latest; returns its directory.

    ``keep_as`` also keeps a copy under that name (e.g. ``stage-1-end``), never removed.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / f"ckpt-{progress.step:09d}-{progress.epoch:05d}-{progress.batch_in_epoch:07d}"
    partial = run_dir / f".partial-{target.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    model.save_weights(partial / WEIGHTS_FILE)
    np.savez(partial / OPTIMIZER_FILE, *[np.asarray(v.numpy()) for v in optimizer.variables])
    (partial / PROGRESS_FILE).write_text(json.dumps(asdict(progress), indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    pointer = run_dir / f".{LATEST}.tmp"
    pointer.write_text(target.name + "\n")
    os.replace(pointer, run_dir / LATEST)
    if keep_as:
        kept = run_dir / keep_as
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(target, kept)
    for old in run_dir.glob("ckpt-*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    logger.debug("checkpoint %s", target)
    return target


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The directory the ``latest`` pointer names, or None when the run has no checkpoint."""
    pointer = Path(run_dir) / LATEST
    if not pointer.is_file():
        return None
    target = Path(run_dir) / pointer.read_text().strip()
    return target if (target / PROGRESS_FILE).is_file() else None


def restore_checkpoint(checkpoint: Path, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> Progress:
    """Load weights and optimizer state from ``checkpoint`` into the (built) model and optimizer."""
    checkpoint = Path(checkpoint)
    model.load_weights(checkpoint / WEIGHTS_FILE)
    with np.load(checkpoint / OPTIMIZER_FILE) as saved:
        values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    variables = optimizer.variables
    if len(values) != len(variables):
        raise ValueError(f"{checkpoint}: the optimizer state has {len(values)} variables, the optimizer "
                         f"{len(variables)}; was the config's Optimizer or Architecture changed since?")
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{checkpoint}: optimizer variable {variable.path} has shape {tuple(variable.shape)}, "
                             f"the checkpoint {value.shape}")
        variable.assign(value)
    data = json.loads((checkpoint / PROGRESS_FILE).read_text())
    return Progress(**data)
