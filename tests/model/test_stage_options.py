"""The batch-norm and loss options of each stage, and the loss, as model/ builds them from the config.

The names the layers and the loss take come from their signatures; a config key they do not take (here a fake
key grafted onto a section, as a schema key added without its constructor argument would be) is a
``ConfigError`` naming the key and the stage before anything is built or trained.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import pytest

from gravtrain.config import ConfigError
from gravtrain.config.schema import Config
from gravtrain.layers import ScaledGooeyBatchNorm2
from gravtrain.losses import ObjectCondensationLoss
from gravtrain.model import (
    apply_batch_norm_options,
    batch_norm_layers,
    batch_norm_options,
    build_loss,
    build_model,
    check_stage_options,
    loss_options,
)
from tests.model.conftest import SMALL, small_config


def two_stages(**second_stage) -> Config:
    """SMALL with the stages 'warmup' and 'main', the second with ``second_stage``'s keys."""
    stages = [{"name": "warmup", "epochs": 1, "batch_size": 3000, "learning_rate": 1e-3},
              {"name": "main", "epochs": 1, "batch_size": 3000, "learning_rate": 1e-4, **second_stage}]
    return Config.from_dict({**SMALL, "Training": stages})


def with_extra_key(section, key: str, value):
    """``section`` (a config section instance) with one more key, ``key: value``, that the schema lacks."""
    extra_field = (key, Optional[float], dataclasses.field(default=None))
    extended = dataclasses.make_dataclass(type(section).__name__, [extra_field], bases=(type(section),), frozen=True)
    values = {field.name: getattr(section, field.name) for field in dataclasses.fields(section)}
    return extended(**values, **{key: value})


def with_stage_section(config, index: int, section_name: str, section):
    stages = list(config.Training)
    stages[index] = dataclasses.replace(stages[index], **{section_name: section})
    return dataclasses.replace(config, Training=tuple(stages))


def test_a_fake_batch_norm_option_in_a_stage_override_is_a_config_error_naming_it_and_the_stage(toy_stats):
    config = two_stages(BatchNormOptions={"viscosity": 0.5})
    fake = with_stage_section(config, 1, "BatchNormOptions",
                              with_extra_key(config.Training[1].BatchNormOptions, "momentum", 0.9))
    for build in (check_stage_options, lambda c: batch_norm_options(c, 1), lambda c: build_model(c, toy_stats)):
        with pytest.raises(ConfigError) as info:
            build(fake)
        [issue] = info.value.errors
        assert issue.path == "Training.1.BatchNormOptions.momentum"
        assert "stage 'main' overrides 'momentum', which is no batch-norm option" in issue.message
        assert "viscosity, fluidity_decay, max_viscosity, no_gaus, epsilon" in issue.message
    check_stage_options(config)  # without the fake key all is well
    assert batch_norm_options(config, 1)["viscosity"] == 0.5


def test_training_refuses_a_fake_stage_option_before_the_events_load(monkeypatch, tmp_path):
    import gravtrain
    from gravtrain.training import loop

    config = two_stages()
    fake = with_stage_section(config, 0, "LossOptions",
                              with_extra_key(config.Training[0].LossOptions, "q_minimum", 0.5))

    def load_event_sets(*args, **kwargs):
        raise AssertionError("the events were loaded before the stage options were checked")

    monkeypatch.setattr(loop, "load_event_sets", load_event_sets)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        gravtrain.train(fake, tracking=False)
    [issue] = info.value.errors
    assert issue.path == "Training.0.LossOptions.q_minimum"
    assert "stage 'warmup' overrides 'q_minimum', which is no loss option" in issue.message


def test_a_section_key_the_layer_or_loss_does_not_take_is_a_config_error():
    config = small_config()
    fake_batch_norm = dataclasses.replace(
        config, BatchNormOptions=with_extra_key(config.BatchNormOptions, "momentum", 0.9))
    with pytest.raises(ConfigError, match="BatchNormOptions.momentum: 'momentum' is no argument of "
                                          "ScaledGooeyBatchNorm2"):
        check_stage_options(fake_batch_norm)
    fake_loss = dataclasses.replace(config, LossOptions=with_extra_key(config.LossOptions, "q_minimum", 0.5))
    with pytest.raises(ConfigError, match="LossOptions.q_minimum: 'q_minimum' is no argument of "
                                          "ObjectCondensationLoss"):
        build_loss(fake_loss, 0)


def test_learn_cannot_change_between_stages_but_may_be_repeated():
    with pytest.raises(ConfigError) as info:
        check_stage_options(two_stages(BatchNormOptions={"learn": True}))
    [issue] = info.value.errors
    assert issue.path == "Training.1.BatchNormOptions.learn"
    assert "stage 'main' changes 'learn', which is fixed when the batch-norm layers are built" in issue.message
    config = two_stages(BatchNormOptions={"learn": False})  # the section's value: no change
    check_stage_options(config)
    assert "learn" not in batch_norm_options(config, 1)


def test_stage_options_are_the_section_with_the_stage_overrides(toy_stats):
    config = two_stages(BatchNormOptions={"epsilon": 0.2}, LossOptions={"q_min": 0.5, "oc_implementation": "basic"})
    assert loss_options(config, 0)["q_min"] == 1.0 and loss_options(config, 1)["q_min"] == 0.5
    assert batch_norm_options(config, 1) == {"viscosity": 0.01, "fluidity_decay": 1e-4, "max_viscosity": 0.99999,
                                             "no_gaus": True, "epsilon": 0.2}
    loss = build_loss(config, 0)
    assert isinstance(loss, ObjectCondensationLoss) and loss.options["oc_implementation"] == "hinge"
    loss.set_options(**loss_options(config, 1))
    assert loss.options == loss_options(config, 1)

    model = build_model(config, toy_stats)
    layers = batch_norm_layers(model)
    assert layers and all(isinstance(layer, ScaledGooeyBatchNorm2) for layer in layers)
    for layer in layers:  # every BatchNormOptions key reached the layers by its own name
        section = config.BatchNormOptions
        assert {name: layer.get_config()[name] for name in ("viscosity", "epsilon", "learn")} == {
            "viscosity": section.viscosity, "epsilon": section.epsilon, "learn": section.learn}
    apply_batch_norm_options(model, batch_norm_options(config, 1), reset_viscosity=False)
    assert all(layer.options["epsilon"] == 0.2 and layer.options["viscosity"] == 0.01 for layer in layers)
