"""What each stage changes: learning rate, batch-norm and loss options (base section + the stage's overrides),
and which layers it freezes."""

from __future__ import annotations

import dataclasses
import fnmatch
import logging

import keras

from gravtrain.config.errors import ConfigError, ConfigIssue
from gravtrain.config.schema import Config
from gravtrain.layers import ScaledGooeyBatchNorm2
from gravtrain.layers.batch_norm import RUNTIME_OPTIONS

logger = logging.getLogger(__name__)


def stage_options(base, overrides) -> dict:
    """The base section's values with the stage's non-None overrides applied, as a plain dict."""
    values = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    values.update({f.name: getattr(overrides, f.name) for f in dataclasses.fields(overrides)
                   if getattr(overrides, f.name) is not None})
    return values


def batch_norm_options(config: Config, index: int) -> dict:
    """The batch-norm options in force in stage ``index``."""
    return stage_options(config.BatchNormOptions, config.Training[index].BatchNormOptions)


def loss_options(config: Config, index: int) -> dict:
    """The loss options in force in stage ``index``."""
    return stage_options(config.LossOptions, config.Training[index].LossOptions)


def check_freeze_patterns(config: Config, model: keras.Model) -> None:
    """``ConfigError`` for any ``Training.N.freeze`` pattern that matches no layer of ``model`` (a typo would
    otherwise silently train what the user meant to freeze), and for a ``learn`` change between stages."""
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
        learn = stage.BatchNormOptions.learn
        if learn is not None and learn != config.BatchNormOptions.learn:
            issues.append(ConfigIssue(
                path=f"Training.{index}.BatchNormOptions.learn",
                message="'learn' decides which batch-norm weights exist, so it cannot change between stages; "
                        "set it in BatchNormOptions only."))
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


def apply_batch_norm_options(model: keras.Model, options: dict, *, reset_viscosity: bool) -> None:
    """Set the runtime batch-norm options (all but ``learn``) on every gooey batch norm of ``model``.

    The viscosity is also the layers' moving state: it is set (reset) only with ``reset_viscosity``, i.e. when a
    stage that names it starts, never when a run resumes inside that stage.
    """
    runtime = {name: options[name] for name in RUNTIME_OPTIONS if name in options}
    if not reset_viscosity:
        runtime.pop("viscosity", None)
    for layer in batch_norm_layers(model):
        layer.set_options(**runtime)


def batch_norm_layers(model: keras.Model) -> list[ScaledGooeyBatchNorm2]:
    return [layer for layer in model.layers if isinstance(layer, ScaledGooeyBatchNorm2)]
