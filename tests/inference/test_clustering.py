"""Condensation clustering on hand-built events with known answers, and against a plain-loop reference."""

from __future__ import annotations

import numpy as np
import pytest

from gravtrain.inference import PredictedShowers, condensation_clusters, condense, shower_energies


def cluster(beta, ccoords, row_splits, dist=None, beta_threshold=0.5, distance_threshold=1.0):
    return condensation_clusters(np.asarray(beta, float), np.asarray(ccoords, float), np.asarray(row_splits),
                                 beta_threshold=beta_threshold, distance_threshold=distance_threshold, dist=dist)


def reference_clusters(beta, ccoords, row_splits, dist, beta_threshold, distance_threshold, is_track=None):
    """The algorithm written per event with plain loops and all pairwise distances."""
    ids = np.full(len(beta), -1)
    track = np.zeros(len(beta), bool) if is_track is None else np.asarray(is_track) > 0.5
    next_id = 0
    for start, stop in zip(row_splits[:-1], row_splits[1:]):
        calo = [i for i in range(start, stop) if not track[i]]
        candidates = sorted((i for i in calo if beta[i] > beta_threshold), key=lambda i: (-beta[i], i))
        for alpha in candidates:
            if ids[alpha] >= 0:
                continue
            for i in calo:
                if ids[i] < 0 and np.linalg.norm(ccoords[i] - ccoords[alpha]) <= distance_threshold * dist[alpha]:
                    ids[i] = next_id
            ids[alpha] = next_id
            next_id += 1
        for t in range(start, stop):
            if track[t] and calo:
                nearest = min(calo, key=lambda c: np.linalg.norm(ccoords[c] - ccoords[t]))
                ids[t] = ids[nearest]
    return ids


def test_two_separated_objects_and_noise():
    beta = [0.9, 0.2, 0.1, 0.8, 0.3, 0.05]
    ccoords = [[0, 0], [0.5, 0], [0, 0.5], [10, 10], [10.5, 10], [5, 5]]
    ids = cluster(beta, ccoords, [0, 6])
    np.testing.assert_array_equal(ids, [0, 0, 0, 1, 1, -1])
    assert ids.dtype == np.int64


def test_candidate_inside_another_radius_is_absorbed():
    beta = [0.7, 0.9, 0.6]
    ccoords = [[0.5, 0], [0, 0], [3, 0]]
    result = condense(beta, ccoords, [0, 3], beta_threshold=0.5, distance_threshold=1.0)
    assert isinstance(result, PredictedShowers) and result.n_showers == 2
    np.testing.assert_array_equal(result.cluster_ids, [0, 0, 1])
    np.testing.assert_array_equal(result.condensation_points, [1, 2])


def test_hits_are_taken_once_by_the_first_condensation_point():
    # Hit 1 lies within both radii; the higher-beta condensation point (hit 2) takes it first.
    beta = [0.6, 0.1, 0.9]
    ccoords = [[0, 0], [1.5, 0], [3, 0]]
    np.testing.assert_array_equal(cluster(beta, ccoords, [0, 3], distance_threshold=2.0), [1, 0, 0])


def test_threshold_is_strict_and_ties_go_to_the_lower_index():
    beta = [0.8, 0.8, 0.5]
    ccoords = [[0, 0], [0.5, 0], [5, 0]]
    result = condense(beta, ccoords, [0, 3], beta_threshold=0.5, distance_threshold=1.0)
    np.testing.assert_array_equal(result.cluster_ids, [0, 0, -1])
    np.testing.assert_array_equal(result.condensation_points, [0])


def test_event_without_candidates_and_empty_event():
    beta = [0.9, 0.1, 0.2, 0.3, 0.9]
    ccoords = [[0, 0], [0.1, 0], [0, 0], [0, 0], [0, 0]]
    row_splits = [0, 2, 4, 4, 5]  # event 1: no candidate; event 2: empty
    result = condense(beta, ccoords, row_splits, beta_threshold=0.5, distance_threshold=1.0)
    np.testing.assert_array_equal(result.cluster_ids, [0, 0, -1, -1, 1])
    np.testing.assert_array_equal(result.cluster_row_splits, [0, 1, 1, 1, 2])
    np.testing.assert_array_equal(result.condensation_points, [0, 4])


def test_all_events_empty():
    result = condense(np.zeros(0), np.zeros((0, 3)), [0, 0, 0], beta_threshold=0.5, distance_threshold=1.0)
    assert result.cluster_ids.shape == (0,) and result.n_showers == 0


def test_events_never_mix_even_with_coincident_coordinates():
    beta = [0.9, 0.1, 0.1, 0.95, 0.1]
    ccoords = np.zeros((5, 3))
    ids = cluster(beta, ccoords, [0, 3, 5])
    np.testing.assert_array_equal(ids, [0, 0, 0, 1, 1])


