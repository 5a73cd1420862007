"""weighted_neighbour_mean_max: the chunked CPU implementation (written-out gradient) against the vectorised one
(TensorFlow's own gradient) and against NumPy, over several chunks, padding, lone hits and an empty batch."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import aggregation
from gravtrain.layers.aggregation import weighted_neighbour_mean_max


def neighbour_inputs(n_hits, k, width, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n_hits, width)).astype(dtype)
    nidx = rng.integers(0, max(n_hits, 1), size=(n_hits, k)).astype(np.int32)
    nidx[::3, -2:] = -1  # padding at the end of some rows
    if n_hits > 5:
        nidx[5] = -1  # a hit without any neighbour
    dist_sq = rng.uniform(0.0, 0.2, size=(n_hits, k)).astype(dtype)
    return features, nidx, np.where(nidx >= 0, dist_sq, 0.0).astype(dtype)


def numpy_mean_max(features, nidx, dist_sq):
    mean, maximum = np.zeros_like(features), np.zeros_like(features)
    for i in range(features.shape[0]):
        columns = [c for c in range(nidx.shape[1]) if nidx[i, c] >= 0]
        if columns:
            weighted = np.stack([np.exp(-10.0 * dist_sq[i, c]) * features[nidx[i, c]] for c in columns])
            mean[i], maximum[i] = weighted.mean(axis=0), weighted.max(axis=0)
    return mean, maximum


def values_and_gradients(implementation, features, nidx, dist_sq, probe_mean, probe_max, use_max=True):
    features, dist_sq = tf.constant(features), tf.constant(dist_sq)

    @tf.function
    def run(features, dist_sq):
        with tf.GradientTape() as tape:
            tape.watch([features, dist_sq])
            mean, maximum = weighted_neighbour_mean_max(features, tf.constant(nidx), dist_sq, implementation)
            loss = tf.reduce_sum(probe_mean * mean)
            if use_max:
                loss += tf.reduce_sum(probe_max * maximum)
        return mean, maximum, *(tf.convert_to_tensor(g) for g in tape.gradient(loss, [features, dist_sq]))

    return [tf.convert_to_tensor(value).numpy() for value in run(features, dist_sq)]


@pytest.fixture
def small_chunks(monkeypatch):
    # 16 rows of 5 x 3 float64: several chunks in the tests' batches
    monkeypatch.setattr(aggregation, "MIN_CHUNK_ROWS", 16)
    monkeypatch.setattr(aggregation, "AGGREGATION_CHUNK_BYTES", 16 * 5 * 3 * 8)


@pytest.mark.parametrize("n_hits", [0, 1, 15, 16, 53])
@pytest.mark.parametrize("use_max", [True, False])
def test_chunked_matches_vectorised_and_numpy(small_chunks, n_hits, use_max):
    features, nidx, dist_sq = neighbour_inputs(n_hits, 5, 3)
    rng = np.random.default_rng(1)
    probe_mean, probe_max = rng.normal(size=features.shape), rng.normal(size=features.shape)
    chunked = values_and_gradients("chunked", features, nidx, dist_sq, probe_mean, probe_max, use_max)
    vectorised = values_and_gradients("vectorised", features, nidx, dist_sq, probe_mean, probe_max, use_max)
    for got, want in zip(chunked, vectorised):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    mean, maximum = numpy_mean_max(features, nidx, dist_sq)
    np.testing.assert_allclose(chunked[0], mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked[1], maximum, rtol=1e-12, atol=1e-14)
    if n_hits > 5:
        assert np.all(chunked[0][5] == 0) and np.all(chunked[1][5] == 0)


def test_chunked_gradient_matches_finite_differences(small_chunks):
    from tests.numerics import numeric_gradient

    features, nidx, dist_sq = neighbour_inputs(20, 4, 2, seed=3)
    rng = np.random.default_rng(2)
    probe_mean, probe_max = rng.normal(size=features.shape), rng.normal(size=features.shape)
    _, _, grad_features, grad_dist = values_and_gradients("chunked", features, nidx, dist_sq, probe_mean,
                                                          probe_max)

    def loss(features_value, dist_value):
        mean, maximum = numpy_mean_max(features_value, nidx, dist_value)
        return float(np.sum(probe_mean * mean) + np.sum(probe_max * maximum))

    np.testing.assert_allclose(grad_features, numeric_gradient(lambda f: loss(f, dist_sq), features),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_dist, numeric_gradient(lambda d: loss(features, d), dist_sq) * (nidx >= 0),
                               rtol=1e-6, atol=1e-8)


def test_auto_takes_the_vectorised_formula_under_xla():
    features, nidx, dist_sq = neighbour_inputs(30, 4, 3, dtype=np.float32)
    compiled = tf.function(lambda f, d: weighted_neighbour_mean_max(f, tf.constant(nidx), d), jit_compile=True)
    graph = tf.function(lambda f, d: weighted_neighbour_mean_max(f, tf.constant(nidx), d))
    for got, want in zip(compiled(features, dist_sq), graph(features, dist_sq)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6, atol=1e-7)


def test_an_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="chunked"):
        weighted_neighbour_mean_max(np.zeros((1, 1)), np.zeros((1, 1), np.int32), np.zeros((1, 1)), "fast")
