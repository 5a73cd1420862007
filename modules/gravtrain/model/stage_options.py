"""The loss and the batch-norm and loss options in force in each training stage, built from the config.

The options of stage i are its section's values with the stage's overrides on top::

    options_i = {**BatchNormOptions, **{key: value for key, value in Training.i.BatchNormOptions if value is set}}

(and the same for ``LossOptions``). The keys reach ``ScaledGooeyBatchNorm2`` and ``ObjectCondensationLoss`` by
their own names, and which names each takes is read from their signatures, never from a list kept here:

- the batch-norm layers are built with the ``BatchNormOptions`` keys as constructor arguments, and a stage may
  change those that ``ScaledGooeyBatchNorm2.set_options`` takes (``learn`` is fixed once the layers exist);
- the loss is built with the ``LossOptions`` keys as its keyword arguments, and a stage may change any of them.

A key they do not take is a ``ConfigError`` naming the key (and the stage) before anything is built or trained.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

import keras

from gravtrain.config.errors import ConfigError, ConfigIssue
from gravtrain.config.schema import Config
from gravtrain.layers import ScaledGooeyBatchNorm2
from gravtrain.losses import NoiseFilterLoss, ObjectCondensationLoss


def argument_names(function: Callable) -> tuple[str, ...]:
    """The names ``function`` (or a class's constructor) takes as keyword arguments, in order; ``self``,
    ``*args`` and ``**kwargs`` are not names it takes."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(name for name, parameter in inspect.signature(function).parameters.items()
                 if parameter.kind in named and name != "self")


def section_values(section) -> dict:
    """Every key of a config section with its value, by its Python name (the name the layer or loss takes)."""
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}


def stage_options(base, overrides) -> dict:
    """The base section's values with the stage's non-None overrides applied, as a plain dict."""
    return {**section_values(base), **overridden(overrides)}


def overridden(overrides) -> dict:
    """The keys a stage's override section sets (those that are not None), with their values."""
    return {name: value for name, value in section_values(overrides).items() if value is not None}


def check_stage_options(config: Config) -> None:
    """``ConfigError`` listing every ``BatchNormOptions`` and ``LossOptions`` key, of the sections or of a
    stage's overrides, that the batch-norm layers or the loss do not take (module docstring)."""
    issues = _section_issues(config)
    for index in range(len(config.Training)):
        issues += _stage_issues(config, index)
    if issues:
        raise ConfigError(issues)


def batch_norm_arguments(config: Config) -> dict:
    """The constructor arguments of every ``ScaledGooeyBatchNorm2`` of the model: the ``BatchNormOptions`` keys."""
    _raise(_section_issues(config))
    return section_values(config.BatchNormOptions)


def batch_norm_options(config: Config, index: int) -> dict:
    """The batch-norm options in force in stage ``index``: those ``ScaledGooeyBatchNorm2.set_options`` takes."""
    _raise(_section_issues(config) + _stage_issues(config, index))
    values = stage_options(config.BatchNormOptions, config.Training[index].BatchNormOptions)
    changeable = argument_names(ScaledGooeyBatchNorm2.set_options)
    return {name: value for name, value in values.items() if name in changeable}


def loss_options(config: Config, index: int) -> dict:
    """The loss options in force in stage ``index``, by the argument names of ``ObjectCondensationLoss``; none for
    a noise filter (its loss has no options)."""
    _raise(_section_issues(config) + _stage_issues(config, index))
    if config.General.model == "noise-filter":
        return {}
    return stage_options(config.LossOptions, config.Training[index].LossOptions)


def build_loss(config: Config, index: int = 0) -> ObjectCondensationLoss | NoiseFilterLoss:
    """The loss of the model family with the options of stage ``index``; ``set_options(**loss_options(config, j))``
    moves it to stage j without retracing. A noise filter's loss is its binary cross-entropy."""
    options = loss_options(config, index)  # checks the options first, for every model family
    return NoiseFilterLoss() if config.General.model == "noise-filter" else ObjectCondensationLoss(**options)


