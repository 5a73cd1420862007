"""Output heads and the hit/track embedding against their formulas, and through a .keras round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from gravtrain.layers.heads import HEAD_NAMES, CondensationHeads, HitTrackEmbedding


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def elu(z):
    return np.where(z > 0, z, np.exp(np.minimum(z, 0)) - 1.0)


def head_inputs(rng, v=7, f=5):
    return rng.normal(size=(v, f)).astype("float32")


@pytest.mark.parametrize("fixed", [True, False])
def test_heads_match_their_formulas(fixed):
    rng = np.random.default_rng(0)
    h = head_inputs(rng)
    heads = CondensationHeads(n_cluster_space_coordinates=4, fix_distance_scale=fixed)
    out = {k: keras.ops.convert_to_numpy(v) for k, v in heads(h).items()}
    assert tuple(out) == HEAD_NAMES

    def z(name):
        layer = heads.dense[name]
        kernel, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)
        return h @ kernel + bias

    np.testing.assert_allclose(out["beta"], sigmoid(z("beta")), rtol=1e-5)
    np.testing.assert_allclose(out["ccoords"], z("ccoords"), rtol=1e-5, atol=1e-6)
    expected_dist = np.ones((7, 1)) if fixed else 2 * sigmoid(z("dist"))
    np.testing.assert_allclose(out["dist"], expected_dist, rtol=1e-5)
    for name in ("energy_corr", "time", "time_unc"):
        np.testing.assert_allclose(out[name], 1 + elu(z(name)), rtol=1e-5, atol=1e-6)
    logits = z("pid")
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out["pid"], softmax / softmax.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert {k: v.shape for k, v in out.items()} == {
        k: tuple(s) for k, s in heads.compute_output_shape((7, 5)).items()
    }
    assert ("dist" in heads.dense) is not fixed


def test_energy_correction_starts_at_one():
    out = CondensationHeads(3)(head_inputs(np.random.default_rng(1)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["energy_corr"]), 1.0)


def test_embedding_selects_by_is_track():
    rng = np.random.default_rng(2)
    x = head_inputs(rng, v=6, f=4)
    is_track = np.array([[0], [1], [0], [1], [1], [0]], dtype="float32")
    layer = HitTrackEmbedding(3, activation="linear")
    out = keras.ops.convert_to_numpy(layer([x, is_track]))
    hit_k, hit_b = (keras.ops.convert_to_numpy(w) for w in layer.hit_embedding.weights)
    trk_k, trk_b = (keras.ops.convert_to_numpy(w) for w in layer.track_embedding.weights)
    expected = np.where(is_track > 0.5, x @ trk_k + trk_b, x @ hit_k + hit_b)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_heads_and_embedding_round_trip_through_keras_file(tmp_path):
    x_in = keras.Input((4,))
    flag_in = keras.Input((1,))
    hidden = HitTrackEmbedding(8, name="embedding")([x_in, flag_in])
    outputs = CondensationHeads(3, fix_distance_scale=False, name="heads")(hidden)
    model = keras.Model([x_in, flag_in], outputs)
    rng = np.random.default_rng(3)
    x = head_inputs(rng, v=9, f=4)
    flags = (rng.random((9, 1)) > 0.5).astype("float32")
    before = model.predict([x, flags], verbose=0)
    path = tmp_path / "heads.keras"
    model.save(path)
    after = keras.models.load_model(path).predict([x, flags], verbose=0)
    for name in HEAD_NAMES:
        np.testing.assert_array_equal(before[name], after[name])
