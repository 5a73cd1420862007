"""Training.N.recompute: the forward pass with each GravNet iteration recomputed in the backward pass gives the
plain pass's outputs, gradients, state updates and added losses (to float rounding), for both model families
and behind both pre-models, and searches each kNN graph once."""

from __future__ import annotations

import numpy as np
import pytest
import keras
import tensorflow as tf

from gravtrain.layers import knn
from gravtrain.model import build_model, iteration_of, recomputing_forward
from gravtrain.model.recompute import _Segment

from .conftest import small_config

DROPOUT = {"DenseOptions.dropout": 0.3}  # the recomputation must draw the same masks


@pytest.fixture(scope="module")
def saved_filter(tmp_path_factory, toy_stats):
    path = tmp_path_factory.mktemp("filter") / "model.keras"
    build_model(small_config(**{"General.model": "noise-filter"}), toy_stats).save(path)
    return path


def configs(saved_filter):
    return {
        "object condensation": small_config(**DROPOUT, **{"General.use_layer_normalization": True,
                                                          "General.use_fill_space": True,
                                                          "Architecture.knn": "kdtree"}),
        "noise filter": small_config(**DROPOUT, **{"General.model": "noise-filter"}),
        "pre-pooling": small_config(**DROPOUT, **{"General.pre-model-type": "pre-pooling"}),
        "behind a noise filter": small_config(**DROPOUT, **{"General.pre-model-type": "noise-filter",
                                                            "General.pre-model-path": str(saved_filter),
                                                            "General.pre-model-threshold": 0.3}),
    }


def loss_gradients_and_state(config, stats, batch, recompute: bool):
    """One forward and backward pass in training mode from the same initial weights and state."""
    keras.utils.set_random_seed(5)
    model = build_model(config, stats)
    forward = recomputing_forward(model) if recompute else None
    inputs = {name: tf.constant(value) for name, value in batch.items()}

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            if forward is not None:
                outputs, added = forward(inputs, training=True)
            else:
                outputs, added = model(inputs, training=True), []
            # A probe of every output, so each gets a gradient of its own.
            probe = tf.add_n([tf.reduce_sum(tf.sin(1.3 * tf.cast(value, tf.float64)))
                              for value in outputs.values() if value.dtype.is_floating])
            added_losses = tf.add_n([tf.zeros((), tf.float64)]
                                    + [tf.cast(loss, tf.float64) for loss in list(model.losses) + added])
            objective = probe + added_losses
        return objective, added_losses, tape.gradient(objective, model.trainable_variables)

    objective, added_losses, gradients = step()
    return (float(objective), float(added_losses), [g.numpy() for g in gradients],
            [v.numpy() for v in model.non_trainable_variables], model, forward)


@pytest.fixture
def float64_layers():
    """Layers in float64: there the two passes agree to the last bits. In float32 they differ by rounding (the
    graph optimiser fuses the recomputed ops differently), which layer normalisation of nearly constant rows
    amplifies to 1e-3 of a gradient's largest entry."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize("family", ["object condensation", "noise filter", "pre-pooling", "behind a noise filter"])
def test_the_recomputed_pass_is_the_plain_pass(family, saved_filter, toy_stats, toy_batch, float64_layers):
    config = configs(saved_filter)[family]
    plain = loss_gradients_and_state(config, toy_stats, toy_batch, recompute=False)
    again = loss_gradients_and_state(config, toy_stats, toy_batch, recompute=True)
    np.testing.assert_allclose(again[0], plain[0], rtol=1e-12)
    np.testing.assert_allclose(again[1], plain[1], rtol=1e-12)  # the regularisers' and layers' added losses
    assert plain[1] != 0.0 or family == "noise filter"  # the others have GravNet-space regularisers
    for got, want, variable in zip(again[2], plain[2], plain[4].trainable_variables):
        scale = max(float(np.max(np.abs(want))), 1e-30)
        assert np.max(np.abs(got - want)) <= 1e-10 * scale, variable.path
    # The state after the step (batch-norm statistics, the regularisers' values, dropout's seeds): assigned once.
    for got, want, variable in zip(again[3], plain[3], plain[4].non_trainable_variables):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=variable.path)
    moved = [v.path for v, before in zip(plain[4].non_trainable_variables,
                                         build_model(config, toy_stats).non_trainable_variables)
             if v.path.endswith("/mean") and not np.array_equal(v.numpy(), before.numpy())]
    assert moved, "no batch norm moved its statistics"
    segments = [unit for unit in again[5].units if isinstance(unit, _Segment)]
    assert len(segments) == len(config.Architecture.gravnet)
    assert all(len(segment.outputs) == 1 for segment in segments)


def test_every_layer_of_an_iteration_is_in_its_segment_and_no_other(toy_stats):
    config = small_config(**DROPOUT, **{"General.use_layer_normalization": True})
    model = build_model(config, toy_stats)
    names = {layer.name: iteration_of(layer.name) for layer in model.layers}
    assert names["gravnet_1"] == 1 and names["gravnet_1_input"] == 1 and names["dense_pre_gravnet_0_1_dropout"] == 0
    assert names["message_passing_0_layer_norm"] == 0 and names["gravnet_space_regularizer_1"] == 1
    assert {name for name, iteration in names.items() if iteration is None} >= {
        "input_conditioning", "hit_track_embedding", "batch_norm_embedding", "concatenate_iterations",
        "dense_final_0", "batch_norm_final", "condensation_heads"}
    assert all(iteration in (None, 0, 1) for iteration in names.values())


def test_each_graph_is_searched_once(monkeypatch, toy_stats, toy_batch):
    calls = []
    search = knn._ordered_neighbours
    monkeypatch.setattr(knn, "_ordered_neighbours", lambda *args: calls.append(1) or search(*args))
    config = small_config(**{"Architecture.knn": "kdtree"})
    loss_gradients_and_state(config, toy_stats, toy_batch, recompute=True)
    assert len(calls) == len(config.Architecture.gravnet)
