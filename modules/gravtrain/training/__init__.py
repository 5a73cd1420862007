"""Staged training: the loop, its compiled steps, checkpoints and resume, the NaN guard, the run's records.

``train(config_or_path, overrides=(), tracking=True)`` is the one training path; the CLI calls it.
"""

from gravtrain.training.checkpoint import CheckpointWriteError, Progress, latest_checkpoint
from gravtrain.training.loop import train
from gravtrain.training.outcome import EpochEnd, NonFiniteLossError, TrainingInterrupted, TrainResult
from gravtrain.training.run import ResumeError

__all__ = ["CheckpointWriteError", "EpochEnd", "NonFiniteLossError", "Progress", "ResumeError", "TrainResult",
           "TrainingInterrupted", "latest_checkpoint", "train"]
