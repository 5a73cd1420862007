"""What a training step needs from a config, built in one place: the model (with its pre-model), the optimizer
built for every trainable weight, and the first stage's loss, all created on the devices they will run on."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from gravtrain.config.schema import Config
from gravtrain.model.builder import FeatureStatsLike, build_model, pre_model_of
from gravtrain.model.devices import creation_scope
from gravtrain.model.optimizer import make_optimizer
from gravtrain.model.pre_models import PreModel, PreModelFetch
from gravtrain.model.stage_options import build_loss


@dataclass(frozen=True)
class TrainingParts:
    """A config's model, optimizer and loss (`build_training_parts`); ``pre_model`` is None without one."""

    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    loss: object
    pre_model: PreModel | None


def build_training_parts(config: Config, feature_stats: FeatureStatsLike,
                         strategy: tf.distribute.Strategy | None = None, *,
                         fetch: PreModelFetch | None = None) -> TrainingParts:
    """The model ``config`` describes (and the pre-model it names, loaded), its optimizer at the first stage's
    learning rate, built for all of the model's trainable weights, and the first stage's loss; on the devices of
    ``strategy`` (`gravtrain.model.devices`; None: one device), every variable mirrored on each. ``fetch``
    downloads a pre-model a URI names (`gravtrain.model.pre_models.PreModelFetch`).

    Raises:
        ConfigError: what `build_model` and `pre_model_of` raise.
    """
    with creation_scope(strategy):
        pre_model = pre_model_of(config, feature_stats.names, fetch=fetch)
        model = build_model(config, feature_stats, pre_model=pre_model)
        optimizer = make_optimizer(config.Optimizer, config.Training[0].learning_rate)
        optimizer.build(model.trainable_variables)
        loss = build_loss(config, 0)
    return TrainingParts(model, optimizer, loss, pre_model)
