"""GravNet-space and fill-space regularisers: the formulas against NumPy loops per event, gradients, state."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import FillSpaceRegularizer, GravNetSpaceRegularizer, select_knn


def gravnet_space_reference(coords, positions, row_splits, k, knn_reference):
    """L of GravNetSpaceRegularizer, one event and one pair at a time."""
    nidx, dist_sq = knn_reference(coords, row_splits, k)
    per_event = []
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        pairs = [(i, int(j), dist_sq[i, c]) for i in range(begin, end)
                 for c, j in enumerate(nidx[i]) if c > 0 and j >= 0]
        if not pairs:
            continue
        g = np.array([d for _, _, d in pairs])
        p = np.array([np.sum((positions[i] - positions[j]) ** 2) for i, j, _ in pairs])
        per_event.append(np.mean((g / (g.mean() + 1e-6) - p / (p.mean() + 1e-6)) ** 2))
    return float(np.mean(per_event)) if per_event else 0.0


def fill_space_reference(coords, row_splits):
    """L of FillSpaceRegularizer through the eigenvalues of each event's covariance."""
    per_event = []
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        if end - begin < 2:
            continue
        eigenvalues = np.linalg.eigvalsh(np.cov(coords[begin:end].T, bias=True).reshape(coords.shape[1], -1))
        d = len(eigenvalues)
        per_event.append(d**2 * np.var(eigenvalues) / (np.sum(eigenvalues) ** 2 + 1e-6))
    return float(np.mean(per_event)) if per_event else 0.0


def gravnet_space_loss(coords, positions, row_splits, k):
    coords = tf.convert_to_tensor(coords)  # keeps a Variable's gradient
    nidx, dist_sq = select_knn(coords, tf.constant(row_splits), k, backend="brute")
    return GravNetSpaceRegularizer.per_batch(dist_sq, nidx, tf.constant(positions), tf.constant(row_splits))


def test_gravnet_space_matches_numpy_loop(ragged_batch, reference):
    x, row_splits, k = ragged_batch
    coords, positions = x[:, :3], np.random.default_rng(3).normal(size=(len(x), 3)) * 10.0
    value = gravnet_space_loss(coords, positions, row_splits, k)
    expected = gravnet_space_reference(coords, positions, row_splits, k, reference.knn)
    assert expected > 0.05
    np.testing.assert_allclose(float(value), expected, rtol=1e-10)


def test_gravnet_space_is_zero_when_the_space_is_a_scaled_detector(ragged_batch):
    x, row_splits, k = ragged_batch
    positions = x[:, :3] * 40.0 + 100.0  # same geometry, other scale and origin
    assert float(gravnet_space_loss(x[:, :3], positions, row_splits, k)) < 1e-10


def test_gravnet_space_gradient_matches_finite_differences(ragged_batch, reference):
    x, row_splits, k = ragged_batch
    coords, positions = x[:, :3], np.random.default_rng(4).normal(size=(len(x), 3))
    variable = tf.Variable(coords)
    with tf.GradientTape() as tape:
        value = gravnet_space_loss(variable, positions, row_splits, k)
    gradient = tape.gradient(value, variable).numpy()
    expected = reference.numeric_gradient(
        lambda c: gravnet_space_reference(c, positions, row_splits, k, reference.knn), coords, step=1e-7
    )
    np.testing.assert_allclose(gradient, expected, rtol=1e-5, atol=1e-7)


def test_gravnet_space_of_events_without_pairs_is_zero():
    row_splits = np.array([0, 1, 1, 2], np.int32)  # two single-hit events and an empty one
    coords = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    assert float(gravnet_space_loss(coords, coords, row_splits, 3)) == 0.0


def test_fill_space_matches_eigenvalue_form(ragged_batch):
    x, row_splits, _ = ragged_batch
    coords = x[:, :3] * np.array([1.0, 0.3, 2.0])
    value = FillSpaceRegularizer.per_batch(tf.constant(coords), tf.constant(row_splits))
    np.testing.assert_allclose(float(value), fill_space_reference(coords, row_splits), rtol=1e-9)


def test_fill_space_limits():
    rng = np.random.default_rng(0)
    row_splits = np.array([0, 4000], np.int32)
    isotropic = rng.normal(size=(4000, 3))
    on_a_line = np.outer(rng.normal(size=4000), [1.0, 2.0, -1.0])
    assert float(FillSpaceRegularizer.per_batch(tf.constant(isotropic), row_splits)) < 0.01
    np.testing.assert_allclose(float(FillSpaceRegularizer.per_batch(tf.constant(on_a_line), row_splits)), 2.0,
                               rtol=1e-6)


def test_fill_space_gradient_matches_finite_differences(ragged_batch, reference):
    x, row_splits, _ = ragged_batch
    coords = x[:, :3]
    variable = tf.Variable(coords)
    with tf.GradientTape() as tape:
        value = FillSpaceRegularizer.per_batch(variable, tf.constant(row_splits))
    expected = reference.numeric_gradient(lambda c: fill_space_reference(c, row_splits), coords)
    np.testing.assert_allclose(tape.gradient(value, variable).numpy(), expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("training", [True, False])
def test_layers_pass_through_record_their_value_and_add_loss_in_training(ragged_batch, training):
    x, row_splits, k = ragged_batch
    coords = tf.constant(x[:, :3])
    nidx, dist_sq = select_knn(coords, tf.constant(row_splits), k, backend="brute")
    features = tf.constant(x)
    gravnet = GravNetSpaceRegularizer(0.5, dtype="float64")
    fill = FillSpaceRegularizer(2.0, dtype="float64")
    out = gravnet([features, dist_sq, nidx, coords * 3.0 + 1.0, tf.constant(row_splits)], training=training)
    same = fill([coords, tf.constant(row_splits)], training=training)
    np.testing.assert_array_equal(out.numpy(), x)
    np.testing.assert_array_equal(same.numpy(), x[:, :3])
    assert float(gravnet.value) < 1e-10  # positions are a scaled copy of the coordinates
    assert float(fill.value) > 0.0
    if training:
        np.testing.assert_allclose(float(fill.losses[0]), 2.0 * float(fill.value), rtol=1e-6)
        assert len(gravnet.losses) == 1
    else:
        assert fill.losses == [] and gravnet.losses == []


def test_config_round_trip_and_negative_strength():
    layer = FillSpaceRegularizer(0.25, name="fill")
    clone = FillSpaceRegularizer.from_config(layer.get_config())
    assert clone.strength == 0.25 and clone.name == "fill"
    assert keras.saving.get_registered_object("gravtrain>GravNetSpaceRegularizer") is GravNetSpaceRegularizer
    with pytest.raises(ValueError, match=">= 0"):
        GravNetSpaceRegularizer(-1.0)
