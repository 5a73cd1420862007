"""ScaledGooeyBatchNorm2: the update and output formulas against NumPy, learn mode, run-time options, saving."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import ScaledGooeyBatchNorm2

OPTIONS = {"viscosity": 0.2, "fluidity_decay": 0.1, "max_viscosity": 0.9, "epsilon": 1e-2}


def state_of(layer):
    return {name: getattr(layer, name).numpy() for name in ("mean", "den", "viscosity", "gamma", "bias")}


def options_of(layer):
    return layer.get_config()


@pytest.fixture
def batch():
    rng = np.random.default_rng(21)
    x = rng.normal(loc=2.0, scale=3.0, size=(17, 4))
    condition = (rng.uniform(size=(17, 1)) > 0.4).astype(np.float64)
    return x, condition


@pytest.mark.parametrize("no_gaus", [True, False])
@pytest.mark.parametrize("with_condition", [True, False])
def test_training_steps_match_numpy(no_gaus, with_condition, batch, reference):
    x, condition = batch
    layer = ScaledGooeyBatchNorm2(no_gaus=no_gaus, dtype="float64", **OPTIONS)
    layer.build([x.shape, condition.shape] if with_condition else x.shape)
    layer.gamma.assign(np.array([1.0, 2.0, 0.5, -1.0]))
    layer.bias.assign(np.array([0.0, 0.1, -0.2, 0.3]))
    state = state_of(layer)
    for step in range(1, 4):
        values = tf.constant(x * step)
        out = layer([values, tf.constant(condition)] if with_condition else values, training=True).numpy()
        expected, state, _ = reference.batch_norm(
            x * step, condition if with_condition else None, state, options_of(layer), training=True
        )
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
        for name, value in state_of(layer).items():
            np.testing.assert_allclose(value, state[name], rtol=1e-10, atol=1e-12, err_msg=name)
    assert state["viscosity"] > OPTIONS["viscosity"]


def test_inference_uses_state_and_passes_unselected_rows(batch, reference):
    x, condition = batch
    layer = ScaledGooeyBatchNorm2(dtype="float64")
    layer.build([x.shape, condition.shape])
    layer.mean.assign(np.array([1.0, -1.0, 0.5, 2.0]))
    layer.den.assign(np.array([2.0, -3.0, 0.5, 1.0]))  # |den| in the denominator
    layer.gamma.assign(np.array([1.5, 1.0, 1.0, 0.5]))
    before = state_of(layer)
    out = layer([tf.constant(x), tf.constant(condition[:, 0])], training=False).numpy()
    expected, _, _ = reference.batch_norm(x, condition, before, options_of(layer), training=False)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    unselected = condition[:, 0] <= 0.5
    assert unselected.any() and np.array_equal(out[unselected], x[unselected])
    for name, value in state_of(layer).items():
        np.testing.assert_array_equal(value, before[name])


def test_gradient_stops_at_mean_and_den(batch):
    x, _ = batch
    layer = ScaledGooeyBatchNorm2(dtype="float64")
    x_variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x_variable, training=True))
    gradient = tape.gradient(loss, x_variable).numpy()
    expected = np.broadcast_to(layer.gamma.numpy() / (np.abs(layer.den.numpy()) + 1e-2), x.shape)
    np.testing.assert_allclose(gradient, expected, rtol=1e-12)


def test_learn_mode_adds_loss_and_trains_statistics(batch, reference):
    x, condition = batch
    layer = ScaledGooeyBatchNorm2(learn=True, dtype="float64")
    layer.build([x.shape, condition.shape])
    assert layer.mean.trainable and layer.den.trainable
    state = state_of(layer)
    out = layer([tf.constant(x), tf.constant(condition)], training=True).numpy()
    expected, new_state, loss = reference.batch_norm(x, condition, state, options_of(layer), True, learn=True)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), loss, rtol=1e-10)
    for name, value in state_of(layer).items():  # no moving update
        np.testing.assert_array_equal(value, state[name])
    frozen = ScaledGooeyBatchNorm2()
    frozen.build((None, 4))
    assert not frozen.mean.trainable and not frozen.den.trainable and frozen.gamma.trainable


def test_defaults_and_config():
    layer = ScaledGooeyBatchNorm2(name="batch_norm_0")
    config = layer.get_config()
    assert {k: config[k] for k in ("viscosity", "fluidity_decay", "max_viscosity", "no_gaus", "epsilon", "learn")} == {
        "viscosity": 0.01, "fluidity_decay": 1e-4, "max_viscosity": 0.99999, "no_gaus": True,
        "epsilon": 1e-2, "learn": False,
    }
    assert ScaledGooeyBatchNorm2.from_config(config).get_config() == config
    assert layer.compute_output_shape((None, 7)) == (None, 7)
    assert layer.compute_output_shape([(None, 7), (None, 1)]) == (None, 7)


def test_set_options_between_stages_without_retracing(batch, reference):
    x, _ = batch
    layer = ScaledGooeyBatchNorm2(dtype="float64")
    layer.build(x.shape)
    traces = []

    @tf.function
    def train_step(values):
        traces.append(1)
        return layer(values, training=True)

    train_step(tf.constant(x))
    layer.set_options(viscosity=0.5, fluidity_decay=0.2, max_viscosity=0.7, no_gaus=False, epsilon=0.1)
    assert layer.get_config()["epsilon"] == 0.1 and layer.get_config()["no_gaus"] is False
    state = state_of(layer)
    assert state["viscosity"] == 0.5
    out = train_step(tf.constant(x)).numpy()
    expected, new_state, _ = reference.batch_norm(x, None, state, options_of(layer), training=True)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    np.testing.assert_allclose(layer.viscosity.numpy(), new_state["viscosity"], rtol=1e-12)
    assert len(traces) == 1
    with pytest.raises(TypeError, match="momentum"):
        layer.set_options(momentum=0.9)
    with pytest.raises(TypeError, match="learn"):  # fixed at construction: it decides which weights are trainable
        layer.set_options(learn=True)


def test_saves_and_loads_with_identical_outputs(tmp_path, batch):
    x, condition = batch
    x_input, condition_input = keras.Input((4,)), keras.Input((1,))
    out = ScaledGooeyBatchNorm2(name="batch_norm_0")([x_input, condition_input])
    model = keras.Model([x_input, condition_input], out)
    model.get_layer("batch_norm_0")([x.astype(np.float32), condition.astype(np.float32)], training=True)
    path = tmp_path / "batch_norm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    inputs = [tf.constant(x, tf.float32), tf.constant(condition, tf.float32)]
    np.testing.assert_array_equal(model(inputs).numpy(), loaded(inputs).numpy())
    original, restored = model.get_layer("batch_norm_0"), loaded.get_layer("batch_norm_0")
    for name in ("mean", "den", "viscosity"):
        np.testing.assert_array_equal(getattr(original, name).numpy(), getattr(restored, name).numpy())