def batch_norm_layers(model: keras.Model) -> list[ScaledGooeyBatchNorm2]:
    """The gooey batch-norm layers of ``model``, in the model's order."""
    return [layer for layer in model.layers if isinstance(layer, ScaledGooeyBatchNorm2)]


def apply_batch_norm_options(model: keras.Model, options: dict, *, reset_viscosity: bool) -> None:
    """Set ``options`` (from :func:`batch_norm_options`) on every gooey batch norm of ``model``.

    The viscosity is also the layers' moving state: it is set (reset) only with ``reset_viscosity``, i.e. when a
    stage that names it starts, never when a run resumes inside that stage.
    """
    options = dict(options)
    if not reset_viscosity:
        options.pop("viscosity", None)
    for layer in batch_norm_layers(model):
        layer.set_options(**options)


def _raise(issues: list[ConfigIssue]) -> None:
    if issues:
        raise ConfigError(issues)


def _section_issues(config: Config) -> list[ConfigIssue]:
    """Keys of the ``BatchNormOptions`` and ``LossOptions`` sections that the layer or the loss does not take;
    for a noise filter, any ``LossOptions`` value changed from its default (they are object condensation's)."""
    issues = _noise_filter_loss_issues(config)
    for section, taker in (("BatchNormOptions", ScaledGooeyBatchNorm2), ("LossOptions", ObjectCondensationLoss)):
        taken = argument_names(taker)
        for name in section_values(getattr(config, section)):
            if name not in taken:
                issues.append(ConfigIssue(
                    path=f"{section}.{name}",
                    message=f"'{name}' is no argument of {taker.__name__}, so it would have no effect; "
                            f"{taker.__name__} takes {', '.join(taken)}."))
    return issues


def _noise_filter_loss_issues(config: Config) -> list[ConfigIssue]:
    if config.General.model != "noise-filter":
        return []
    defaults = type(config.LossOptions)()
    changed = [f"LossOptions.{name}" for name, value in section_values(config.LossOptions).items()
               if value != getattr(defaults, name)]
    changed += [f"Training.{index}.LossOptions.{name}" for index, stage in enumerate(config.Training)
                for name in overridden(stage.LossOptions)]
    return [ConfigIssue(path=path, message=(
        "is an object condensation option, but General.model is 'noise-filter', which trains with binary "
        "cross-entropy and takes no loss options; remove it.")) for path in changed]


def _stage_issues(config: Config, index: int) -> list[ConfigIssue]:
    """Keys that stage ``index`` overrides but the layer or the loss cannot change between stages."""
    stage, name = config.Training[index], config.stage_name(index)
    issues = []
    built_with = argument_names(ScaledGooeyBatchNorm2)
    changeable = argument_names(ScaledGooeyBatchNorm2.set_options)
    for key, value in overridden(stage.BatchNormOptions).items():
        path = f"Training.{index}.BatchNormOptions.{key}"
        if key in changeable:
            continue
        if key in built_with:
            if value != getattr(config.BatchNormOptions, key, None):
                issues.append(ConfigIssue(path=path, message=(
                    f"stage '{name}' changes '{key}', which is fixed when the batch-norm layers are built (it "
                    f"decides which of their weights exist), so it cannot change between stages; set it in "
                    f"BatchNormOptions only.")))
        else:
            issues.append(ConfigIssue(path=path, message=(
                f"stage '{name}' overrides '{key}', which is no batch-norm option; a stage may change "
                f"{', '.join(changeable)}.")))
    loss_names = argument_names(ObjectCondensationLoss)
    for key in overridden(stage.LossOptions):
        if key not in loss_names:
            issues.append(ConfigIssue(path=f"Training.{index}.LossOptions.{key}", message=(
                f"stage '{name}' overrides '{key}', which is no loss option; a stage may change "
                f"{', '.join(loss_names)}.")))
    return issues
