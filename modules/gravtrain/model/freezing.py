"""Which layers each stage freezes: `Training.N.freeze` patterns matched against the model's layer names (here, where
the names are made), checked before training so that a pattern that matches nothing is a config mistake."""

from __future__ import annotations

import fnmatch
import logging

import keras

from gravtrain.config.errors import ConfigError, ConfigIssue
from gravtrain.config.schema import Config

logger = logging.getLogger(__name__)


def check_freeze_patterns(config: Config, model: keras.Model) -> None:
    """``ConfigError`` for any ``Training.N.freeze`` pattern that matches no layer of ``model`` (a typo would
    otherwise silently train what the user meant to freeze)."""
    names = [layer.name for layer in model.layers]
    issues = []
    for index, stage in enumerate(config.Training):
        for position, pattern in enumerate(stage.freeze):
            if not fnmatch.filter(names, pattern):
                close = [name for name in names if pattern.strip("*") and pattern.strip("*") in name][:3]
                issues.append(ConfigIssue(
                    path=f"Training.{index}.freeze.{position}",
                    message=f"pattern '{pattern}' matches no layer of the model. Layer names look like "
                            f"gravnet_0, message_passing_0, dense_pre_gravnet_0_1, dense_final_0 "
                            f"(`gravtrain check` lists them all).",
                    suggestions=tuple(close)))
    if issues:
        raise ConfigError(issues)


def apply_freeze(model: keras.Model, patterns) -> list[str]:
    """Freeze the layers whose names match any of ``patterns`` and unfreeze all others; returns the frozen names."""
    frozen = []
    for layer in model.layers:
        is_frozen = any(fnmatch.fnmatchcase(layer.name, pattern) for pattern in patterns)
        layer.trainable = not is_frozen
        if is_frozen:
            frozen.append(layer.name)
    return frozen
