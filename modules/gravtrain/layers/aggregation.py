"""Distance-weighted aggregation of neighbour features, shared by GravNet and message passing.

Three implementations of one formula (`weighted_neighbour_mean_max`):

- ``"vectorised"``: the formula as TensorFlow ops on (V, K, P) tensors, differentiated by TensorFlow. Used
  under XLA and when TensorFlow sees a GPU (memory is plentiful there, and every op is one kernel launch).
- ``"compiled"``: on CPU, a C++ TensorFlow op (`gravtrain.layers.compiled_kernels`, built on first use) that
  makes one pass over each hit's neighbours for the forward pass and computes the written-out gradient (below)
  in two passes, with no (V, K, P) tensor. It takes the distances, computes the weights where it uses them and
  keeps no (V, K) tensor for the backward pass. The default on CPU wherever a C++ compiler is found.
- ``"chunked"``: on CPU without a compiler. The forward pass gathers a chunk of rows at a time (a (C, K, P)
  block of about ``AGGREGATION_CHUNK_BYTES`` instead of several (V, K, P) tensors) and keeps, per hit and
  feature, the column of the maximum; the gradient is the written-out one, the feature part as a sparse matrix
  product, so the backward pass needs one chunk at a time for the weights.

With g = dL/dmean and h = dL/dmax, n_i = |N(i)|, and a_ip the neighbour column holding max_ip::

    dL/dw_ik = sum_p f_{j(i,k),p} g_ip / n_i  +  sum_p [a_ip = k] f_{j(i,k),p} h_ip
    dL/df_jp = sum_{(i,k): j(i,k)=j} w_ik g_ip / n_i  +  sum_{i: j(i,a_ip)=j} w_{i a_ip} h_ip
    dL/dd_ik = -10 w_ik dL/dw_ik                                  (d_ik = squared distance; 0 for padding)

The first sum of dL/df is a sparse matrix product A^T (g / n) with A_ij = w_ij. Where two neighbours tie for a
maximum, the whole gradient goes to the first (TensorFlow's reduce_max would split it): both are gradients
of the same function almost everywhere.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops
from . import compiled_kernels

#: w_ij = exp(-DISTANCE_WEIGHT_SCALE * d_ij^2), the GravNet potential.
DISTANCE_WEIGHT_SCALE = 10.0
#: Bytes of the (C, K, P) block the chunked implementation gathers at a time: C = this / (K x P x itemsize)
#: rows (at least `MIN_CHUNK_ROWS`). A few such blocks exist at once, whatever V, K and P.
AGGREGATION_CHUNK_BYTES = 16 * 2**20
MIN_CHUNK_ROWS = 64
#: The implementations by name; ``"auto"`` picks ``"vectorised"`` under XLA or with a GPU, else ``"compiled"``
#: where the kernel builds (float32 and float64), else ``"chunked"``.
AGGREGATIONS = ("auto", "vectorised", "compiled", "chunked")
#: The implementation the layers use (benchmarks compare the others by setting it before building a graph).
AGGREGATION = "auto"


def weighted_neighbour_mean_max(features, nidx, dist_sq, implementation: str | None = None, first_column: int = 0):
    """Mean and max over the real neighbours j of each hit i of w_ij * features_j, w_ij = exp(-10 d^2_ij).

    Columns where ``nidx == -1`` (padding) are excluded, and so are the columns before ``first_column`` (GravNet
    passes 1 to leave out column 0, the hit itself; the compiled kernel then reads the table in place). A hit
    without any real column gets 0 for both; the gradient of the left-out columns' distances is 0.

        mean_i = (1/|N(i)|) sum_{j in N(i)} w_ij f_j        max_i = max_{j in N(i)} w_ij f_j   (elementwise)

    Gradients reach ``features`` and ``dist_sq`` (not the indices). ``implementation`` is one of
    ``AGGREGATIONS`` (default: `AGGREGATION`); all give the same numbers within float rounding (see the module
    docstring).

    Shapes: features (V, P), nidx (V, K), dist_sq (V, K) -> mean (V, P), max (V, P).
    """
    implementation = AGGREGATION if implementation is None else implementation
    if implementation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {implementation!r}; valid names are: {', '.join(AGGREGATIONS)}")
    if implementation == "auto":
        implementation = _automatic_implementation(features)
    with tf.name_scope("weighted_neighbour_mean_max"):  # profiles attribute the aggregation's ops by this scope
        if implementation == "compiled":
            return _compiled_mean_max(features, nidx, dist_sq, first_column)
        if first_column:
            nidx, dist_sq = nidx[:, first_column:], dist_sq[:, first_column:]
        if implementation == "vectorised":
            return _vectorised_mean_max(features, nidx, dist_sq)
        return _chunked_mean_max(features, nidx, dist_sq)


def _automatic_implementation(features) -> str:
    if compiled_kernels.in_xla_context() or tf.config.list_logical_devices("GPU"):
        return "vectorised"
    return "compiled" if compiled_kernels.kernels_for(getattr(features, "dtype", tf.float32)) else "chunked"


def _weights(nidx, dist_sq):
    """w_ik = exp(-10 d_ik) on real columns, 0 on padding; and the mask of real columns."""
    is_real = nidx >= 0
    return ops.where(is_real, ops.exp(-DISTANCE_WEIGHT_SCALE * dist_sq), ops.zeros_like(dist_sq)), is_real


def _vectorised_mean_max(features, nidx, dist_sq):
    weights, is_real = _weights(nidx, dist_sq)
    neighbour_features = tf.gather(features, tf.maximum(nidx, 0))  # (V, K, P); padding reads hit 0, weight 0
    weighted = weights[..., None] * neighbour_features
    n_real = ops.sum(ops.cast(is_real, features.dtype), axis=1)[:, None]  # (V, 1)
    mean = ops.sum(weighted, axis=1) / ops.maximum(n_real, 1.0)
    lowest = ops.full_like(weighted, features.dtype.min)
    maximum = tf.reduce_max(ops.where(is_real[..., None], weighted, lowest), axis=1)  # ops.max rejects V = 0
    maximum = ops.where(n_real > 0, maximum, ops.zeros_like(maximum))
    return mean, maximum


def _compiled_mean_max(features, nidx, dist_sq, first_column: int):
    library = compiled_kernels.neighbour_ops_library()
    if library is None:
        raise RuntimeError("the compiled aggregation kernel is not available on this machine (the warning above "
                           "says why); use the 'chunked' or 'auto' aggregation")
    features = tf.convert_to_tensor(features)
    dist_sq = tf.convert_to_tensor(dist_sq, features.dtype)
    nidx = tf.stop_gradient(tf.cast(nidx, tf.int32))
    mean, maximum, _ = library.gravtrain_neighbour_mean_max(
        features, nidx, dist_sq, scale=DISTANCE_WEIGHT_SCALE, first_column=first_column)
    return mean, maximum


def _chunked_mean_max(features, nidx, dist_sq):
    features = tf.convert_to_tensor(features)
    dist_sq = tf.convert_to_tensor(dist_sq, features.dtype)
    nidx = tf.stop_gradient(tf.convert_to_tensor(nidx))

    # TensorFlow names a custom gradient's ops at the top level; put them where the tape puts its own gradients.
    gradient_scope = f"gradient_tape/{tf.get_current_name_scope()}/"

    @tf.custom_gradient
    def mean_max(features, dist_sq):
        n_hits, n_columns, width = tf.shape(features)[0], nidx.shape[1], features.shape[1]
        weights, is_real = _weights(nidx, dist_sq)
        safe = tf.maximum(nidx, 0)
        n_real = tf.reduce_sum(tf.cast(is_real, features.dtype), axis=1, keepdims=True)
        lowest = tf.constant(features.dtype.min, features.dtype)

        def forward_chunk(rows):
            weighted = tf.gather(features, tf.gather(safe, rows)) * tf.gather(weights, rows)[..., None]
            masked = tf.where(tf.gather(is_real, rows)[..., None], weighted, lowest)
            return tf.reduce_sum(weighted, axis=1), tf.reduce_max(masked, axis=1), \
                tf.argmax(masked, axis=1, output_type=tf.int32)

        rows_per_chunk = max(MIN_CHUNK_ROWS, AGGREGATION_CHUNK_BYTES // (n_columns * width * features.dtype.size))
        total, best, argmax = _over_row_chunks(
            forward_chunk, n_hits, rows_per_chunk,
            [(features.dtype, width), (features.dtype, width), (tf.int32, width)])
        has_neighbours = n_real > 0
        mean = total / tf.maximum(n_real, 1.0)
        maximum = tf.where(has_neighbours, best, tf.zeros_like(best))

        def gradient(grad_mean, grad_max):
            with tf.name_scope(gradient_scope):
                return written_out_gradient(grad_mean, grad_max)

        def written_out_gradient(grad_mean, grad_max):
            grad_sum = grad_mean / tf.maximum(n_real, 1.0)  # g / n
            grad_max = tf.where(has_neighbours, grad_max, tf.zeros_like(grad_max))

            def weight_gradient_chunk(rows):  # sum_p f_{j(i,k),p} g_ip / n_i, (C, K)
                neighbour_features = tf.gather(features, tf.gather(safe, rows))
                return (tf.linalg.matvec(neighbour_features, tf.gather(grad_sum, rows)),)

            (grad_weights,) = _over_row_chunks(weight_gradient_chunk, n_hits, rows_per_chunk,
                                               [(features.dtype, n_columns)])
            # The max terms: one (i, a_ip) per hit and feature.
            argmax_hit = tf.gather(safe, argmax, batch_dims=1)  # j(i, a_ip), (V, P)
            feature_column = tf.broadcast_to(tf.range(width)[None, :], tf.shape(argmax))
            at_argmax = tf.gather_nd(features, tf.stack([argmax_hit, feature_column], axis=-1))
            edge = tf.range(n_hits)[:, None] * n_columns + argmax
            grad_weights += tf.reshape(
                tf.math.unsorted_segment_sum(grad_max * at_argmax, edge, n_hits * n_columns),
                [n_hits, n_columns])
            grad_dist = tf.where(is_real, -DISTANCE_WEIGHT_SCALE * weights * grad_weights,
                                 tf.zeros_like(grad_weights))

            adjacency = tf.sparse.SparseTensor(
                tf.stack([tf.repeat(tf.range(n_hits, dtype=tf.int64), n_columns),
                          tf.cast(tf.reshape(safe, [-1]), tf.int64)], axis=1),
                tf.reshape(weights, [-1]),
                tf.cast(tf.stack([n_hits, n_hits]), tf.int64))
            grad_features = tf.sparse.sparse_dense_matmul(adjacency, grad_sum, adjoint_a=True)  # A^T g / n
            weight_at_argmax = tf.gather(weights, argmax, batch_dims=1)
            grad_features += tf.reshape(
                tf.math.unsorted_segment_sum(tf.reshape(weight_at_argmax * grad_max, [-1]),
                                             tf.reshape(argmax_hit * width + feature_column, [-1]),
                                             n_hits * width),
                [n_hits, width])
            return grad_features, grad_dist

        return (mean, maximum), gradient

    return mean_max(features, dist_sq)


def _over_row_chunks(function, n_hits, chunk: int, outputs):
    """``function(rows)`` for the rows of each chunk of ``chunk`` rows, concatenated in row order.

    ``outputs``: (dtype, width) of each of the tensors ``function`` returns, each (len(rows), width). Two chunks
    run at a time (the two halves of a 2-core machine).
    """
    n_chunks = tf.maximum((n_hits + chunk - 1) // chunk, 1)  # one empty chunk for V = 0: concat needs one
    arrays = tuple(tf.TensorArray(dtype, size=n_chunks, infer_shape=False,
                                  element_shape=tf.TensorShape([None, width])) for dtype, width in outputs)

    def body(index, *arrays):
        rows = tf.range(index * chunk, tf.minimum((index + 1) * chunk, n_hits))
        results = function(rows)
        return (index + 1, *(array.write(index, result) for array, result in zip(arrays, results)))

    _, *arrays = tf.while_loop(lambda index, *_: index < n_chunks, body, (tf.constant(0), *arrays),
                               parallel_iterations=2)
    return tuple(array.concat() for array in arrays)
