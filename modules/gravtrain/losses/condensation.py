"""The object condensation terms: attraction, repulsion, condensation (β) and noise, over a ragged batch.

Reference: J. Kieseler, "Object condensation: one-stage grid-free multi-object reconstruction in
physics detectors, graph and image data", Eur. Phys. J. C 80, 886 (2020), arXiv:2002.03605.

The repulsive potential is looked up by name in ``REPULSIVE_POTENTIALS`` (the YAML key
``LossOptions.oc_implementation``), the normalisation of the repulsion in ``REPULSION_NORMALIZATIONS``
(``LossOptions.repulsion_normalization``); an unknown name raises ``ValueError`` listing the valid ones.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

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


def basic_potential(scaled_distance):
    """``R(s) = exp(−s/2)``: a Gaussian repulsion that never vanishes."""
    return tf.exp(-0.5 * scaled_distance)


def hinge_potential(scaled_distance):
    """``R(s) = max(0, 1 − sqrt(s + 1e−6))``: linear in the distance, 0 beyond d̄; finite gradient at s = 0."""
    return tf.nn.relu(1.0 - tf.sqrt(scaled_distance + 1e-6))


#: Repulsive potentials R(s) by the name users write in ``LossOptions.oc_implementation``.
REPULSIVE_POTENTIALS = {"basic": basic_potential, "hinge": hinge_potential}
#: The valid names of ``oc_implementation``, in the order of the integer index the wrapper stores.
OC_IMPLEMENTATIONS = tuple(REPULSIVE_POTENTIALS)


#: How the repulsion of object k is normalised (``LossOptions.repulsion_normalization``), in the order of the
#: integer index the wrapper stores: ``"object"`` divides by the V − N_k hits outside k, ``"event"`` (the
#: paper's) by the V hits of the event, summed over the objects (see :func:`object_condensation_terms`).
REPULSION_NORMALIZATIONS = ("object", "event")


def _choice_index(what: str, choices: tuple[str, ...], name) -> int:
    if not isinstance(name, str) or name not in choices:
        valid = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"Unknown {what} {name!r}; valid: {valid}.")
    return choices.index(name)


def implementation_index(implementation: str) -> int:
    """Position of ``implementation`` in ``OC_IMPLEMENTATIONS``; ``ValueError`` naming the valid ones if unknown."""
    return _choice_index("object condensation implementation", OC_IMPLEMENTATIONS, implementation)


def normalization_index(normalization: str) -> int:
    """Position of ``normalization`` in ``REPULSION_NORMALIZATIONS``; ``ValueError`` naming the valid ones."""
    return _choice_index("repulsion normalization", REPULSION_NORMALIZATIONS, normalization)


def repulsive_potential(implementation):
    """R(s) for ``implementation``: a name of ``OC_IMPLEMENTATIONS``, or an integer tensor indexing it.

    A tensor index selects the potential at run time (``tf.switch_case``), so it can change between calls of a
    ``tf.function`` without retracing. A string is checked here; an unknown one raises ``ValueError``.
    """
    if isinstance(implementation, str):
        return REPULSIVE_POTENTIALS[OC_IMPLEMENTATIONS[implementation_index(implementation)]]
    index = tf.cast(tf.convert_to_tensor(implementation), tf.int32)
    potentials = tuple(REPULSIVE_POTENTIALS.values())

    def selected(scaled_distance):
        return tf.switch_case(index, [functools.partial(potential, scaled_distance) for potential in potentials])

    return selected


class Condensation(NamedTuple):
    """Per-hit and per-object quantities of the object condensation loss (V hits, K objects, C dims)."""

    beta: tf.Tensor  #: (V,) β
    coords: tf.Tensor  #: (V, C) x
    charge: tf.Tensor  #: (V,) q
    structure: ObjectStructure
    alpha: tf.Tensor  #: (K,) int64, condensation point α_k
    centre: tf.Tensor  #: (K, C) x̄_k
    inverse_scale: tf.Tensor  #: (K,) 1 / (d̄_k² + 1e−4)


def condensation(beta, ccoords, t_idx, row_splits, *, q_min, use_average_cc_pos, dist=None,
                 spectator_weight=None, is_track=None) -> Condensation:
    """Charges, condensation points and object centres.

    .. math::
        q_i = (\\operatorname{arctanh}(β_i/1.01)^2 + q_{min}) (1 − sw_i), \\qquad
        α_k = \\arg\\max_{i∈k,\\, i \\text{ not a track}} q_i

        \\bar x_k = (1−u)\\, x_{α_k} + u \\, Σ_{i∈k} β_i x_i / (Σ_{i∈k} β_i + 10^{-6})

    Arguments as in :func:`object_condensation_terms`. All float outputs have the dtype of ``beta``.
    """
    beta = flat_hits(beta)
    dtype = beta.dtype
    coords = tf.cast(ccoords, dtype)
    structure = object_structure(t_idx, row_splits, dtype)
    charge = condensation_charge(beta, q_min, spectator_weight)
    alpha = condensation_points(charge, structure, is_track)

    object_beta = tf.gather(beta, structure.object_hits)
    object_coords = tf.gather(coords, structure.object_hits)
    beta_mean = object_sum(object_beta[:, None] * object_coords, structure) / (
        object_sum(object_beta, structure)[:, None] + 1e-6
    )
    mix = tf.cast(use_average_cc_pos, dtype)
    centre = (1.0 - mix) * tf.gather(coords, alpha) + mix * beta_mean
    if dist is None:
        distance_scale = tf.ones_like(alpha, dtype)
    else:
        distance_scale = tf.gather(flat_hits(dist, dtype), alpha)
    inverse_scale = 1.0 / (tf.square(distance_scale) + 1e-4)
    return Condensation(beta, coords, charge, structure, alpha, centre, inverse_scale)


def event_hit_object_pairs(structure: ObjectStructure):
    """Every (hit i, object k) pair of the same event, as two flat index tensors of length P = Σ_e V_e · K_e.

    The objects of hit i's event are the range ``[object_splits[e_i], object_splits[e_i + 1])``; a ragged range
    lists them for all hits at once. Nothing of size V·K (across events) is built.

    Shapes:
        -> (pair_hit (P,) int64, pair_object (P,) int64).
    """
    starts = tf.gather(structure.object_splits[:-1], structure.hit_event)
    limits = tf.gather(structure.object_splits[1:], structure.hit_event)
    pair_object = tf.ragged.range(starts, limits).flat_values
    n_hits = tf.shape(structure.hit_event, out_type=tf.int64)[0]
    pair_hit = tf.repeat(tf.range(n_hits), limits - starts)
    return pair_hit, pair_object


def repulsion_denominator(structure: ObjectStructure, normalization):
    """D_k of L_rep per object: V_e − N_k (``"object"``) or V_e / K_e (``"event"``), at least 1 for the first.

    ``normalization`` is a name of ``REPULSION_NORMALIZATIONS`` or an integer scalar tensor indexing it, selected
    at run time (no retracing when it changes). Shapes: -> (K,).
    """
    event_hits = tf.gather(structure.event_hits, structure.object_event)
    per_object = tf.maximum(event_hits - structure.object_size, 1.0)
    per_event = event_hits / tf.gather(structure.event_objects, structure.object_event)
    if isinstance(normalization, str):
        return (per_object, per_event)[normalization_index(normalization)]
    return tf.where(tf.cast(normalization, tf.int32) == REPULSION_NORMALIZATIONS.index("event"), per_event,
                    per_object)


def condensation_terms(state: Condensation, potential, normalization="object") -> dict:
    """The four terms of :func:`object_condensation_terms` from a :class:`Condensation`, a potential R(s) and
    the repulsion normalisation (a name or index of ``REPULSION_NORMALIZATIONS``)."""
    structure = state.structure
    object_charge = tf.gather(state.charge, state.alpha)  # q̄_k

    # Attraction: each object hit against the centre of its own object.
    own = structure.object_of_object_hit
    hit_coords = tf.gather(state.coords, structure.object_hits)
    own_distance = tf.reduce_sum(tf.square(hit_coords - tf.gather(state.centre, own)), axis=-1)
    own_scaled = own_distance * tf.gather(state.inverse_scale, own)
    hit_charge = tf.gather(state.charge, structure.object_hits)
    attractive = object_charge * object_sum(hit_charge * own_scaled, structure) / structure.object_size

    # Repulsion: each hit against every object of its event, its own object masked out.
    pair_hit, pair_object = event_hit_object_pairs(structure)
    not_own = tf.cast(tf.gather(structure.hit_object, pair_hit) != pair_object, state.beta.dtype)
    pair_distance = tf.reduce_sum(
        tf.square(tf.gather(state.coords, pair_hit) - tf.gather(state.centre, pair_object)), axis=-1
    )
    pair_scaled = pair_distance * tf.gather(state.inverse_scale, pair_object)
    pair_repulsion = not_own * tf.gather(state.charge, pair_hit) * potential(pair_scaled)
    repulsion_sum = tf.math.unsorted_segment_sum(pair_repulsion, pair_object, structure.n_objects)
    repulsive = object_charge * repulsion_sum / repulsion_denominator(structure, normalization)

    condensation_beta = 1.0 - tf.gather(state.beta, state.alpha)

    n_events = tf.shape(structure.event_hits, out_type=tf.int64)[0]
    is_noise = tf.cast(structure.hit_object < 0, state.beta.dtype)
    noise_sum = tf.math.unsorted_segment_sum(state.beta * is_noise, structure.hit_event, n_events)
    noise_count = tf.math.unsorted_segment_sum(is_noise, structure.hit_event, n_events)
    noise = noise_sum / tf.maximum(noise_count, 1.0)

    return {
        "attractive": batch_mean_over_events(event_mean_over_objects(attractive, structure), structure),
        "repulsive": batch_mean_over_events(event_mean_over_objects(repulsive, structure), structure),
        "beta": batch_mean_over_events(event_mean_over_objects(condensation_beta, structure), structure),
        "noise": batch_mean_over_events(noise, structure),
    }


def object_condensation_terms(beta, ccoords, t_idx, row_splits, *, q_min, implementation, use_average_cc_pos,
                              dist=None, spectator_weight=None, repulsion_normalization="object",
                              is_track=None) -> dict:
    """The object condensation terms L_att, L_rep, L_β and L_noise of a ragged batch.

    Per event, with hits i, objects k (hits with the same ``t_idx`` ≥ 0, N_k of them), K objects, V hits and
    noise hits B (``t_idx`` = −1):

    .. math::
        q_i = (\\operatorname{arctanh}(β_i/1.01)^2 + q_{min}) (1 − sw_i), \\quad
        α_k = \\arg\\max_{i∈k,\\, i∉T} q_i, \\quad \\bar q_k = q_{α_k}, \\quad \\bar d_k = d_{α_k}

        \\bar x_k = (1−u)\\, x_{α_k} + u \\, Σ_{i∈k} β_i x_i / (Σ_{i∈k} β_i + 10^{-6}), \\quad
        s_{ik} = \\lVert x_i − \\bar x_k \\rVert^2 / (\\bar d_k^2 + 10^{-4})

        L_{att} = \\frac1K Σ_k \\bar q_k \\frac1{N_k} Σ_{i∈k} q_i s_{ik}, \\qquad
        L_{rep} = \\frac1K Σ_k \\bar q_k \\frac1{D_k} Σ_{i∉k} q_i R(s_{ik})

        L_β = \\frac1K Σ_k (1 − β_{α_k}), \\qquad L_{noise} = \\frac1{|B|} Σ_{i∈B} β_i

    with R(s) = max(0, 1 − sqrt(s + 1e−6)) (``"hinge"``) or exp(−s/2) (``"basic"``), and the repulsion
    normalisation D_k = V − N_k (``"object"``: the mean push of the hits outside k) or D_k = V / K
    (``"event"``, the paper's: L_rep = (1/V) Σ_k Σ_{i∉k} q̄_k q_i R(s_ik), a sum over the hits of the event,
    so an object pushes a neighbour's hits as hard as it pulls its own instead of diluting the push over every
    hit of the event). T is the set of track rows (``is_track``): the condensation point of an object is one of
    its calorimeter hits, a track only for an object without one. α_k is the first hit on ties. A sum over an
    empty set divided by its (zero) size is 0: an event without objects has
    L_att = L_rep = L_β = 0, an event without noise L_noise = 0, and an object that is its whole event
    (V = N_k) has no repulsion. Each term of the batch is the mean of the per-event values over the events
    with at least one hit (empty events are left out of the mean; a batch without hits gives 0).

    Args:
        beta: β, condensation confidence in [0, 1]; its float dtype is the dtype of the result.
        ccoords: x, cluster-space coordinates.
        t_idx: object index of each hit within its event, −1 for noise; ids need not be contiguous.
        row_splits: event boundaries, ``row_splits[-1] == V``.
        q_min: q_min > 0, the minimum charge (float or scalar tensor).
        implementation: the repulsive potential R, ``"hinge"`` or ``"basic"``, or an integer scalar tensor
            indexing ``OC_IMPLEMENTATIONS`` (selected at run time). Another name raises ``ValueError``.
        use_average_cc_pos: u in [0, 1], the weight of the β-weighted mean in the object centre.
        dist: d, per-hit distance scale; None means d = 1.
        spectator_weight: sw, per-hit weight in [0, 1] that removes charge from spectator hits; None means 0.
        repulsion_normalization: D_k, ``"object"`` or ``"event"``, or an integer scalar tensor indexing
            ``REPULSION_NORMALIZATIONS``.
        is_track: per-hit track flag (> 0.5: a track row); None means no tracks.

    Returns:
        dict of scalar tensors ``"attractive"``, ``"repulsive"``, ``"beta"``, ``"noise"``.

    Shapes:
        beta (V, 1) or (V,), ccoords (V, C), t_idx (V, 1) or (V,), row_splits (E+1,), dist and
        spectator_weight (V, 1) or (V,) -> dict of ().

    Memory: the repulsion evaluates each hit against each object of its own event, P = Σ_e V_e · K_e pairs,
    holding about (C + 6) floats and 3 int64 per pair (plus as much again for the gradient): O(Σ_e V_e K_e),
    never V · K across events. For example 10 events of 10,000 hits and 200 objects with C = 3 take about
    20 M pairs, roughly 1 to 2 GB in float32 with gradients.
    """
    potential = repulsive_potential(implementation)
    state = condensation(beta, ccoords, t_idx, row_splits, q_min=q_min, use_average_cc_pos=use_average_cc_pos,
                         dist=dist, spectator_weight=spectator_weight, is_track=is_track)
    return condensation_terms(state, potential, repulsion_normalization)
