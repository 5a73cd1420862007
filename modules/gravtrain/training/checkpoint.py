"""Checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a directory ``<run dir>/ckpt-<step>`` holding

- ``model.weights.h5``: every model variable (weights, batch-norm state, regulariser values),
- ``optimizer.npz``: every optimizer variable (iterations, moments, learning rate),
- ``progress.json``: the :class:`Progress` (stage, epochs and steps done, the position in the epoch's batch
  order, the early-stopping state).

A save never passes through a state without a complete checkpoint in force:

1. the new checkpoint is written into ``.partial-<name>`` and renamed to ``<name>`` (a name not in use, so the
   checkpoint in force is never overwritten, even when the new one is of the same step, as at a stage's end);
2. the small pointer file ``<run dir>/latest`` is replaced (written beside, then an atomic rename) to name it;
3. only then are the older ``ckpt-*`` directories and the leftovers of interrupted saves removed.

A process killed at any point leaves ``latest`` naming a complete checkpoint: the previous one until step 2,
the new one after. The copies made at each stage's end (``stage-<n>-end``) are kept; they are assembled
beside, then renamed into place. :func:`latest_checkpoint` also finds the newest complete checkpoint when the
pointer itself was lost.
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

from gravtrain.tracking.errors import is_disk_full

logger = logging.getLogger(__name__)

LATEST = "latest"
PROGRESS_FILE = "progress.json"
WEIGHTS_FILE = "model.weights.h5"
OPTIMIZER_FILE = "optimizer.npz"
CHECKPOINT_PREFIX = "ckpt-"
PARTIAL_PREFIX = ".partial-"  # a save in progress
TRASH_PREFIX = ".old-"  # a stage-end copy set aside while its replacement is renamed in


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full or failing disk); the message names the directory and the
    checkpoint still in force. An environment failure, not the user's mistake."""


def _reason(error: BaseException) -> str:
    return f"{'the disk is full: ' if is_disk_full(error) else ''}{type(error).__name__}: {error}"


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
    target = _unused(run_dir, f"{CHECKPOINT_PREFIX}{progress.step:09d}-{progress.epoch:05d}-"
                              f"{progress.batch_in_epoch:07d}")
    partial = run_dir / f"{PARTIAL_PREFIX}{target.name}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        model.save_weights(partial / WEIGHTS_FILE)
        np.savez(partial / OPTIMIZER_FILE, *[np.asarray(v.numpy()) for v in optimizer.variables])
        (partial / PROGRESS_FILE).write_text(json.dumps(asdict(progress), indent=1) + "\n")
    except (OSError, RuntimeError) as error:  # h5py reports a full disk as RuntimeError or OSError
        shutil.rmtree(partial, ignore_errors=True)
        in_force = latest_checkpoint(run_dir)
        kept = f"the checkpoint in force, {in_force.name}, is intact" if in_force else "no checkpoint was written yet"
        raise CheckpointWriteError(
            f"cannot write a checkpoint into {run_dir} ({_reason(error)}); {kept}. Free space there (or point "
            "Tracking.checkpoint_dir at a disk with room)") from error
    os.replace(partial, target)
    pointer = run_dir / f".{LATEST}.tmp"
    pointer.write_text(target.name + "\n")
    os.replace(pointer, run_dir / LATEST)
    if keep_as:
        _keep_copy(target, run_dir / keep_as)
    _clear_leftovers(run_dir, target)
    logger.debug("checkpoint %s", target)
    return target


def _unused(run_dir: Path, name: str) -> Path:
    """``run_dir / name``, or ``name.1``, ``name.2``, ... when it is taken (never overwrite what is in force)."""
    candidate, n = run_dir / name, 0
    while candidate.exists():
        n += 1
        candidate = run_dir / f"{name}.{n}"
    return candidate


def _keep_copy(source: Path, kept: Path) -> None:
    """Make ``kept`` a copy of ``source``: assembled beside, the old copy set aside, the new renamed in."""
    partial = kept.parent / f"{PARTIAL_PREFIX}{kept.name}"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    if kept.exists():
        trash = kept.parent / f"{TRASH_PREFIX}{kept.name}"
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(kept, trash)
    os.replace(partial, kept)


def _clear_leftovers(run_dir: Path, target: Path) -> None:
    """Remove the checkpoints older than ``target`` and what interrupted saves left; a stage-end copy that a
    kill caught set aside, with no new copy in its place, is put back."""
    for old in sorted(run_dir.iterdir()):
        if old.name.startswith(TRASH_PREFIX):
            original = run_dir / old.name[len(TRASH_PREFIX):]
            if not original.exists() and _is_complete(old):
                os.replace(old, original)
                continue
        if old != target and old.name.startswith((CHECKPOINT_PREFIX, PARTIAL_PREFIX, TRASH_PREFIX)):
            shutil.rmtree(old, ignore_errors=True)


def _is_complete(checkpoint: Path) -> bool:
    # progress.json is written last, and a checkpoint directory only gets its name once complete.
    return (checkpoint / PROGRESS_FILE).is_file() and (checkpoint / WEIGHTS_FILE).is_file()


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The directory the ``latest`` pointer names, or None when the run has no checkpoint.

    When the pointer is missing, unreadable or names no complete checkpoint (a damaged file system), the
    complete ``ckpt-*`` directory of the highest step is used instead, with a warning.
    """
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST
    try:
        target = run_dir / pointer.read_text().strip() if pointer.is_file() else None
    except (OSError, UnicodeDecodeError):
        target = None
    if target is not None and target != run_dir and _is_complete(target):
        return target
    complete = [path for path in run_dir.glob(f"{CHECKPOINT_PREFIX}*") if _is_complete(path)]
    if not complete:
        return None
    newest = max(complete, key=_checkpoint_order)
    if pointer.exists():
        logger.warning("%s does not name a complete checkpoint; using the newest one, %s", pointer, newest.name)
    return newest


def _checkpoint_order(path: Path) -> tuple[int, ...]:
    """Sort key of ``ckpt-<step>-<epoch>-<batch>[.n]`` names: the numbers, then the re-save count."""
    stem, _, resave = path.name[len(CHECKPOINT_PREFIX):].partition(".")
    numbers = [int(part) for part in stem.split("-") if part.isdigit()]
    return (*numbers, int(resave) if resave.isdigit() else 0)


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
