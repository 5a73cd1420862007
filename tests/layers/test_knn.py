"""select_knn: exactness against a NumPy loop, backend agreement, gradients, graph mode and XLA; searches repeated
from a record (RepeatedSearches)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gravtrain.layers import KNN_BACKENDS, RepeatedSearches, select_knn

BACKENDS = ("brute", "kdtree", "auto")


@pytest.mark.parametrize("backend", BACKENDS)
def test_select_knn_matches_numpy_loop(backend, ragged_batch, reference):
    x, row_splits, k = ragged_batch
    coords = x[:, :3]
    nidx, dist_sq = select_knn(tf.constant(coords), tf.constant(row_splits), k, backend=backend)
    expected_nidx, expected_dist_sq = reference.knn(coords, row_splits, k)

    assert nidx.shape == (x.shape[0], k + 1) and nidx.dtype == tf.int32
    np.testing.assert_array_equal(nidx.numpy(), expected_nidx)
    np.testing.assert_allclose(dist_sq.numpy(), expected_dist_sq, rtol=1e-12, atol=1e-12)


def test_select_knn_layout_self_first_and_padding(ragged_batch):
    x, row_splits, k = ragged_batch
    nidx, dist_sq = select_knn(x[:, :3].astype(np.float32), row_splits, k, backend="brute")
    nidx, dist_sq = nidx.numpy(), dist_sq.numpy()
    np.testing.assert_array_equal(nidx[:, 0], np.arange(x.shape[0]))
    assert np.all(dist_sq[:, 0] == 0) and np.all(dist_sq[nidx < 0] == 0)
    single_hit = row_splits[2]  # the event of one hit
    assert np.all(nidx[single_hit, 1:] == -1)
    small_event = slice(row_splits[3], row_splits[4])  # 3 hits < K
    assert np.all(nidx[small_event, 3:] == -1) and np.all(nidx[small_event, 1:3] >= 0)
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        real = nidx[begin:end][nidx[begin:end] >= 0]
        assert np.all((real >= begin) & (real < end)), "a neighbour crosses events"


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="valid names are: auto, brute, kdtree"):
        select_knn(np.zeros((3, 2), np.float32), np.array([0, 3]), 1, backend="faiss")
    assert set(KNN_BACKENDS) == {"auto", "brute", "kdtree"}


@pytest.mark.parametrize("backend", ("brute", "kdtree"))
def test_dist_sq_gradient_reaches_both_endpoints(backend, ragged_batch, reference):
    x, row_splits, k = ragged_batch
    coords = x[:, :3]
    weights = np.random.default_rng(7).normal(size=(coords.shape[0], k + 1))
    nidx, _ = reference.knn(coords, row_splits, k)

    def loss_numpy(value):
        safe = np.where(nidx < 0, np.arange(len(value))[:, None], nidx)
        dist_sq = np.where(nidx < 0, 0.0, np.sum((value[safe] - value[:, None, :]) ** 2, axis=-1))
        return float(np.sum(weights * dist_sq))

    variable = tf.Variable(coords)
    with tf.GradientTape() as tape:
        _, dist_sq = select_knn(variable, row_splits, k, backend=backend)
        loss = tf.reduce_sum(weights * dist_sq)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.all(np.isfinite(gradient))
    np.testing.assert_allclose(gradient, reference.numeric_gradient(loss_numpy, coords), rtol=1e-6, atol=1e-6)
    single_hit = row_splits[2]
    assert np.all(gradient[single_hit] == 0)


@pytest.mark.parametrize("n_hits", [10, 1000, 5000, pytest.param(50_000, marks=pytest.mark.slow)])
def test_backends_agree_on_one_event(n_hits, reference):
    coords = np.random.default_rng(n_hits).normal(size=(n_hits, 3)).astype(np.float32)
    row_splits = np.array([0, n_hits])
    brute, _ = select_knn(coords, row_splits, 16, backend="brute")
    kdtree, _ = select_knn(coords, row_splits, 16, backend="kdtree")
    reference.assert_same_neighbour_sets(coords, brute.numpy(), kdtree.numpy())


def test_backends_agree_on_a_batch_of_events(reference):
    rng = np.random.default_rng(3)
    sizes = [0, 1, 2, 17, 600, 0, 3000, 40, 1]  # mixes small and large column spans of the brute backend
    row_splits = reference.row_splits_from_sizes(sizes)
    coords = rng.uniform(size=(int(row_splits[-1]), 4)).astype(np.float32)
    brute, _ = select_knn(coords, row_splits, 8, backend="brute")
    kdtree, _ = select_knn(coords, row_splits, 8, backend="kdtree")
    auto, _ = select_knn(coords, row_splits, 8, backend="auto")
    reference.assert_same_neighbour_sets(coords, brute.numpy(), kdtree.numpy())
    reference.assert_same_neighbour_sets(coords, auto.numpy(), kdtree.numpy())


def test_coincident_hits_keep_self_in_column_zero():
    coords = np.zeros((6, 2), np.float32)
    for backend in ("brute", "kdtree"):
        nidx, dist_sq = select_knn(coords, np.array([0, 6]), 3, backend=backend)
        nidx = nidx.numpy()
        np.testing.assert_array_equal(nidx[:, 0], np.arange(6))
        assert all(i not in row[1:] for i, row in enumerate(nidx)), backend
        assert np.all(dist_sq.numpy() == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_graph_mode_traces_once_for_any_batch(backend, reference):
    traces = []

    @tf.function(
        input_signature=[tf.TensorSpec([None, 3], tf.float32), tf.TensorSpec([None], tf.int32)],
        reduce_retracing=True,
    )
    def knn(coords, row_splits):
        traces.append(1)
        return select_knn(coords, row_splits, 5, backend=backend)

    rng = np.random.default_rng(0)
    for sizes in ([], [0], [4], [30, 0, 2], [700], [1, 2, 3, 100]):
        row_splits = reference.row_splits_from_sizes(sizes)
        coords = rng.normal(size=(int(row_splits[-1]), 3)).astype(np.float32)
        nidx, dist_sq = knn(coords, row_splits)
        assert nidx.shape == (row_splits[-1], 6) and dist_sq.shape == (row_splits[-1], 6)
        expected, _ = select_knn(coords, row_splits, 5, backend="kdtree")
        reference.assert_same_neighbour_sets(coords, nidx.numpy(), expected.numpy())
    assert len(traces) == 1


def test_brute_compiles_with_xla(ragged_batch, reference):
    x, row_splits, k = ragged_batch
    coords = x[:, :3].astype(np.float32)
    compiled = tf.function(lambda c, r: select_knn(c, r, k, backend="brute"), jit_compile=True)
    auto_compiled = tf.function(lambda c, r: select_knn(c, r, k, backend="auto"), jit_compile=True)
    expected, expected_dist_sq = reference.knn(coords, row_splits, k)
    for function in (compiled, auto_compiled):  # auto falls back to brute under XLA
        nidx, dist_sq = function(coords, row_splits)
        np.testing.assert_array_equal(nidx.numpy(), expected)
        np.testing.assert_allclose(dist_sq.numpy(), expected_dist_sq, rtol=1e-5, atol=1e-6)


def test_compiled_distances_match_the_tensorflow_formula_with_padding_and_gradients():
    from gravtrain.layers.knn import neighbour_dist_sq

    rng = np.random.default_rng(3)
    coords = rng.normal(size=(300, 5)).astype(np.float32)
    nidx = np.concatenate([np.arange(300)[:, None], rng.integers(0, 300, size=(300, 12))], axis=1).astype(np.int32)
    nidx[::4, -3:] = -1
    probe = rng.normal(size=nidx.shape).astype(np.float32)

    def distances_and_gradient(coords):
        with tf.GradientTape() as tape:
            tape.watch(coords)
            dist_sq = neighbour_dist_sq(coords, tf.constant(nidx))
            loss = tf.reduce_sum(probe * dist_sq)
        op_types = {op.type for op in tf.compat.v1.get_default_graph().get_operations()}
        return dist_sq, tape.gradient(loss, coords), "GravtrainNeighbourDistances" in op_types

    compiled = tf.function(distances_and_gradient)(tf.constant(coords))
    formula = tf.function(distances_and_gradient, jit_compile=True)(tf.constant(coords))
    assert compiled[2] and not formula[2]
    for got, want in zip(compiled[:2], formula[:2]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    assert np.all(compiled[0].numpy()[nidx < 0] == 0) and np.all(compiled[0].numpy()[:, 0] == 0)
    nidx[7, 3] = 300
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"outside \[-1, 300\)"):
        neighbour_dist_sq(tf.constant(coords), tf.constant(nidx))


@pytest.mark.parametrize("backend", ["kdtree", "auto", "brute"])
def test_the_spatially_ordered_graph_is_the_graph_in_another_row_order(backend, monkeypatch):
    from gravtrain.layers import knn
    from gravtrain.layers.knn import select_knn_spatially_ordered

    rng = np.random.default_rng(4)
    sizes = [700, 0, 1, 3, 650]  # events above AUTO_KDTREE_MIN_HITS, so "auto" takes the k-d tree on CPU
    row_splits = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    coords = rng.normal(size=(row_splits[-1], 3))
    # Below SPATIAL_ORDER_MIN_HITS hits the order is the identity; above it the hits are reordered.
    order = select_knn_spatially_ordered(coords, row_splits, 6, backend)[0].numpy()
    np.testing.assert_array_equal(order, np.arange(len(coords)))
    monkeypatch.setattr(knn, "SPATIAL_ORDER_MIN_HITS", 700)
    order, inverse, nidx_o, dist_o = (t.numpy() for t in select_knn_spatially_ordered(coords, row_splits, 6, backend))
    np.testing.assert_array_equal(inverse[order], np.arange(len(coords)))
    nidx, dist = (t.numpy() for t in select_knn(coords, row_splits, 6, backend="brute"))
    assert sorted(order) == list(range(len(coords)))
    for begin, end in zip(row_splits[:-1], row_splits[1:]):  # every event's rows stay in place
        assert set(order[begin:end]) == set(range(begin, end))
    if backend == "brute":
        np.testing.assert_array_equal(order, np.arange(len(coords)))
    else:
        assert np.mean(order[:700] == np.arange(700)) < 0.1  # really reordered
    # Row p of the ordered graph is row order[p] of the plain one, with its indices mapped through order.
    mapped = np.where(nidx_o >= 0, order[np.maximum(nidx_o, 0)], -1)
    np.testing.assert_array_equal(mapped, nidx[order])
    np.testing.assert_allclose(dist_o, dist[order], rtol=1e-12, atol=1e-12)
    # Hits close in the space are close in the order: ordered neighbours are far nearer in rows than plain ones.
    plain_span = np.median(np.abs(nidx[:700, 1:] - np.arange(700)[:, None]))
    ordered_span = np.median(np.abs(nidx_o[:700, 1:] - np.arange(700)[:, None]))
    assert backend == "brute" or ordered_span < plain_span / 4, (ordered_span, plain_span)


def test_repeated_searches_give_back_what_was_recorded_in_order():
    searches = RepeatedSearches()
    coords = tf.constant(np.random.default_rng(0).normal(size=(40, 3)), tf.float32)
    row_splits = tf.constant([0, 25, 40], tf.int32)

    @tf.function
    def graphs(coords):
        with searches.recording():
            first = select_knn(coords, row_splits, 4, "brute")
        with searches.repeating():
            second = select_knn(coords * 2.0, row_splits, 4, "brute")  # not searched again: same graph
        return first, second

    (nidx, dist_sq), (nidx_again, dist_sq_again) = graphs(coords)
    np.testing.assert_array_equal(nidx_again.numpy(), nidx.numpy())
    np.testing.assert_allclose(dist_sq_again.numpy(), 4.0 * dist_sq.numpy(), rtol=1e-5)  # distances recomputed
    with pytest.raises(RuntimeError, match="repeated 0 of the 1"):
        with searches.repeating():
            pass
