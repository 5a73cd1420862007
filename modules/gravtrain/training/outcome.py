"""What a training call hands back, and how it stops: `TrainResult`, the `EpochEnd` callback of a caller that
may stop training between epochs (a sweep's pruner), and the two ways training stops early."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import keras


EpochEnd = Callable[[int, Mapping[str, float]], "str | None"]
"""``epoch_end(epoch, metrics)`` of `train`: None goes on; a string stops training with that reason."""


class NonFiniteLossError(RuntimeError):
    """Training met a non-finite loss term or gradient; the message names it, the step and the checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: a checkpoint was written and the run marked KILLED; the message says how to resume."""


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        run_id: the MLflow run (None with tracking off).
        experiment_id: the MLflow experiment of the run (None with tracking off).
        run_dir: the run's checkpoint directory (``model.keras`` is saved there too).
        model: the trained model.
        metrics: the final validation losses and physics metrics by name.
        stage_end_reasons: why each stage ended ("epochs", "early_stopping", "stop_below", or the reason an
            ``epoch_end`` callback gave, e.g. "pruned").
        curves: every metric recorded for the run, as name -> (steps, values), e.g. ``curves["objective"]``
            (the same records the tracker got; a resumed call also holds what the store had before it).
        seconds: wall time of this call.
        loop_seconds: wall time of the stages (batches, records, plots, checkpoints, validation).
        loop_cpu_seconds: CPU time (user + system) of this process during the stages (the live plots included).
        wall_times: wall seconds of this call by part (``gravtrain.training.wall_clock``: events, model, run
            start, steps, validation, physics, commits, final); they add up to ``seconds`` but for the config's
            loading and checks.
        headline: the final model's main physics figures on the validation events in one line (a condensation
            model's efficiency, fake rate and response; a noise filter's efficiency, rejection and AUC).
    """

    run_id: str | None
    run_dir: Path
    model: keras.Model
    experiment_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stage_end_reasons: list[str] = field(default_factory=list)
    curves: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    seconds: float = 0.0
    loop_seconds: float = 0.0
    loop_cpu_seconds: float = 0.0
    wall_times: dict[str, float] = field(default_factory=dict)
    headline: str = ""
