"""DistanceWeightedMessagePassing: the formula against a NumPy loop, gradients and serialisation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import DistanceWeightedMessagePassing, select_knn
from gravtrain.layers.knn import neighbour_dist_sq

WIDTHS = [4, 3]


def graph_of(coords, row_splits, k):
    nidx, dist_sq = select_knn(tf.constant(coords), tf.constant(row_splits), k, backend="brute")
    return nidx, dist_sq


def build_float64_layer(x, nidx, dist_sq):
    layer = DistanceWeightedMessagePassing(WIDTHS, dtype="float64")
    layer([tf.constant(x), nidx, dist_sq])
    # Every weight from a seeded generator: with Keras's unseeded initialiser, an occasional draw put two
    # neighbours' messages within a finite-difference step of a tie in the max aggregation, where the numeric
    # gradient is not the derivative (seen once in CI: one element of 69 off by 5e-4).
    rng = np.random.default_rng(8)
    for transform in layer.transforms:
        transform.kernel.assign(rng.normal(scale=1 / np.sqrt(transform.kernel.shape[0]), size=transform.kernel.shape))
        transform.bias.assign(rng.normal(scale=0.3, size=transform.bias.shape))
    return layer


def numpy_weights(layer):
    return [t.kernel.numpy() for t in layer.transforms], [t.bias.numpy() for t in layer.transforms]


def test_forward_matches_numpy_loop(ragged_batch, reference):
    x, row_splits, k = ragged_batch
    coords = 0.3 * x[:, :3]
    nidx, dist_sq = graph_of(coords, row_splits, k)
    layer = build_float64_layer(x, nidx, dist_sq)
    out = layer([tf.constant(x), nidx, dist_sq]).numpy()
    expected = reference.message_passing(x, nidx.numpy(), dist_sq.numpy(), *numpy_weights(layer))
    assert out.shape == (x.shape[0], 2 * sum(WIDTHS) + x.shape[1])
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(out[:, -x.shape[1]:], x)


def test_gradients_match_finite_differences(ragged_batch, reference):
    """d/dx with the graph fixed, and d/dcoords through dist_sq (the coordinate path)."""
    x, row_splits, k = ragged_batch
    coords = 0.3 * x[:, :3]
    nidx, dist_sq = graph_of(coords, row_splits, k)
    layer = build_float64_layer(x, nidx, dist_sq)
    kernels, biases = numpy_weights(layer)
    nidx_numpy = nidx.numpy()
    probe = np.random.default_rng(12).normal(size=(x.shape[0], 2 * sum(WIDTHS) + x.shape[1]))

    x_variable, coords_variable = tf.Variable(x), tf.Variable(coords)
    with tf.GradientTape() as tape:
        out = layer([x_variable, nidx, neighbour_dist_sq(coords_variable, nidx)])
        loss = tf.reduce_sum(probe * out)
    grad_x, grad_coords = tape.gradient(loss, [x_variable, coords_variable])

    def dist_sq_of(value):
        safe = np.where(nidx_numpy < 0, np.arange(len(value))[:, None], nidx_numpy)
        return np.where(nidx_numpy < 0, 0.0, np.sum((value[safe] - value[:, None, :]) ** 2, axis=-1))

    def loss_of_x(value):
        return float(np.sum(probe * reference.message_passing(value, nidx_numpy, dist_sq.numpy(), kernels, biases)))

    def loss_of_coords(value):
        return float(np.sum(probe * reference.message_passing(x, nidx_numpy, dist_sq_of(value), kernels, biases)))

    np.testing.assert_allclose(grad_x.numpy(), reference.numeric_gradient(loss_of_x, x), rtol=1e-5, atol=1e-7)
    numeric_coords = reference.numeric_gradient(loss_of_coords, coords)
    assert np.abs(numeric_coords).max() > 1e-3
    np.testing.assert_allclose(grad_coords.numpy(), numeric_coords, rtol=1e-5, atol=1e-7)


def test_the_graph_read_in_another_order_gives_the_same_outputs_and_gradients(ragged_batch):
    # [x, nidx, dist_sq, order, inverse] (GravNet's k-d tree order) runs the aggregations on the rows permuted
    # by order; outputs and gradients must be those of the input order. The permutation moves rows across
    # events, which the graph, mapped with it, must follow.
    x, row_splits, k = ragged_batch
    coords = 0.3 * x[:, :3]
    nidx, _ = graph_of(coords, row_splits, k)
    layer = build_float64_layer(x, nidx, neighbour_dist_sq(tf.constant(coords), nidx))
    order = tf.constant(np.random.default_rng(5).permutation(len(x)), tf.int32)
    inverse = tf.math.invert_permutation(order)
    probe = np.random.default_rng(6).normal(size=(len(x), 2 * sum(WIDTHS) + x.shape[1]))
    results = []
    for graph_order in ([], [order, inverse]):
        x_variable, coords_variable = tf.Variable(x), tf.Variable(coords)
        with tf.GradientTape() as tape:
            out = layer([x_variable, nidx, neighbour_dist_sq(coords_variable, nidx), *graph_order])
            loss = tf.reduce_sum(probe * out)
        results.append([out.numpy(), *(g.numpy() for g in tape.gradient(loss, [x_variable, coords_variable]))])
    for plain, ordered in zip(*results):
        np.testing.assert_allclose(ordered, plain, rtol=1e-12, atol=1e-12)
    assert np.abs(results[0][2]).max() > 1e-3  # the coordinate path has a gradient to compare


def test_config_round_trip_and_output_shape():
    layer = DistanceWeightedMessagePassing([8, 4, 2], activation="relu", name="message_passing_0")
    config = layer.get_config()
    assert config["n_feature_transformation"] == [8, 4, 2] and config["activation"] == "relu"
    assert DistanceWeightedMessagePassing.from_config(config).get_config() == config
    assert layer.compute_output_shape([(None, 5), (None, 3), (None, 3)]) == (None, 2 * 14 + 5)
    assert len(layer.transforms) == 3 and all(isinstance(t, keras.layers.Dense) for t in layer.transforms)


def test_saves_and_loads_with_identical_outputs(tmp_path, reference):
    x_input = keras.Input((5,))
    nidx_input = keras.Input((4,), dtype="int32")
    dist_input = keras.Input((4,))
    out = DistanceWeightedMessagePassing(WIDTHS, name="message_passing_0")([x_input, nidx_input, dist_input])
    model = keras.Model([x_input, nidx_input, dist_input], out)
    path = tmp_path / "message_passing.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)

    row_splits = reference.row_splits_from_sizes([6, 1, 0, 2, 9])
    x = np.random.default_rng(3).normal(size=(int(row_splits[-1]), 5)).astype(np.float32)
    nidx, dist_sq = graph_of(0.3 * x[:, :3], row_splits, 3)
    x = tf.constant(x)
    np.testing.assert_array_equal(model([x, nidx, dist_sq]).numpy(), loaded([x, nidx, dist_sq]).numpy())


@pytest.mark.parametrize("n_hits", [0, 1])
def test_tiny_batches(n_hits):
    layer = DistanceWeightedMessagePassing([2])
    x = np.ones((n_hits, 3), np.float32)
    nidx, dist_sq = select_knn(x, np.array([0, n_hits]), 2, backend="brute")
    out = layer([x, nidx, dist_sq]).numpy()
    assert out.shape == (n_hits, 7) and np.all(np.isfinite(out))
    if n_hits:  # a lone hit only sees itself with weight 1: mean = max = g, messages are 0
        np.testing.assert_allclose(out[:, :4], 0.0, atol=1e-7)
