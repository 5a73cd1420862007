"""The optimizer of the ``Optimizer`` section: each key reaches the Keras class by its own name."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import numpy as np
import pytest

from gravtrain.config import ConfigError
from gravtrain.config.schema import Optimizer
from gravtrain.model import OPTIMIZERS, make_optimizer
from tests.model.conftest import small_config


def test_every_key_of_the_section_is_an_argument_of_some_optimizer():
    # A key no registered optimizer takes would reach none of them: it must not be added to the schema alone.
    keys = [field.name for field in dataclasses.fields(Optimizer) if field.name != "name"]
    for key in keys:
        assert any(key in inspect.signature(cls).parameters for cls in OPTIMIZERS.values()), key


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_gets_its_class_and_the_keys_it_takes(name):
    options = Optimizer(name=name, clipnorm=0.5, epsilon=1e-5, weight_decay=0.01)
    optimizer = make_optimizer(options, learning_rate=0.02)
    assert type(optimizer) is OPTIMIZERS[name]
    assert float(optimizer.learning_rate) == pytest.approx(0.02)
    assert optimizer.clipnorm == 0.5 and optimizer.weight_decay == 0.01
    if name == "sgd":
        assert not hasattr(optimizer, "epsilon")  # sgd has no epsilon: documented as ignored
    else:
        assert optimizer.epsilon == 1e-5


def test_weight_decay_null_keeps_each_optimizers_keras_default():
    assert make_optimizer(Optimizer(name="nadam"), 1e-3).weight_decay is None  # no decay, as before the key
    assert make_optimizer(Optimizer(name="sgd"), 1e-3).weight_decay is None
    assert make_optimizer(Optimizer(name="adamw"), 1e-3).weight_decay == pytest.approx(0.004)


def test_weight_decay_shrinks_the_weights_by_lr_times_lambda():
    """With a zero gradient only the decay moves a weight: w <- w - lr * λ * w, whichever optimizer."""
    for name in sorted(OPTIMIZERS):
        weight = keras.Variable(np.array([2.0, -4.0], dtype="float32"))
        optimizer = make_optimizer(Optimizer(name=name, weight_decay=0.1), learning_rate=0.5)
        optimizer.apply([np.zeros(2, dtype="float32")], [weight])
        np.testing.assert_allclose(np.asarray(weight), [2.0 * 0.95, -4.0 * 0.95], rtol=1e-6, err_msg=name)


def test_weight_decay_is_a_documented_key_with_a_range():
    config = small_config(**{"Optimizer.name": "adamw", "Optimizer.weight_decay": 0.05})
    assert config.Optimizer.weight_decay == 0.05
    with pytest.raises(ConfigError, match="Optimizer.weight_decay"):
        small_config(**{"Optimizer.weight_decay": -0.1})
