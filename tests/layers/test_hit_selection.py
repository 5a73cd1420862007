"""KeepHits against NumPy, a frozen pre-model that stays frozen, and the fixed neighbour graph."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from gravtrain.layers import FrozenModelOutput, KeepHits, NeighbourGraph, select_knn


def test_kept_rows_and_row_splits_match_numpy():
    rng = np.random.default_rng(3)
    row_splits = np.array([0, 10, 10, 17, 30], np.int32)
    features = rng.normal(size=(30, 4)).astype(np.float32)
    features[:, 2] = (rng.uniform(size=30) < 0.2).astype(np.float32)  # track column
    score = rng.uniform(size=(30, 1)).astype(np.float32)
    kept, kept_splits, index = KeepHits(0.6, track_column=2)([features, row_splits, score])
    keep = (score[:, 0] >= 0.6) | (features[:, 2] > 0.5)
    assert np.array_equal(index.numpy(), np.flatnonzero(keep))
    assert np.array_equal(kept.numpy(), features[keep])
    assert np.array_equal(kept_splits.numpy(), np.r_[0, np.cumsum(keep)][row_splits])


def _scorer():
    x = keras.Input((4,), name="features")
    splits = keras.Input((), dtype="int32", name="row_splits")
    hidden = keras.layers.BatchNormalization(name="bn")(x)
    score = keras.layers.Dense(1, activation="sigmoid", name="signal_score")(hidden)
    return keras.Model({"features": x, "row_splits": splits}, {"signal_score": score})


def test_a_pre_model_stays_frozen_and_in_inference_mode(tmp_path):
    layer = FrozenModelOutput(_scorer(), "signal_score", name="pre_model")
    layer.trainable = True  # what a stage's freeze patterns do to every layer they do not match
    x = {"features": np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32),
         "row_splits": np.array([0, 8], np.int32)}
    before = [w.numpy().copy() for w in layer.weights]
    first = layer(x, training=True).numpy()
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == len(before)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, layer.weights))  # no moving statistics moved
    features = keras.Input((4,), name="features")
    splits = keras.Input((), dtype="int32", name="row_splits")
    model = keras.Model({"features": features, "row_splits": splits},
                        {"score": layer({"features": features, "row_splits": splits})})
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert np.allclose(loaded(x)["score"].numpy(), first)
    assert loaded.trainable_weights == []


def test_the_neighbour_graph_is_select_knn_on_the_given_space():
    coords = tf.constant(np.random.default_rng(5).normal(size=(20, 3)).astype(np.float32))
    splits = tf.constant([0, 12, 20], tf.int32)
    nidx, dist_sq = NeighbourGraph(4, knn="brute")([coords, splits])
    ref_idx, ref_dist = select_knn(coords, splits, 4, backend="brute")
    assert np.array_equal(nidx.numpy(), ref_idx.numpy())
    assert np.allclose(dist_sq.numpy(), ref_dist.numpy())
