"""Two optional β regularisers of object condensation, weighted by ``too_much_beta_scale`` and ``beta_push``.

Both are per-object values averaged like L_β: the mean over the objects of each event (0 for an event without
objects), then the mean over the non-empty events of the batch.
"""

from __future__ import annotations

import tensorflow as tf

from .objects import (
    ObjectStructure,
    batch_mean_over_events,
    condensation_charge,
    condensation_points,
    event_mean_over_objects,
    flat_hits,
    object_structure,
    object_sum,
)

#: τ: a hit other than the condensation point counts as a (soft) extra high-β hit by how far β exceeds τ.
HIGH_BETA_THRESHOLD = 0.5
#: f: the floor below which ``beta_push`` raises the largest β of an object.
BETA_PUSH_FLOOR = 0.5


def too_much_beta_per_object(beta, structure: ObjectStructure, alpha, threshold=HIGH_BETA_THRESHOLD):
    """T_k = Σ_{i∈k, i≠α_k} max(0, β_i − τ) / (1 − τ): the soft count of high-β hits besides α_k.

    A hit with β = 1 counts 1, one with β ≤ τ counts 0; an object with a single hit above τ (its condensation
    point) has T_k = 0. Shapes: beta (V,), alpha (K,) -> (K,).
    """
    object_hits = structure.object_hits
    excess = tf.nn.relu(tf.gather(beta, object_hits) - threshold) / (1.0 - threshold)
    is_not_alpha = tf.cast(object_hits != tf.gather(alpha, structure.object_of_object_hit), beta.dtype)
    return object_sum(excess * is_not_alpha, structure)


def beta_push_per_object(beta, structure: ObjectStructure, floor=BETA_PUSH_FLOOR):
    """P_k = max(0, f − max_{i∈k} β_i): how far the largest β of object k is below the floor f.

    The gradient reaches only the hit(s) of largest β. Shapes: beta (V,) -> (K,).
    """
    object_beta = tf.gather(beta, structure.object_hits)
    largest = tf.math.unsorted_segment_max(object_beta, structure.object_of_object_hit, structure.n_objects)
    return tf.nn.relu(floor - largest)


def extra_terms_from(beta, structure: ObjectStructure, alpha, *, high_beta_threshold=HIGH_BETA_THRESHOLD,
                     beta_push_floor=BETA_PUSH_FLOOR) -> dict:
    """``"too_much_beta"`` and ``"beta_push"`` batch terms from per-hit β, the structure and α (see below)."""
    too_much = too_much_beta_per_object(beta, structure, alpha, high_beta_threshold)
    push = beta_push_per_object(beta, structure, beta_push_floor)
    return {
        "too_much_beta": batch_mean_over_events(event_mean_over_objects(too_much, structure), structure),
        "beta_push": batch_mean_over_events(event_mean_over_objects(push, structure), structure),
    }


def extra_condensation_terms(beta, t_idx, row_splits, *, q_min, spectator_weight=None, is_track=None,
                             high_beta_threshold=HIGH_BETA_THRESHOLD, beta_push_floor=BETA_PUSH_FLOOR) -> dict:
    """The too-much-β penalty L_tmβ and the β push L_push of a ragged batch.

    Per event, with objects k (K of them) and their condensation points α_k (highest charge q, as in
    :func:`~gravtrain.losses.object_condensation_terms`):

    .. math::
        T_k = Σ_{i∈k,\\, i≠α_k} \\frac{\\max(0, β_i − τ)}{1 − τ}, \\qquad
        L_{tmβ} = \\frac1K Σ_k T_k

        P_k = \\max(0, f − \\max_{i∈k} β_i), \\qquad L_{push} = \\frac1K Σ_k P_k

    L_tmβ penalises objects with more than one hit of high β (each extra hit near β = 1 counts about 1) and
    pushes those extra hits' β down to τ; L_push raises the largest β of each object while it is below f.
    Both are 0 for an event without objects, and each batch value is the mean over the events with at least
    one hit. In the total loss they are weighted by ``too_much_beta_scale`` and ``beta_push``.

    Args:
        beta: β in [0, 1]; its float dtype is the dtype of the result.
        t_idx: object index of each hit within its event, −1 for noise.
        row_splits: event boundaries.
        q_min: q_min, for the charges that choose α_k.
        spectator_weight: sw, as in ``object_condensation_terms``; None means 0.
        is_track: per-hit track flag, as in ``object_condensation_terms`` (tracks are not α_k); None: no tracks.
        high_beta_threshold: τ in [0, 1), default ``HIGH_BETA_THRESHOLD`` (0.5).
        beta_push_floor: f, default ``BETA_PUSH_FLOOR`` (0.5).

    Returns:
        dict of scalar tensors ``"too_much_beta"`` and ``"beta_push"``.

    Shapes:
        beta (V, 1) or (V,), t_idx (V, 1) or (V,), row_splits (E+1,) -> dict of ().
    """
    beta = flat_hits(beta)
    structure = object_structure(t_idx, row_splits, beta.dtype)
    charge = condensation_charge(beta, q_min, spectator_weight)
    alpha = condensation_points(charge, structure, is_track)
    return extra_terms_from(beta, structure, alpha, high_beta_threshold=high_beta_threshold,
                            beta_push_floor=beta_push_floor)
