"""GravNet: the formula against a NumPy loop, gradients, serialisation and a single trace for any batch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import GravNet

N_DIMENSIONS, N_FILTERS, N_PROPAGATE = 3, 6, 4


def build_float64_gravnet(x, row_splits, k, knn):
    layer = GravNet(k, N_DIMENSIONS, N_FILTERS, N_PROPAGATE, knn=knn, dtype="float64")
    layer([tf.constant(x), tf.constant(row_splits)])
    rng = np.random.default_rng(5)
    # Moderate weights so that exp(-10 d^2) is neither 0 nor 1 and the ReLU is active for most outputs.
    layer.coordinate_projection.kernel.assign(
        np.eye(x.shape[1], N_DIMENSIONS) * 0.3 + rng.normal(scale=0.05, size=(x.shape[1], N_DIMENSIONS))
    )
    layer.feature_projection.bias.assign(rng.normal(scale=0.3, size=N_PROPAGATE))
    layer.output_dense.bias.assign(np.full(N_FILTERS, 0.5))
    return layer


def numpy_weights(layer):
    return (
        layer.coordinate_projection.kernel.numpy(),
        layer.feature_projection.kernel.numpy(),
        layer.feature_projection.bias.numpy(),
        layer.output_dense.kernel.numpy(),
        layer.output_dense.bias.numpy(),
    )


@pytest.fixture
def spatial_order_for_any_event(monkeypatch):
    """Hits reordered in space whatever the event size (the kdtree path), for the small test events."""
    from gravtrain.layers import knn

    monkeypatch.setattr(knn, "SPATIAL_ORDER_MIN_HITS", 1)


@pytest.mark.parametrize("knn", ["brute", "kdtree"])
def test_forward_matches_numpy_loop(knn, ragged_batch, reference, spatial_order_for_any_event):
    x, row_splits, k = ragged_batch
    layer = build_float64_gravnet(x, row_splits, k, knn)
    out, coords, nidx, dist_sq = layer([tf.constant(x), tf.constant(row_splits)])
    expected = reference.gravnet(x, row_splits, k, *numpy_weights(layer))

    np.testing.assert_allclose(out.numpy(), expected[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(coords.numpy(), expected[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(nidx.numpy(), expected[2])
    np.testing.assert_allclose(dist_sq.numpy(), expected[3], rtol=1e-10, atol=1e-12)
    assert np.count_nonzero(out.numpy()) > out.numpy().size // 3
    single_hit = row_splits[2]  # isolated hit: mean = max = 0, so out = relu(W_o [-f, -f, x] + b_o)
    w_s, w_f, b_f, w_o, b_o = numpy_weights(layer)
    f = reference.gravnet(x[single_hit : single_hit + 1], np.array([0, 1]), k, w_s, w_f, b_f, w_o, b_o)[0]
    np.testing.assert_allclose(out.numpy()[single_hit], f[0], rtol=1e-10)


@pytest.mark.parametrize("knn", ["brute", "kdtree"])
def test_gradients_match_finite_differences(knn, ragged_batch, reference, spatial_order_for_any_event):
    """d/dx (through features and the learned coordinates) and d/dW_s (the coordinate path alone), for both
    backends' code paths; these events fit one k-d tree leaf, so their order is the identity (a real permutation:
    `test_in_space_order_outputs_and_gradients_are_those_of_the_input_order`)."""
    x, row_splits, k = ragged_batch
    layer = build_float64_gravnet(x, row_splits, k, knn)
    w_s, w_f, b_f, w_o, b_o = numpy_weights(layer)
    probe = np.random.default_rng(11).normal(size=(x.shape[0], N_FILTERS))

    x_variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = layer([x_variable, tf.constant(row_splits)])[0]
        loss = tf.reduce_sum(probe * out)
    grad_x, grad_w_s = tape.gradient(loss, [x_variable, layer.coordinate_projection.kernel])

    def loss_of_x(value):
        return float(np.sum(probe * reference.gravnet(value, row_splits, k, w_s, w_f, b_f, w_o, b_o)[0]))

    def loss_of_w_s(value):
        return float(np.sum(probe * reference.gravnet(x, row_splits, k, value, w_f, b_f, w_o, b_o)[0]))

    np.testing.assert_allclose(grad_x.numpy(), reference.numeric_gradient(loss_of_x, x), rtol=1e-5, atol=1e-7)
    numeric_w_s = reference.numeric_gradient(loss_of_w_s, w_s)
    assert np.abs(numeric_w_s).max() > 1e-3, "the coordinate path should matter in this test"
    np.testing.assert_allclose(grad_w_s.numpy(), numeric_w_s, rtol=1e-5, atol=1e-7)


def test_coordinate_projection_starts_as_identity():
    layer = GravNet(4, 3, 8, 4)
    layer.build([(None, 5), (None,)])
    kernel = layer.coordinate_projection.kernel.numpy()
    assert kernel.shape == (5, 3) and layer.coordinate_projection.bias is None
    np.testing.assert_allclose(kernel, np.eye(5, 3), atol=0.06)
    assert not np.array_equal(kernel, np.eye(5, 3))


def test_config_round_trip_and_output_shapes():
    layer = GravNet(7, 2, 9, 5, feature_activation="tanh", knn="kdtree", name="gravnet_0")
    config = layer.get_config()
    for argument, value in {"n_neighbours": 7, "n_dimensions": 2, "n_filters": 9, "n_propagate": 5,
                            "feature_activation": "tanh", "knn": "kdtree"}.items():
        assert config[argument] == value
    assert GravNet.from_config(config).get_config() == config
    shapes = layer.compute_output_shape([(None, 4), (None,)])
    assert shapes == ((None, 9), (None, 2), (None, 8), (None, 8))
    x = np.random.default_rng(0).normal(size=(11, 4)).astype(np.float32)
    outputs = layer([x, np.array([0, 5, 11])])
    assert tuple(tuple(o.shape) for o in outputs) == ((11, 9), (11, 2), (11, 8), (11, 8))

    # return_order: also the graph's order and its inverse (the identity here: events too small to reorder).
    ordered = GravNet.from_config({**config, "return_order": True})
    assert ordered.compute_output_shape([(None, 4), (None,)]) == shapes + ((None,), (None,))
    outputs = ordered([x, np.array([0, 5, 11])])
    assert len(outputs) == 6 and [o.dtype for o in outputs[4:]] == [tf.int32, tf.int32]
    np.testing.assert_array_equal(tf.gather(outputs[5], outputs[4]).numpy(), np.arange(11))


def test_unknown_knn_backend_is_rejected():
    with pytest.raises(ValueError, match="valid names are: auto, brute, kdtree"):
        GravNet(4, 3, 8, 4, knn="annoy")


def gravnet_model(knn):
    x = keras.Input((5,), name="features")
    row_splits = keras.Input((), dtype="int32", name="row_splits")
    out, coords, nidx, dist_sq = GravNet(4, 3, 8, 6, knn=knn, name="gravnet_0")([x, row_splits])
    return keras.Model([x, row_splits], [out, coords, nidx, dist_sq])


@pytest.mark.parametrize("knn", ["auto", "brute"])
def test_saves_and_loads_with_identical_outputs(knn, tmp_path, reference):
    model = gravnet_model(knn)
    assert model.outputs[2].dtype == "int32"
    path = tmp_path / "gravnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("gravnet_0").get_config() == model.get_layer("gravnet_0").get_config()
    row_splits = reference.row_splits_from_sizes([9, 0, 1, 3, 20])
    x = np.random.default_rng(2).normal(size=(int(row_splits[-1]), 5)).astype(np.float32)
    for before, after in zip(model([x, row_splits]), loaded([x, row_splits])):
        np.testing.assert_array_equal(before.numpy(), after.numpy())


def test_twenty_batch_sizes_trace_once(reference):
    model = gravnet_model("auto")
    traces = []

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32), tf.TensorSpec([None], tf.int32)])
    def forward(x, row_splits):
        traces.append(1)
        return model([x, row_splits])

    rng = np.random.default_rng(4)
    for batch in range(20):
        sizes = rng.integers(0, 40, size=rng.integers(1, 5))
        if batch == 3:
            sizes = [0]  # an empty batch
        if batch == 7:
            sizes = [600, 3]  # one event large enough for auto to take the kdtree on CPU
        row_splits = reference.row_splits_from_sizes(sizes)
        x = rng.normal(size=(int(row_splits[-1]), 5)).astype(np.float32)
        out, coords, nidx, dist_sq = forward(x, row_splits)
        assert out.shape == (row_splits[-1], 8) and nidx.shape == (row_splits[-1], 5)
    assert len(traces) == 1


def test_compiles_with_xla_and_matches_graph_mode(ragged_batch):
    """Under jit_compile, knn="auto" falls back to the brute backend; the outputs are those of graph mode."""
    x, row_splits, k = ragged_batch
    layer = GravNet(k, N_DIMENSIONS, N_FILTERS, N_PROPAGATE)
    inputs = [tf.constant(x, tf.float32), tf.constant(row_splits)]
    expected = tf.function(layer)(inputs)
    compiled = tf.function(layer, jit_compile=True)(inputs)
    np.testing.assert_array_equal(compiled[2].numpy(), expected[2].numpy())
    for got, want in zip(compiled[:2] + compiled[3:], expected[:2] + expected[3:]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_in_space_order_outputs_and_gradients_are_those_of_the_input_order(spatial_order_for_any_event):
    """Events of 300 and 200 hits (many k-d tree leaves, so a real permutation): the kdtree layer, which runs
    its graph on the reordered hits, against the brute one (input order) with the same weights."""
    from gravtrain.layers.knn import select_knn_spatially_ordered

    rng = np.random.default_rng(8)
    x = rng.normal(size=(500, 5))
    row_splits = np.array([0, 300, 500], dtype=np.int32)
    layers = {knn: build_float64_gravnet(x, row_splits, 6, knn) for knn in ("kdtree", "brute")}
    layers["brute"].set_weights(layers["kdtree"].get_weights())
    order = select_knn_spatially_ordered(layers["kdtree"].coordinate_projection(x), row_splits, 6, "kdtree")[0]
    assert np.mean(order.numpy() == np.arange(500)) < 0.2
    probe = rng.normal(size=(500, N_FILTERS))
    results = {}
    for knn, layer in layers.items():
        x_variable = tf.Variable(x)
        with tf.GradientTape() as tape:
            out, coords, nidx, dist_sq = layer([x_variable, tf.constant(row_splits)])
            loss = tf.reduce_sum(probe * out) + tf.reduce_sum(tf.sin(dist_sq))
        gradients = tape.gradient(loss, [x_variable] + layer.trainable_variables)
        results[knn] = [out, nidx, dist_sq] + gradients
    for ordered, plain in zip(results["kdtree"], results["brute"]):
        np.testing.assert_allclose(ordered.numpy(), plain.numpy(), rtol=1e-10, atol=1e-12)
