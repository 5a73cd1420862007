"""Learned pre-pooling: pick about 1/factor of each event's calorimeter hits as representatives by a learned
score, attach every hit to its nearest representative, and pool the features of each representative's hits.
``GatherRows`` maps values of the pooled rows back to every hit."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from scipy.spatial import cKDTree

from .knn import KDTREE_PARALLEL_MIN_HITS, KNN_BACKENDS, select_knn


@keras.saving.register_keras_serializable(package="gravtrain")
class LearnedPooling(keras.layers.Layer):
    """Learned pre-pooling of the hits of each event (a hit is never pooled with a hit of another event).

    For the hits i of one event, with raw features x_i, standardised features z_i and positions p_i (the
    ``position_columns`` of z)::

        s_i = sigmoid(w . z_i + b)                                    (score, ``score_dense``)
        N(i) = the k = ceil(factor) nearest other calorimeter hits of i's event in p   (tracks excluded)
        m_i = 1 if s_i >= s_j for every j in N(i), else 0              (local maximum of the score)
        R_e = ceil(n_e / factor), n_e the event's calorimeter hits
        representatives = every track, and the first R_e calorimeter hits of the event ranked by
                          (m_i descending, s_i descending, row ascending)
        a(i) = i for a track or a representative, else the nearest calorimeter representative of i's
               event by |p_i - p_r|^2 (exact ties: the lowest row)
        x̄_r = sum_{i in A(r)} x_i                        for the ``sum_columns``     A(r) = {i : a(i) = r}
        x̄_r = sum_{i in A(r)} s_i x_i / sum_{i in A(r)} s_i   for the other columns (score-weighted mean)

    Tracks (raw ``track_column`` > 0.5) are representatives of themselves alone: they take no part in the
    kNN, the ranking or the assignment of calorimeter hits. Pooled rows are the representatives in their
    original row order (calorimeter representatives and tracks interleaved as in the input), so the rows of
    each event are contiguous and in event order. Selection and assignment carry no gradient; the pooled
    features are differentiable with respect to x and, through the weighted means, to w and b.
    The nearest-representative query uses SciPy's ``cKDTree`` per event (CPU, not XLA-compilable).

    Args:
        factor: reduction factor (>= 1) of the calorimeter hits of each event; also sets k = ceil(factor).
        position_columns: columns of the standardised features that are the hit position p.
        track_column: column of the raw features that holds is_track.
        sum_columns: raw columns that are additive (e.g. energy), summed rather than averaged.
        knn: kNN backend of the local-maximum test, one of ``KNN_BACKENDS``.

    Call arguments:
        inputs: ``[features, standardised, row_splits]``; ``row_splits`` (E+1,) integer event boundaries.

    Returns:
        ``(pooled_features, pooled_row_splits, assignment, score)``; ``assignment[i]`` is the pooled row of hit i.

    Shapes:
        features (V, F), standardised (V, F), row_splits (E+1,) -> pooled_features (R, F),
        pooled_row_splits (E+1,) int32, assignment (V,) int32, score (V, 1); V hits, R representatives.

    Example:
        >>> x = keras.Input((5,)); z = keras.Input((5,)); row_splits = keras.Input((), dtype="int32")
        >>> pooled, pooled_splits, assignment, score = LearnedPooling(4.0, [0, 1, 2], 4, [3])([x, z, row_splits])
    """

    def __init__(self, factor: float, position_columns, track_column: int, sum_columns, knn: str = "auto",
                 **kwargs):
        super().__init__(**kwargs)
        if not factor >= 1:
            raise ValueError(f"pooling factor must be >= 1, got {factor}")
        if knn not in KNN_BACKENDS:
            raise ValueError(f"unknown kNN backend {knn!r}; valid names are: {', '.join(sorted(KNN_BACKENDS))}")
        self.factor = float(factor)
        self.position_columns = [int(column) for column in position_columns]
        if not self.position_columns:
            raise ValueError("position_columns must name at least one column")
        self.track_column = int(track_column)
        self.sum_columns = [int(column) for column in sum_columns]
        self.knn = knn
        self.supports_jit = False  # the assignment runs in SciPy
        self.score_dense = keras.layers.Dense(1, activation="sigmoid", dtype=self.dtype_policy, name="score_dense")

    def build(self, input_shape):
        self.score_dense.build(tuple(input_shape[1]))

    def call(self, inputs):
        features, standardised, row_splits = inputs
        row_splits = tf.cast(row_splits, tf.int32)
        n_hits, n_events = tf.shape(features)[0], tf.shape(row_splits)[0] - 1
        score = self.score_dense(standardised)
        event = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int32)[:n_hits]
        is_track = features[:, self.track_column] > 0.5

        # The calorimeter hits alone, compacted (rows stay in event order), with their own row splits.
        calo_rows = tf.cast(tf.where(~is_track)[:, 0], tf.int32)
        calo_event = tf.gather(event, calo_rows)
        calo_counts = tf.math.unsorted_segment_sum(tf.ones_like(calo_rows), calo_event, n_events)
        calo_splits = tf.concat([[0], tf.cumsum(calo_counts)], axis=0)
        positions = tf.stop_gradient(tf.gather(tf.gather(standardised, self.position_columns, axis=1), calo_rows))
        calo_score = tf.gather(tf.stop_gradient(score[:, 0]), calo_rows)

        is_calo_representative = self._select(positions, calo_splits, calo_score, calo_event, calo_counts)
        nearest = tf.numpy_function(
            _nearest_representative_numpy, [positions, calo_splits, is_calo_representative], tf.int32,
            stateful=False,
        )
        nearest.set_shape(calo_rows.shape)
        assigned_row = tf.tensor_scatter_nd_update(
            tf.range(n_hits), calo_rows[:, None], tf.gather(calo_rows, nearest)
        )
        is_representative = tf.tensor_scatter_nd_update(is_track, calo_rows[:, None], is_calo_representative)
        representative = tf.cast(is_representative, tf.int32)
        pooled_row_of = tf.cumsum(representative) - 1
        assignment = tf.gather(pooled_row_of, assigned_row)
        assignment.set_shape(features.shape[:1])
        n_pooled = tf.reduce_sum(representative)
        per_event = tf.math.unsorted_segment_sum(representative, event, n_events)
        pooled_row_splits = tf.concat([[0], tf.cumsum(per_event)], axis=0)
        pooled_row_splits.set_shape(row_splits.shape)

        weights = tf.cast(score, features.dtype)
        summed = tf.math.unsorted_segment_sum(features, assignment, n_pooled)
        # The weighted mean about the representative's own row: equal in exact arithmetic, and a row alone
        # (a track) comes back bit for bit.
        anchor = tf.gather(features, tf.cast(tf.where(is_representative)[:, 0], tf.int32))
        weighted = anchor + tf.math.divide_no_nan(
            tf.math.unsorted_segment_sum(weights * (features - tf.gather(anchor, assignment)), assignment, n_pooled),
            tf.math.unsorted_segment_sum(weights, assignment, n_pooled),
        )
        is_sum_column = np.isin(np.arange(features.shape[-1]), self.sum_columns)
        pooled_features = tf.where(is_sum_column[None, :], summed, weighted)
        return pooled_features, pooled_row_splits, assignment, score

    def _select(self, positions, calo_splits, calo_score, calo_event, calo_counts):
        """(C,) bool: the R_e calorimeter hits of each event ranked first by (m desc, s desc, row asc)."""
        nidx, _ = select_knn(positions, calo_splits, math.ceil(self.factor), backend=self.knn)
        neighbour_score = tf.gather(calo_score, tf.maximum(nidx[:, 1:], 0))
        is_local_max = tf.reduce_all((nidx[:, 1:] < 0) | (calo_score[:, None] >= neighbour_score), axis=1)
        # Stable sorts from the least to the most significant key; the compacted index is the row order.
        order = tf.argsort(calo_score, direction="DESCENDING", stable=True)
        order = tf.gather(order, tf.argsort(tf.gather(tf.cast(is_local_max, tf.int32), order),
                                            direction="DESCENDING", stable=True))
        order = tf.gather(order, tf.argsort(tf.gather(calo_event, order), stable=True))
        sorted_event = tf.gather(calo_event, order)
        position_in_event = tf.range(tf.shape(order)[0]) - tf.gather(calo_splits, sorted_event)
        n_keep = tf.cast(tf.math.ceil(tf.cast(calo_counts, tf.float64) / self.factor), tf.int32)
        keep = position_in_event < tf.gather(n_keep, sorted_event)
        return tf.scatter_nd(order[:, None], keep, tf.shape(order))

    def compute_output_shape(self, input_shape):
        features_shape, row_splits_shape = tuple(input_shape[0]), tuple(input_shape[2])
        n_hits = features_shape[0]
        return (None, features_shape[-1]), row_splits_shape, (n_hits,), (n_hits, 1)

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([tensor.shape for tensor in inputs])
        dtypes = (inputs[0].dtype, "int32", "int32", self.compute_dtype)
        return tuple(keras.KerasTensor(shape, dtype=dtype) for shape, dtype in zip(shapes, dtypes))

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "position_columns": list(self.position_columns),
                       "track_column": self.track_column, "sum_columns": list(self.sum_columns), "knn": self.knn})
        return config


def _nearest_representative_numpy(positions, row_splits, is_representative):
    """(C,) int32: per hit, its nearest representative of its event (itself for a representative).

    One ``cKDTree`` of the representatives per event; exact ties (equal nearest distances) go to the lowest row.
    """
    positions = np.asarray(positions, dtype=np.float64)
    result = np.arange(positions.shape[0], dtype=np.int32)
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        representatives = begin + np.flatnonzero(is_representative[begin:end])
        others = begin + np.flatnonzero(~is_representative[begin:end])
        if len(representatives) == 0 or len(others) == 0:
            continue
        n_query = min(2, len(representatives))
        workers = -1 if end - begin >= KDTREE_PARALLEL_MIN_HITS else 1
        tree = cKDTree(positions[representatives])
        dist, idx = tree.query(positions[others], k=list(range(1, n_query + 1)), workers=workers)
        nearest = idx[:, 0]
        tied = np.flatnonzero(dist[:, 0] == dist[:, -1]) if n_query == 2 else []
        for row in tied:  # argmin returns the first, i.e. the lowest row, of equally near representatives
            dist_sq = np.sum((positions[representatives] - positions[others[row]]) ** 2, axis=1)
            nearest[row] = np.argmin(dist_sq)
        result[others] = representatives[nearest]
    return result


@keras.saving.register_keras_serializable(package="gravtrain")
class GatherRows(keras.layers.Layer):
    """Rows of ``values`` by index: ``out_i = values[index_i]``, e.g. pooled rows back to every hit.

    Call arguments:
        inputs: ``[values, index]``, ``index`` integer rows of ``values``.

    Shapes:
        values (R, F), index (V,) -> (V, F).
    """

    def call(self, inputs):
        values, index = inputs
        return tf.gather(values, index)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1]) + tuple(input_shape[0])[1:]

    def compute_output_spec(self, inputs):
        shape = self.compute_output_shape([inputs[0].shape, inputs[1].shape])
        return keras.KerasTensor(shape, dtype=inputs[0].dtype)
