"""Regularisers of the learned spaces: GravNet-space distances and cluster-space filling.

Both are pass-through layers: they return their first input unchanged, add ``strength * L`` to the model's
losses in training (``keras.Model.losses``), and keep the unscaled value L of their last call in the
non-trainable scalar variable ``value``, which the training loop reports as a metric. Both are computed per
event and then averaged over the events of the batch, so no event's scale leaks into another's.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

#: Added to means and traces in denominators.
STABILISER = 1e-6


def _segment_ids(row_splits, n_rows):
    """Event index of each of ``n_rows`` rows from (E+1,) ``row_splits``."""
    row_splits = ops.cast(row_splits, "int64")
    return tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int32)[:n_rows]


def _mean_over_events(per_event, has_value):
    """Mean of ``per_event`` (E,) over events where ``has_value``; 0 when there is none."""
    weights = ops.cast(has_value, per_event.dtype)
    per_event = ops.where(has_value, per_event, ops.zeros_like(per_event))
    return ops.sum(per_event * weights) / ops.maximum(ops.sum(weights), 1.0)


class _PassThroughRegularizer(keras.layers.Layer):
    """Common state of the regularisers: the ``strength`` and the ``value`` variable."""

    def __init__(self, strength: float, **kwargs):
        super().__init__(**kwargs)
        if strength < 0:
            raise ValueError(f"regulariser strength must be >= 0, got {strength}")
        self.strength = float(strength)
        self.value = None

    def build(self, input_shape):
        # aggregation "mean": on several devices (gravtrain.model.devices) the copies record the mean value.
        self.value = self.add_weight(shape=(), initializer="zeros", trainable=False, name="value", aggregation="mean")

    def _record(self, loss, training):
        self.value.assign(ops.cast(loss, self.value.dtype))
        if training:
            self.add_loss(self.strength * loss)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[0].shape, dtype=inputs[0].dtype)

    def get_config(self):
        config = super().get_config()
        config["strength"] = self.strength
        return config


@keras.saving.register_keras_serializable(package="gravtrain")
class GravNetSpaceRegularizer(_PassThroughRegularizer):
    """Keeps GravNet-space neighbour distances proportional to the physical ones (average-distance regulariser).

    For each hit i and each real neighbour j of GravNet's graph (``nidx[i, 1:] >= 0``), with the squared
    distance g_ij in GravNet space (``dist_sq``) and p_ij = |r_i - r_j|^2 between the hits' physical positions
    r, and for each event e with pairs P_e::

        ḡ_e = mean_{(i,j) in P_e} g_ij          p̄_e = mean_{(i,j) in P_e} p_ij
        L_e = mean_{(i,j) in P_e} (g_ij / (ḡ_e + δ) - p_ij / (p̄_e + δ))^2
        L   = mean over the events with at least one pair of L_e                 (0 if there is none)

    with δ = 1e-6. L is 0 when the learned space reproduces the relative distances of the detector, whatever
    its overall scale; it grows as the graph drifts towards neighbours that are far apart physically. The
    gradient reaches the GravNet coordinates through ``dist_sq``; positions carry none.
    (The field's config trainer uses a regulariser of this kind, ``LLRegulariseGravNetSpace``.)

    Args:
        strength: λ; the layer adds λ·L to the model's losses in training.

    Call arguments:
        inputs: ``[x, dist_sq, nidx, positions, row_splits]``; ``x`` is returned unchanged.

    Shapes:
        x (V, F), dist_sq (V, K+1), nidx (V, K+1), positions (V, 3), row_splits (E+1,) -> x (V, F).
    """

    def call(self, inputs, training=None):
        x, dist_sq, nidx, positions, row_splits = inputs
        self._record(self.per_batch(dist_sq, nidx, positions, row_splits), bool(training) and self.trainable)
        return x

    @staticmethod
    def per_batch(dist_sq, nidx, positions, row_splits):
        """L for one batch (class docstring)."""
        dist_sq, nidx = dist_sq[:, 1:], nidx[:, 1:]  # column 0 is the hit itself
        positions = ops.stop_gradient(ops.cast(positions, dist_sq.dtype))
        is_pair = nidx >= 0
        neighbour_positions = tf.gather(positions, ops.maximum(nidx, 0))
        physical = ops.sum(ops.square(positions[:, None, :] - neighbour_positions), axis=-1)
        pair_weight = ops.cast(is_pair, dist_sq.dtype)
        n_events = ops.shape(row_splits)[0] - 1
        event = _segment_ids(row_splits, ops.shape(dist_sq)[0])

        def per_event_sum(per_pair):
            return tf.math.unsorted_segment_sum(ops.sum(per_pair * pair_weight, axis=1), event, n_events)

        n_pairs = per_event_sum(ops.ones_like(dist_sq))
        safe_pairs = ops.maximum(n_pairs, 1.0)
        g_mean = per_event_sum(dist_sq) / safe_pairs
        p_mean = per_event_sum(physical) / safe_pairs
        g_scaled = dist_sq / (tf.gather(g_mean, event)[:, None] + STABILISER)
        p_scaled = physical / (tf.gather(p_mean, event)[:, None] + STABILISER)
        per_event = per_event_sum(ops.square(g_scaled - p_scaled)) / safe_pairs
        return _mean_over_events(per_event, n_pairs > 0)


@keras.saving.register_keras_serializable(package="gravtrain")
class FillSpaceRegularizer(_PassThroughRegularizer):
    """Pushes each event's cluster-space coordinates to spread over all D dimensions (fill-space regulariser).

    For each event e with n_e >= 2 hits, with the covariance of its coordinates x_i (D dimensions) and the
    eigenvalues λ_1..λ_D of that covariance::

        Σ_e = (1/n_e) sum_i (x_i - x̄_e)(x_i - x̄_e)^T
        L_e = (D tr(Σ_e^2) - tr(Σ_e)^2) / (tr(Σ_e)^2 + δ)
            = D^2 Var(λ) / ((sum λ)^2 + δ)          (the squared coefficient of variation of the λ)
        L   = mean over the events with n_e >= 2 of L_e                            (0 if there is none)

    with δ = 1e-6. L is 0 when the hits fill the space evenly (Σ_e ∝ I) and D - 1 at most, when they lie on
    a line. It uses traces only, so it is smooth everywhere (no eigendecomposition) and rotation invariant;
    it ignores the overall scale, which the condensation loss sets. All hits of the event count, noise too.

    Args:
        strength: λ; the layer adds λ·L to the model's losses in training.

    Call arguments:
        inputs: ``[coords, row_splits]``; ``coords`` is returned unchanged.

    Shapes:
        coords (V, D), row_splits (E+1,) -> coords (V, D).
    """

    def call(self, inputs, training=None):
        coords, row_splits = inputs
        self._record(self.per_batch(coords, row_splits), bool(training) and self.trainable)
        return coords

    @staticmethod
    def per_batch(coords, row_splits):
        """L for one batch (class docstring)."""
        n_events = ops.shape(row_splits)[0] - 1
        event = _segment_ids(row_splits, ops.shape(coords)[0])
        counts = tf.math.unsorted_segment_sum(ops.ones_like(coords[:, 0]), event, n_events)
        safe_counts = ops.maximum(counts, 1.0)
        centre = tf.math.unsorted_segment_sum(coords, event, n_events) / safe_counts[:, None]
        centred = coords - tf.gather(centre, event)
        outer = centred[:, :, None] * centred[:, None, :]  # (V, D, D)
        covariance = tf.math.unsorted_segment_sum(outer, event, n_events) / safe_counts[:, None, None]
        trace = tf.linalg.trace(covariance)
        trace_of_square = ops.sum(ops.square(covariance), axis=(1, 2))  # Σ symmetric: tr(Σ²) = |Σ|_F²
        dimensions = ops.cast(ops.shape(coords)[1], coords.dtype)
        per_event = (dimensions * trace_of_square - ops.square(trace)) / (ops.square(trace) + STABILISER)
        return _mean_over_events(per_event, counts >= 2)
