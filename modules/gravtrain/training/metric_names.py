"""The names of the metrics a run logs at each epoch end and at its end: what a sweep may rank runs by.

    val/objective, val/loss/total, val/loss/<term>   the validation loss and its terms (each epoch, and final)
    physics/<name>                                   efficiency, fake rate, response, ... on the validation
                                                     events (every Plotting.physics_frequency epochs, and final);
                                                     a noise filter's signal efficiency, noise rejection, ...
    epoch/<name>                                     the training loss terms averaged over the epoch
"""

from __future__ import annotations

from gravtrain.evaluation import FILTER_METRIC_NAMES, PHYSICS_METRIC_NAMES
from gravtrain.model import LOSS_TERM_NAMES, NOISE_FILTER_TERM_NAMES

#: Metrics a config's regularisers add, by prefix (their names depend on the architecture).
REGULARIZER_PREFIX = "regularizer/"


def epoch_metric_names() -> tuple[str, ...]:
    """Every fixed name of the module docstring (regularisers, named by layer, are matched by prefix)."""
    terms = LOSS_TERM_NAMES + NOISE_FILTER_TERM_NAMES
    losses = ("objective", "loss/total") + tuple(f"loss/{term}" for term in terms)
    physics = PHYSICS_METRIC_NAMES + FILTER_METRIC_NAMES
    return (tuple(f"val/{name}" for name in losses) + tuple(f"physics/{name}" for name in physics)
            + tuple(f"epoch/{name}" for name in losses))


def is_epoch_metric(name: str) -> bool:
    """Whether a run logs ``name`` at epoch ends (fixed names, or a regulariser's ``val/regularizer/...``)."""
    return name in epoch_metric_names() or name.startswith(("val/" + REGULARIZER_PREFIX, "epoch/" + REGULARIZER_PREFIX))


def logged_during_training(name: str, physics_frequency: int | None) -> bool:
    """Whether ``name`` is logged at epoch ends, not only at the end (physics/* needs a
    ``Plotting.physics_frequency``), so that a pruner can follow it."""
    return not name.startswith("physics/") or bool(physics_frequency)