def test_radius_scales_with_dist_of_the_condensation_point():
    beta = [0.9, 0.1, 0.8, 0.1]
    ccoords = [[0, 0], [1.5, 0], [10, 0], [11.5, 0]]
    dist = np.array([[2.0], [0.1], [1.0], [5.0]])  # (V, 1) accepted; only d of the condensation point counts
    np.testing.assert_array_equal(cluster(beta, ccoords, [0, 4], dist=dist), [0, 0, 1, -1])
    np.testing.assert_array_equal(cluster(beta, ccoords, [0, 4], dist=None), [0, -1, 1, -1])
    np.testing.assert_array_equal(cluster(beta, ccoords, [0, 4], dist=dist, distance_threshold=0.5),
                                  [0, -1, 1, -1])


def test_hit_at_exactly_the_radius_is_taken_and_zero_radius_keeps_only_the_point():
    beta = [0.9, 0.1, 0.1]
    ccoords = [[0, 0], [1, 0], [0, 0]]
    np.testing.assert_array_equal(cluster(beta, ccoords, [0, 3], distance_threshold=1.0), [0, 0, 0])
    np.testing.assert_array_equal(cluster(beta, ccoords, [0, 3], dist=np.zeros(3)), [0, -1, 0])


@pytest.mark.parametrize("seed", range(5))
def test_matches_plain_loop_reference_and_condensation_point_has_highest_beta(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 60, size=4)
    row_splits = np.concatenate([[0], np.cumsum(sizes)])
    n = int(row_splits[-1])
    beta, ccoords, dist = rng.uniform(size=n), rng.normal(size=(n, 3)), rng.uniform(0.2, 1.5, size=n)
    beta[rng.integers(0, max(n, 1), size=n // 5)] = 0.75  # exact ties
    is_track = (rng.uniform(size=n) < 0.2) if seed % 2 else None
    result = condense(beta[:, None], ccoords, row_splits, beta_threshold=0.6, distance_threshold=0.8, dist=dist,
                      is_track=is_track)
    expected = reference_clusters(beta, ccoords, row_splits, dist, 0.6, 0.8, is_track)
    np.testing.assert_array_equal(result.cluster_ids, expected)
    for shower, point in enumerate(result.condensation_points):
        members = np.flatnonzero(result.cluster_ids == shower)
        if is_track is not None:
            members = members[~is_track[members]]
        assert point == members[np.argmax(beta[members])]


def test_tracks_never_seed_and_join_the_shower_of_their_nearest_calorimeter_hit():
    # Hits 0-1: a shower; hit 2: a track of β 0.99 beside it; hit 3: a track near the noise hit 4 (β 0.1);
    # hit 5: a track in an event of tracks alone.
    beta = [0.9, 0.2, 0.99, 0.99, 0.1, 0.99]
    ccoords = [[0, 0], [0.5, 0], [3, 0], [20, 0], [21, 0], [0, 0]]
    is_track = [0, 0, 1, 1, 0, 1]
    result = condense(np.array(beta), np.array(ccoords, float), [0, 5, 6], beta_threshold=0.5,
                      distance_threshold=1.0, is_track=is_track)
    np.testing.assert_array_equal(result.cluster_ids, [0, 0, 0, -1, -1, -1])
    np.testing.assert_array_equal(result.condensation_points, [0])


def test_shower_energy_is_hit_sum_times_correction_at_condensation_point():
    beta = [0.9, 0.2, 0.8, 0.1]
    ccoords = [[0, 0], [0.1, 0], [9, 9], [20, 20]]
    result = condense(beta, ccoords, [0, 4], beta_threshold=0.5, distance_threshold=1.0)
    energy = np.array([[2.0], [3.0], [4.0], [100.0]])
    np.testing.assert_allclose(shower_energies(energy, result), [5.0, 4.0])
    np.testing.assert_allclose(shower_energies(energy, result, energy_corr=[1.5, 7.0, 0.5, 9.0]), [7.5, 2.0])


@pytest.mark.parametrize("bad", [
    dict(beta=[0.9, np.nan], ccoords=[[0, 0], [1, 1]], row_splits=[0, 2]),
    dict(beta=[0.9, 0.1], ccoords=[[0, 0], [1, 1]], row_splits=[0, 1]),
    dict(beta=[0.9, 0.1, 0.3], ccoords=[[0, 0], [1, 1]], row_splits=[0, 2]),
    dict(beta=[0.9, 0.1], ccoords=[[0, 0], [1, 1]], row_splits=[0, 2], dist=[-1.0, 1.0]),
])
def test_bad_inputs_raise(bad):
    with pytest.raises(ValueError):
        condense(**bad, beta_threshold=0.5, distance_threshold=1.0)
