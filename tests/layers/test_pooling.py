"""LearnedPooling and GatherRows: selection, assignment and pooling against a NumPy loop, the reduction per
event, no mixing of events, gradients to the score weights, serialisation and a single trace for any batch."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import GatherRows, LearnedPooling

# Raw columns: x, y, z (positions once standardised), energy (additive), is_track.
POSITIONS, ENERGY, TRACK = [0, 1, 2], 3, 4
# An ordinary event, an empty one, one with fewer hits than the factor, one of tracks only, another ordinary one.
EVENT_SIZES = (12, 0, 2, 2, 9)


def make_batch(sizes, seed, track_fraction=0.2):
    """(raw features (V, 5), standardised (V, 5), row_splits), float32; the 4th event of EVENT_SIZES is tracks."""
    rng = np.random.default_rng(seed)
    row_splits = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    n_hits = int(row_splits[-1])
    raw = rng.normal(size=(n_hits, 5))
    raw[:, ENERGY] = rng.exponential(size=n_hits)
    raw[:, TRACK] = rng.random(n_hits) < track_fraction
    if tuple(sizes) == EVENT_SIZES:
        raw[row_splits[3] : row_splits[4], TRACK] = 1.0
    standardised = (raw - raw.mean(axis=0)) / (raw.std(axis=0) + 1e-3) if n_hits else raw
    return raw.astype(np.float32), standardised.astype(np.float32), row_splits


def pooling_reference(raw, standardised, row_splits, score, factor, knn_reference):
    """(pooled_features, pooled_row_splits, assignment): one event and one hit at a time, in float64."""
    s, positions = score[:, 0].astype(np.float64), standardised[:, POSITIONS].astype(np.float64)
    is_track = raw[:, TRACK] > 0.5
    is_representative, assigned = is_track.copy(), np.arange(len(raw))
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        calo = [i for i in range(begin, end) if not is_track[i]]
        if not calo:
            continue
        nidx, _ = knn_reference(positions[calo], np.array([0, len(calo)]), math.ceil(factor))
        is_max = {calo[a]: all(s[calo[a]] >= s[calo[b]] for b in row[1:] if b >= 0) for a, row in enumerate(nidx)}
        ranked = sorted(calo, key=lambda i: (not is_max[i], -s[i], i))
        representatives = sorted(ranked[: math.ceil(len(calo) / factor)])
        is_representative[representatives] = True
        for i in calo:
            dist_sq = [np.sum((positions[i] - positions[r]) ** 2) for r in representatives]
            assigned[i] = representatives[int(np.argmin(dist_sq))]  # first of equals: the lowest row
    pooled_rows = list(np.flatnonzero(is_representative))
    assignment = np.array([pooled_rows.index(assigned[i]) for i in range(len(raw))], dtype=np.int64)
    pooled = np.zeros((len(pooled_rows), raw.shape[1]))
    for r in range(len(pooled_rows)):
        members = np.flatnonzero(assignment == r)
        weights = s[members][:, None]
        pooled[r] = np.sum(weights * raw[members], axis=0) / np.sum(weights)
        pooled[r, ENERGY] = np.sum(raw[members, ENERGY])
    events = np.searchsorted(row_splits, pooled_rows, side="right") - 1
    pooled_row_splits = np.concatenate([[0], np.cumsum(np.bincount(events, minlength=len(row_splits) - 1))])
    return pooled, pooled_row_splits, assignment


def pooling_layer(factor, knn="auto", **kwargs):
    return LearnedPooling(factor, POSITIONS, TRACK, [ENERGY], knn=knn, **kwargs)


def run_layer(layer, raw, standardised, row_splits):
    return [t.numpy() for t in layer([tf.constant(raw), tf.constant(standardised), tf.constant(row_splits)])]


@pytest.mark.parametrize("knn", ["brute", "kdtree"])
@pytest.mark.parametrize("factor", [3.5, 2.0])
def test_matches_numpy_loop(knn, factor, reference):
    raw, standardised, row_splits = make_batch(EVENT_SIZES, seed=7)
    layer = pooling_layer(factor, knn)
    layer.build([raw.shape, standardised.shape, row_splits.shape])
    kernel = np.random.default_rng(3).normal(size=(5, 1))
    layer.score_dense.kernel.assign(kernel)
    layer.score_dense.bias.assign([0.2])
    pooled, pooled_row_splits, assignment, score = run_layer(layer, raw, standardised, row_splits)

    expected_score = 1.0 / (1.0 + np.exp(-(standardised.astype(np.float64) @ kernel + 0.2)))
    np.testing.assert_allclose(score, expected_score, rtol=1e-5)
    # Discrete decisions from the layer's own float32 scores, so rounding cannot flip a comparison.
    want_pooled, want_splits, want_assignment = pooling_reference(raw, standardised, row_splits, score, factor,
                                                                  reference.knn)
    assert assignment.dtype == np.int32 and pooled_row_splits.dtype == np.int32
    np.testing.assert_array_equal(assignment, want_assignment)
    np.testing.assert_array_equal(pooled_row_splits, want_splits)
    np.testing.assert_allclose(pooled, want_pooled, rtol=1e-5, atol=1e-6)
    assert len(pooled) < len(raw)


@pytest.mark.parametrize("factor", [2.0, 4.0, 3.5])
def test_each_event_reduces_by_the_factor_and_keeps_tracks_and_events_apart(factor):
    sizes = [40, 0, 3, 17, 1, 25]
    raw, standardised, row_splits = make_batch(sizes, seed=11)
    pooled, pooled_row_splits, assignment, _ = run_layer(pooling_layer(factor), raw, standardised, row_splits)
    is_track = raw[:, TRACK] > 0.5
    event = np.repeat(np.arange(len(sizes)), sizes)
    pooled_event = np.repeat(np.arange(len(sizes)), np.diff(pooled_row_splits))
    assert pooled_row_splits[-1] == len(pooled) and len(pooled_row_splits) == len(row_splits)
    np.testing.assert_array_equal(pooled_event[assignment], event)  # no hit leaves its event
    for e in range(len(sizes)):
        in_event = event == e
        n_calo, n_tracks = int(np.sum(in_event & ~is_track)), int(np.sum(in_event & is_track))
        calo_rows = set(assignment[in_event & ~is_track])
        assert len(calo_rows) == math.ceil(n_calo / factor)
        assert pooled_row_splits[e + 1] - pooled_row_splits[e] == len(calo_rows) + n_tracks
    track_rows = assignment[is_track]
    assert len(set(track_rows)) == int(is_track.sum()) and not set(track_rows) & set(assignment[~is_track])
    np.testing.assert_array_equal(pooled[track_rows], raw[is_track])


def test_exact_tie_goes_to_the_lowest_row():
    """Calorimeter hits at 0, 1, 2 with scores s_0 > s_2 > s_1: representatives 0 and 2, hit 1 at distance 1
    from both."""
    standardised = np.array([[0.0, 2.0], [1.0, 0.0], [2.0, 1.0]], np.float32)
    raw = np.array([[1.0, 0.0], [2.0, 0.0], [4.0, 0.0]], np.float32)
    layer = LearnedPooling(1.5, position_columns=[0], track_column=1, sum_columns=[0], knn="kdtree")
    layer.build([raw.shape, raw.shape, (2,)])
    layer.score_dense.kernel.assign([[0.0], [1.0]])
    pooled, pooled_row_splits, assignment, _ = run_layer(layer, raw, standardised, np.array([0, 3], np.int32))
    np.testing.assert_array_equal(assignment, [0, 0, 1])
    np.testing.assert_array_equal(pooled_row_splits, [0, 2])
    np.testing.assert_allclose(pooled[:, 0], [3.0, 4.0])


def test_gradient_reaches_the_score_weights():
    raw, standardised, row_splits = make_batch(EVENT_SIZES, seed=5)
    layer = pooling_layer(3.0)
    gather = GatherRows()
    inputs = [tf.constant(raw), tf.Variable(standardised), tf.constant(row_splits)]
    with tf.GradientTape() as tape:
        pooled, _, assignment, _ = layer(inputs)
        per_hit = gather([tf.tanh(pooled), assignment])
        loss = tf.reduce_sum(per_hit * np.linspace(-1.0, 1.0, raw.shape[1], dtype=np.float32))
    gradients = tape.gradient(loss, [layer.score_dense.kernel, layer.score_dense.bias])
    for gradient in gradients:
        assert np.all(np.isfinite(gradient.numpy())) and np.abs(gradient.numpy()).max() > 0
    assert per_hit.shape == raw.shape


def test_config_round_trip_and_bad_arguments():
    layer = LearnedPooling(2.5, [0, 2], 7, [3, 4], knn="kdtree", name="pooling_0")
    config = layer.get_config()
    for argument, value in {"factor": 2.5, "position_columns": [0, 2], "track_column": 7, "sum_columns": [3, 4],
                            "knn": "kdtree"}.items():
        assert config[argument] == value
    assert LearnedPooling.from_config(config).get_config() == config
    assert layer.compute_output_shape([(None, 8), (None, 8), (None,)]) == ((None, 8), (None,), (None,), (None, 1))
    with pytest.raises(ValueError, match="factor must be >= 1"):
        LearnedPooling(0.5, [0], 1, [])
    with pytest.raises(ValueError, match="valid names are: auto, brute, kdtree"):
        LearnedPooling(2.0, [0], 1, [], knn="annoy")


def pooling_model():
    raw = keras.Input((5,), name="features")
    standardised = keras.Input((5,), name="standardised")
    row_splits = keras.Input((), dtype="int32", name="row_splits")
    pooled, pooled_row_splits, assignment, score = pooling_layer(3.0, name="pooling_0")(
        [raw, standardised, row_splits]
    )
    per_hit = GatherRows(name="gather_0")([pooled, assignment])
    return keras.Model([raw, standardised, row_splits], [pooled, pooled_row_splits, assignment, score, per_hit])


def test_saves_and_loads_with_identical_outputs(tmp_path):
    model = pooling_model()
    assert [output.dtype for output in model.outputs[1:3]] == ["int32", "int32"]
    path = tmp_path / "pooling.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("pooling_0").get_config() == model.get_layer("pooling_0").get_config()
    batch = make_batch(EVENT_SIZES, seed=9)
    for before, after in zip(model(list(batch)), loaded(list(batch))):
        np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_batches_of_different_sizes_trace_once():
    model = pooling_model()
    traces = []
    spec = tf.TensorSpec([None, 5], tf.float32)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([None], tf.int32)])
    def forward(raw, standardised, row_splits):
        traces.append(1)
        return model([raw, standardised, row_splits])

    for sizes in ([30, 4, 0], [0], [7, 60, 2, 11, 0, 1]):
        raw, standardised, row_splits = make_batch(sizes, seed=len(sizes))
        pooled, pooled_row_splits, assignment, score, per_hit = forward(raw, standardised, row_splits)
        assert assignment.shape == (len(raw),) and per_hit.shape == raw.shape
        assert pooled_row_splits.shape == row_splits.shape and pooled_row_splits[-1] == pooled.shape[0]
    assert len(traces) == 1
