"""The loss of a noise filter: binary cross-entropy of its per-hit signal score, averaged per event."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf

#: The terms a noise filter reports next to the total, each as the metric ``loss/<name>``.
NOISE_FILTER_TERM_NAMES = ("bce",)
#: Scores are clipped to [ε, 1 - ε] before the logarithms.
SCORE_EPSILON = 1e-6


def signal_labels(t_idx, is_track=None):
    """y_i = 1 for a hit of a truth object (``t_idx >= 0``) and for every track row, 0 for noise (V,) float32."""
    signal = tf.reshape(t_idx, [-1]) >= 0
    if is_track is not None:
        signal = tf.logical_or(signal, tf.reshape(is_track, [-1]) > 0.5)
    return tf.cast(signal, tf.float32)


def noise_filter_loss(score, t_idx, row_splits, is_track=None):
    """Binary cross-entropy of the signal score s_i against the label y_i of :func:`signal_labels`, per event::

        l_i = -[ y_i log s_i + (1 - y_i) log(1 - s_i) ]          (s clipped to [ε, 1 - ε], ε = SCORE_EPSILON)
        L   = (1 / E') sum_e (1 / n_e) sum_{i in e} l_i          (E' = events with at least one hit)

    Every event weighs the same whatever its size, as in the condensation loss.

    Returns:
        ``(total, {"loss/total": total, "loss/bce": total})``.

    Shapes:
        score (V, 1), t_idx (V, 1) or (V,), row_splits (E+1,), is_track (V,) -> (), dict of ().
    """
    s = tf.clip_by_value(tf.reshape(tf.cast(score, tf.float32), [-1]), SCORE_EPSILON, 1.0 - SCORE_EPSILON)
    y = signal_labels(t_idx, is_track)
    per_hit = -(y * tf.math.log(s) + (1.0 - y) * tf.math.log(1.0 - s))
    row_splits = tf.cast(row_splits, tf.int32)
    n_events = tf.shape(row_splits)[0] - 1
    event_of_hit = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int32)
    sums = tf.math.unsorted_segment_sum(per_hit, event_of_hit, n_events)
    counts = tf.cast(row_splits[1:] - row_splits[:-1], tf.float32)
    has_hits = counts > 0
    per_event = tf.where(has_hits, sums / tf.maximum(counts, 1.0), 0.0)
    total = tf.reduce_sum(per_event) / tf.maximum(tf.reduce_sum(tf.cast(has_hits, tf.float32)), 1.0)
    return total, {"loss/total": total, "loss/bce": total}


class NoiseFilterLoss:
    """:func:`noise_filter_loss` with the call signature of ``ObjectCondensationLoss``, so that the same training
    step trains a noise filter. It has no options (``LossOptions`` are those of object condensation)."""

    term_names = NOISE_FILTER_TERM_NAMES

    def __call__(self, predictions: Mapping, truth: Mapping, row_splits, is_track=None):
        return noise_filter_loss(predictions["signal_score"], truth["t_idx"], row_splits, is_track)

    def set_options(self, **options) -> None:
        if options:
            raise ValueError(f"a noise filter's loss takes no options, got {', '.join(sorted(options))}")
