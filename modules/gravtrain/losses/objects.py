"""Bookkeeping of truth objects in a ragged batch: which hits form which object, of which event.

Objects are (event, ``t_idx``) pairs with ``t_idx >= 0``; object ids need not be contiguous within an event.
:func:`object_structure` numbers the K objects of the whole batch 0..K-1, grouped by event (objects of event 0
first), so the objects of event e are the range ``[object_splits[e], object_splits[e+1])``. Everything is
built with segment ops on flat tensors, without a Python loop over events, and runs in ``tf.function`` for
any V and E (no static shape is used).

Event means. Every per-event quantity enters the batch through :func:`batch_mean_over_events`, the mean over
the *non-empty* events of the batch (events with at least one hit): an empty event (``row_splits[e] ==
row_splits[e+1]``) is left out of the mean, and a batch without hits gives 0 rather than NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf


class ObjectStructure(NamedTuple):
    """Index bookkeeping of the objects of a ragged batch (V hits, E events, K objects, H hits in objects)."""

    hit_event: tf.Tensor  #: (V,) int64, event of each hit
    event_hits: tf.Tensor  #: (E,) float, V_e, hits per event
    object_hits: tf.Tensor  #: (H,) int64, indices of the hits that belong to an object
    object_of_object_hit: tf.Tensor  #: (H,) int64, object of each of those hits
    hit_object: tf.Tensor  #: (V,) int64, object of each hit, -1 for noise
    n_objects: tf.Tensor  #: () int64, K
    object_event: tf.Tensor  #: (K,) int64, event of each object
    object_size: tf.Tensor  #: (K,) float, N_k, hits per object
    event_objects: tf.Tensor  #: (E,) float, K_e, objects per event
    object_splits: tf.Tensor  #: (E+1,) int64, objects of event e are object_splits[e]:object_splits[e+1]


def flat_hits(tensor, dtype=None):
    """A per-hit tensor of shape (V, 1) or (V,) as (V,), optionally cast to ``dtype``."""
    tensor = tf.reshape(tensor, [-1])
    return tensor if dtype is None else tf.cast(tensor, dtype)


def atanh_beta_squared(beta):
    """``arctanh(β / 1.01)²``, finite for β in [0, 1] (at β = 1 it is about 7.0): the charge without q_min."""
    return tf.square(tf.math.atanh(beta / 1.01))


def condensation_charge(beta, q_min, spectator_weight=None):
    """q_i = (arctanh(β_i/1.01)² + q_min) · (1 − sw_i); sw = 0 when ``spectator_weight`` is None. (V,) -> (V,)."""
    charge = atanh_beta_squared(beta) + tf.cast(q_min, beta.dtype)
    if spectator_weight is not None:
        charge = charge * (1.0 - flat_hits(spectator_weight, beta.dtype))
    return charge


def object_structure(t_idx, row_splits, dtype) -> ObjectStructure:
    """Number the truth objects of a ragged batch and find their events and sizes.

    An object is the set of hits of one event with the same ``t_idx >= 0``. With M = max(t_idx) + 1, the key
    ``event · M + t_idx`` of each object hit is unique per object; ``tf.unique`` numbers the keys in order of
    first appearance, and as hits are ordered by event, objects come out grouped by event.

    Args:
        t_idx: int tensor (V, 1) or (V,), object index within the event, -1 for noise.
        row_splits: int tensor (E+1,), event boundaries (``row_splits[-1] == V``).
        dtype: float dtype of the counts (``event_hits``, ``object_size``, ``event_objects``).

    Shapes:
        t_idx (V,), row_splits (E+1,) -> :class:`ObjectStructure` (fields listed there).
    """
    t_idx = flat_hits(t_idx, tf.int64)
    row_splits = tf.cast(row_splits, tf.int64)
    n_hits = tf.shape(t_idx, out_type=tf.int64)[0]
    n_events = tf.shape(row_splits, out_type=tf.int64)[0] - 1
    hit_event = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int64)
    event_hits = tf.cast(row_splits[1:] - row_splits[:-1], dtype)

    object_hits = tf.reshape(tf.where(t_idx >= 0), [-1])
    keys_per_event = tf.maximum(tf.reduce_max(t_idx), 0) + 1
    keys = tf.gather(hit_event, object_hits) * keys_per_event + tf.gather(t_idx, object_hits)
    object_keys, object_of_object_hit = tf.unique(keys, out_idx=tf.int64)
    n_objects = tf.shape(object_keys, out_type=tf.int64)[0]
    object_event = object_keys // keys_per_event
    hit_object = tf.tensor_scatter_nd_update(
        tf.fill([n_hits], tf.constant(-1, tf.int64)), object_hits[:, None], object_of_object_hit
    )
    object_size = tf.math.unsorted_segment_sum(
        tf.ones_like(object_of_object_hit, dtype), object_of_object_hit, n_objects
    )
    event_objects_int = tf.math.unsorted_segment_sum(tf.ones_like(object_event), object_event, n_events)
    object_splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(event_objects_int)], axis=0)
    return ObjectStructure(
        hit_event=hit_event,
        event_hits=event_hits,
        object_hits=object_hits,
        object_of_object_hit=object_of_object_hit,
        hit_object=hit_object,
        n_objects=n_objects,
        object_event=object_event,
        object_size=object_size,
        event_objects=tf.cast(event_objects_int, dtype),
        object_splits=object_splits,
    )


def condensation_points(charge, structure: ObjectStructure, is_track=None):
    """α_k = argmax_{i∈k} q_i over the calorimeter hits of k, the first (lowest) hit index on ties.

    Track rows (``is_track`` > 0.5) are condensation points only of an object without a calorimeter hit: a
    shower condenses on its deposits, and its track joins it (as the clustering attaches tracks afterwards).
    An object whose q are all NaN takes its first hit.

    Args:
        charge: q, float tensor (V,).
        structure: the batch's :class:`ObjectStructure`.
        is_track: optional (V,) or (V, 1) track flag; None means no row is a track.

    Shapes:
        charge (V,), is_track (V,) -> (K,) int64 hit indices.
    """
    object_charge = tf.stop_gradient(tf.gather(charge, structure.object_hits))
    if is_track is not None:
        # q >= 0, so ranking a track by −1/(1 + q) < 0 puts it below every calorimeter hit of its object while
        # keeping the order of q among tracks (an object of tracks alone takes its track of highest q).
        track = tf.gather(flat_hits(is_track), structure.object_hits) > 0.5
        object_charge = tf.where(track, -1.0 / (1.0 + object_charge), object_charge)
    segments, n_objects = structure.object_of_object_hit, structure.n_objects
    largest = tf.math.unsorted_segment_max(object_charge, segments, n_objects)
    is_largest = object_charge >= tf.gather(largest, segments)
    no_hit = tf.fill(tf.shape(structure.object_hits), tf.constant(tf.int64.max, tf.int64))
    candidates = tf.where(is_largest, structure.object_hits, no_hit)
    alpha = tf.math.unsorted_segment_min(candidates, segments, n_objects)
    # NaN charges compare false everywhere: such an object takes its first hit, so the loss turns NaN (and
    # the training step's guard reports it) instead of an out-of-range gather failing.
    first_hit = tf.math.unsorted_segment_min(structure.object_hits, segments, n_objects)
    return tf.where(alpha == tf.int64.max, first_hit, alpha)


def object_sum(per_object_hit, structure: ObjectStructure):
    """Σ_{i∈k} v_i for every object k, from values of the object hits (H,) or (H, C) -> (K,) or (K, C)."""
    return tf.math.unsorted_segment_sum(per_object_hit, structure.object_of_object_hit, structure.n_objects)


def event_mean_over_objects(per_object, structure: ObjectStructure):
    """(1/K_e) Σ_{k∈e} v_k per event, and 0 for events without objects. Shapes: (K,) -> (E,)."""
    n_events = tf.shape(structure.event_hits, out_type=tf.int64)[0]
    total = tf.math.unsorted_segment_sum(per_object, structure.object_event, n_events)
    return total / tf.maximum(structure.event_objects, 1.0)


def batch_mean_over_events(per_event, structure: ObjectStructure):
    """(1/E') Σ_e v_e over the E' non-empty events (V_e > 0); 0 when the batch has no hit. Shapes: (E,) -> ()."""
    non_empty = tf.cast(structure.event_hits > 0, per_event.dtype)
    return tf.reduce_sum(per_event * non_empty) / tf.maximum(tf.reduce_sum(non_empty), 1.0)
