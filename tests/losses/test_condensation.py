"""object_condensation_terms and extra_condensation_terms against the per-event NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gravtrain.losses import OC_IMPLEMENTATIONS, extra_condensation_terms, object_condensation_terms
from tests.numerics import numeric_gradient

from .conftest import random_batch
from .reference import condensation_reference

TERMS = ("attractive", "repulsive", "beta", "noise")


def tf_terms(batch, *, implementation, use_average_cc_pos, with_dist, with_spectators, q_min=0.5,
             normalization="object", with_tracks=False):
    options = dict(q_min=q_min, use_average_cc_pos=use_average_cc_pos,
                   dist=batch["dist"] if with_dist else None,
                   spectator_weight=batch["spectator"] if with_spectators else None,
                   is_track=batch["is_track"] if with_tracks else None)
    terms = object_condensation_terms(batch["beta"], batch["ccoords"], batch["t_idx"], batch["row_splits"],
                                      implementation=implementation, repulsion_normalization=normalization,
                                      **options)
    extra = extra_condensation_terms(batch["beta"], batch["t_idx"], batch["row_splits"], q_min=q_min,
                                     spectator_weight=options["spectator_weight"], is_track=options["is_track"])
    reference = condensation_reference(batch["beta"], batch["ccoords"], batch["t_idx"], batch["row_splits"],
                                       implementation=implementation, repulsion_normalization=normalization,
                                       **options)
    return {**terms, **extra}, reference


@pytest.mark.parametrize("implementation", ["hinge", "basic"])
@pytest.mark.parametrize("use_average_cc_pos", [0.0, 0.9999])
@pytest.mark.parametrize("with_spectators", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("normalization,with_tracks", [("object", False), ("event", True)])
def test_terms_match_reference(implementation, use_average_cc_pos, with_spectators, seed, normalization,
                               with_tracks):
    batch = random_batch(seed)
    got, want = tf_terms(batch, implementation=implementation, use_average_cc_pos=use_average_cc_pos,
                         with_dist=seed == 1, with_spectators=with_spectators, normalization=normalization,
                         with_tracks=with_tracks)
    assert set(want) == set(got)
    for name, value in want.items():
        np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-5, atol=1e-12, err_msg=name)
    assert want["repulsive"] > 0 and want["too_much_beta"] > 0 and want["beta_push"] > 0


def test_float32_matches_reference():
    batch = random_batch(3)
    single = {name: (value.astype(np.float32) if name in ("beta", "ccoords") else value)
              for name, value in batch.items()}
    got = object_condensation_terms(single["beta"], single["ccoords"], single["t_idx"], single["row_splits"],
                                    q_min=0.5, implementation="hinge", use_average_cc_pos=0.5)
    want = condensation_reference(batch["beta"].astype(np.float32), batch["ccoords"].astype(np.float32),
                                  batch["t_idx"], batch["row_splits"], q_min=0.5, implementation="hinge",
                                  use_average_cc_pos=0.5)
    for name in TERMS:
        assert got[name].dtype == tf.float32
        np.testing.assert_allclose(got[name].numpy(), want[name], rtol=1e-4, err_msg=name)


def test_event_edge_cases_by_hand():
    """Single events where the answer is known: no objects, no noise, one object that is the whole event."""
    beta = np.array([0.2, 0.4])
    coords = np.zeros((2, 2))
    splits = np.array([0, 2])
    only_noise = object_condensation_terms(beta, coords, np.array([-1, -1]), splits, q_min=1.0,
                                           implementation="hinge", use_average_cc_pos=0.0)
    assert only_noise["noise"].numpy() == pytest.approx(0.3)
    for name in ("attractive", "repulsive", "beta"):
        assert only_noise[name].numpy() == 0.0
    one_object = object_condensation_terms(beta, coords, np.array([7, 7]), splits, q_min=1.0,
                                           implementation="basic", use_average_cc_pos=0.0)
    assert one_object["noise"].numpy() == 0.0 and one_object["repulsive"].numpy() == 0.0
    assert one_object["beta"].numpy() == pytest.approx(0.6)
    # An empty event is left out of the mean: appending one changes nothing.
    with_empty = object_condensation_terms(beta, coords, np.array([-1, -1]), np.array([0, 0, 2, 2]), q_min=1.0,
                                           implementation="hinge", use_average_cc_pos=0.0)
    assert with_empty["noise"].numpy() == pytest.approx(0.3)
    # A batch of empty events only (and a batch of no events) gives zeros, not NaN.
    for splits_empty in (np.array([0, 0, 0]), np.array([0])):
        empty = object_condensation_terms(np.zeros((0, 1)), np.zeros((0, 2)), np.zeros((0, 1), np.int32),
                                          splits_empty, q_min=1.0, implementation="hinge",
                                          use_average_cc_pos=0.5)
        assert all(empty[name].numpy() == 0.0 for name in TERMS)


def test_condensation_point_is_first_on_ties():
    beta = np.array([0.5, 0.5, 0.1])
    coords = np.array([[0.0], [1.0], [3.0]])
    terms = object_condensation_terms(beta, coords, np.array([0, 0, -1]), np.array([0, 3]), q_min=1.0,
                                      implementation="basic", use_average_cc_pos=0.0)
    q = np.arctanh(0.5 / 1.01) ** 2 + 1.0
    scale = 1.0 / (1.0 + 1e-4)
    expected_attractive = q * (q * 0.0 + q * 1.0 * scale) / 2  # centre at hit 0
    assert terms["attractive"].numpy() == pytest.approx(expected_attractive, rel=1e-12)


@pytest.mark.parametrize("implementation", OC_IMPLEMENTATIONS)
def test_gradients_match_finite_differences(implementation):
    batch = random_batch(5)
    options = dict(q_min=0.5, implementation=implementation, use_average_cc_pos=0.7, dist=batch["dist"],
                   spectator_weight=batch["spectator"])
    weights = {"attractive": 1.0, "repulsive": 1.3, "beta": 0.7, "noise": 0.4, "too_much_beta": 0.6,
               "beta_push": 0.9}

    def reference_loss(beta, coords, dist):
        terms = condensation_reference(beta, coords, batch["t_idx"], batch["row_splits"],
                                       **{**options, "dist": dist})
        return sum(weights[name] * terms[name] for name in weights)

    beta, coords, dist = (tf.Variable(batch[name]) for name in ("beta", "ccoords", "dist"))
    with tf.GradientTape() as tape:
        terms = object_condensation_terms(beta, coords, batch["t_idx"], batch["row_splits"],
                                          **{**options, "dist": dist})
        terms.update(extra_condensation_terms(beta, batch["t_idx"], batch["row_splits"], q_min=0.5,
                                              spectator_weight=batch["spectator"]))
        loss = sum(weights[name] * terms[name] for name in weights)
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, [beta, coords, dist])]
    b, c, d = batch["beta"], batch["ccoords"], batch["dist"]
    expected = [
        numeric_gradient(lambda v: reference_loss(v, c, d), b),
        numeric_gradient(lambda v: reference_loss(b, v, d), c),
        numeric_gradient(lambda v: reference_loss(b, c, v), d),
    ]
    for name, got, want in zip(("beta", "ccoords", "dist"), grads, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=name)


def extreme_batch(kind: str):
    """float32 inputs with β of exactly 0 and 1, coincident points, or huge coordinates."""
    t_idx = np.array([0, 0, 0, 1, 1, -1, -1, 2, 3, 3], dtype=np.int32)
    splits = np.array([0, 5, 5, 10])
    rng = np.random.default_rng(0)
    beta = rng.uniform(size=10)
    coords = rng.normal(size=(10, 3))
    if kind == "beta_0_and_1":
        beta = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    elif kind == "coincident":
        coords = np.ones((10, 3))
    elif kind == "huge":
        coords = coords * 1e8
    elif kind == "everything":
        beta = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0])
        coords[:5] = 1e8
        coords[5:] = 0.0
    return beta.astype(np.float32)[:, None], coords.astype(np.float32), t_idx[:, None], splits


@pytest.mark.parametrize("kind", ["beta_0_and_1", "coincident", "huge", "everything"])
@pytest.mark.parametrize("implementation", OC_IMPLEMENTATIONS)
@pytest.mark.parametrize("use_average_cc_pos", [0.0, 0.9999])
def test_finite_on_extreme_inputs(kind, implementation, use_average_cc_pos):
    beta_np, coords_np, t_idx, splits = extreme_batch(kind)
    beta, coords = tf.Variable(beta_np), tf.Variable(coords_np)
    dist = tf.Variable(np.full((10, 1), 0.0, np.float32))  # d = 0: the 1e-4 keeps s finite
    with tf.GradientTape() as tape:
        terms = object_condensation_terms(beta, coords, t_idx, splits, q_min=1.0, implementation=implementation,
                                          use_average_cc_pos=use_average_cc_pos, dist=dist)
        terms.update(extra_condensation_terms(beta, t_idx, splits, q_min=1.0))
        loss = tf.add_n(list(terms.values()))
    for name, value in terms.items():
        assert np.isfinite(value.numpy()), name
    for variable, grad in zip(("beta", "ccoords", "dist"), tape.gradient(loss, [beta, coords, dist])):
        assert np.all(np.isfinite(tf.convert_to_tensor(grad).numpy())), variable


def test_unknown_implementation_names_the_valid_ones():
    batch = random_batch(0)
    with pytest.raises(ValueError, match="basic.*hinge"):
        object_condensation_terms(batch["beta"], batch["ccoords"], batch["t_idx"], batch["row_splits"],
                                  q_min=1.0, implementation="hinge_v2", use_average_cc_pos=0.5)


def test_no_retracing_across_batch_shapes():
    traces = []

    @tf.function(input_signature=[
        tf.TensorSpec([None, 1], tf.float32), tf.TensorSpec([None, 3], tf.float32),
        tf.TensorSpec([None, 1], tf.int32), tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([], tf.int32),
    ])
    def terms(beta, coords, t_idx, splits, implementation):
        traces.append(1)
        result = object_condensation_terms(beta, coords, t_idx, splits, q_min=1.0, implementation=implementation,
                                           use_average_cc_pos=0.5)
        result.update(extra_condensation_terms(beta, t_idx, splits, q_min=1.0))
        return result

    rng = np.random.default_rng(7)
    for call in range(20):
        n_events = int(rng.integers(1, 6))
        events = [list(rng.integers(-1, 4, size=int(rng.integers(0, 12)))) for _ in range(n_events)]
        batch = random_batch(call, events)
        result = terms(batch["beta"].astype(np.float32), batch["ccoords"].astype(np.float32), batch["t_idx"],
                       batch["row_splits"], call % 2)
        want = condensation_reference(batch["beta"].astype(np.float32), batch["ccoords"].astype(np.float32),
                                      batch["t_idx"], batch["row_splits"], q_min=1.0,
                                      implementation=OC_IMPLEMENTATIONS[call % 2], use_average_cc_pos=0.5)
        for name, value in want.items():
            np.testing.assert_allclose(result[name].numpy(), value, rtol=1e-4, atol=1e-6, err_msg=name)
    assert len(traces) == 1


def test_tracks_are_condensation_points_only_of_objects_without_calorimeter_hits():
    """Object 0: two calorimeter hits and a track of the highest β; object 1: a track alone."""
    beta = np.array([[0.3], [0.5], [0.9], [0.2]])
    t_idx = np.array([[0], [0], [0], [1]])
    is_track = np.array([[0.0], [0.0], [1.0], [1.0]])
    ccoords = np.zeros((4, 2))
    terms = object_condensation_terms(beta, ccoords, t_idx, np.array([0, 4]), q_min=1.0, implementation="hinge",
                                      use_average_cc_pos=0.0, is_track=is_track)
    # L_β = mean(1 − β_α) with α = hit 1 (not the track, hit 2) and hit 3 (the only hit of object 1).
    np.testing.assert_allclose(terms["beta"].numpy(), ((1 - 0.5) + (1 - 0.2)) / 2)
    without = object_condensation_terms(beta, ccoords, t_idx, np.array([0, 4]), q_min=1.0, implementation="hinge",
                                        use_average_cc_pos=0.0)
    np.testing.assert_allclose(without["beta"].numpy(), ((1 - 0.9) + (1 - 0.2)) / 2)


def test_event_normalisation_by_hand():
    """Two objects of two hits at distance 0.5 in one event of V = 5 (one noise hit far away); q_min = 1,
    β = 0, so q = 1: each hit of the other object pushes with R = 1 − 0.5 = 0.5."""
    beta = np.zeros((5, 1))
    t_idx = np.array([[0], [0], [1], [1], [-1]])
    ccoords = np.array([[0.0], [0.0], [0.5], [0.5], [100.0]])
    common = dict(q_min=1.0, implementation="hinge", use_average_cc_pos=0.0)
    per_event = object_condensation_terms(beta, ccoords, t_idx, np.array([0, 5]), repulsion_normalization="event",
                                          **common)
    per_object = object_condensation_terms(beta, ccoords, t_idx, np.array([0, 5]),
                                           repulsion_normalization="object", **common)
    push = 1.0 - np.sqrt(0.25 / (1.0 + 1e-4) + 1e-6)  # s = distance² / (d² + 1e−4), d = 1
    # event: (1/V) Σ_k Σ_{i∉k} q̄ q R = (2 objects × 2 hits × R) / 5; object: mean_k (2 R / 3 hits outside k).
    np.testing.assert_allclose(per_event["repulsive"].numpy(), 4 * push / 5, rtol=1e-6)
    np.testing.assert_allclose(per_object["repulsive"].numpy(), 2 * push / 3, rtol=1e-6)
