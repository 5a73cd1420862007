"""Energy-weighted IoU against a plain-loop reference, and the Hungarian assignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gravtrain.inference import energy_weighted_iou, match_showers, truth_objects


def reference_iou(object_ids, cluster_ids, energy, n_objects, n_showers):
    iou = np.zeros((n_objects, n_showers))
    for t in range(n_objects):
        for s in range(n_showers):
            in_t, in_s = object_ids == t, cluster_ids == s
            union = energy[in_t | in_s].sum()
            iou[t, s] = energy[in_t & in_s].sum() / union if union > 0 else 0.0
    return iou


def random_batch(rng, n_events=3):
    sizes = rng.integers(0, 25, size=n_events)
    row_splits = np.concatenate([[0], np.cumsum(sizes)])
    t_idx, cluster_ids, next_shower = [], [], 0
    for size in sizes:
        t_idx.append(rng.integers(-1, 4, size=size))
        n_showers = int(rng.integers(0, 5))
        local = rng.integers(-1, n_showers, size=size) if n_showers else np.full(size, -1)
        cluster_ids.append(np.where(local >= 0, local + next_shower, -1))
        next_shower += n_showers
    return (np.concatenate(t_idx), np.concatenate(cluster_ids), rng.uniform(0.1, 5.0, size=row_splits[-1]),
            row_splits, next_shower)


def test_truth_objects_are_numbered_event_by_event():
    t_idx = np.array([[3], [-1], [0], [3], [0], [2], [-1]])
    objects = truth_objects(t_idx, [0, 4, 7])
    np.testing.assert_array_equal(objects.object_ids, [1, -1, 0, 1, 2, 3, -1])
    np.testing.assert_array_equal(objects.first_hits, [2, 0, 4, 5])
    np.testing.assert_array_equal(objects.object_event, [0, 0, 1, 1])


@pytest.mark.parametrize("seed", range(10))
def test_iou_matches_plain_loop_reference(seed):
    t_idx, cluster_ids, energy, row_splits, n_showers = random_batch(np.random.default_rng(seed))
    objects = truth_objects(t_idx, row_splits)
    iou = energy_weighted_iou(objects.object_ids, cluster_ids, energy, n_objects=objects.n_objects,
                              n_showers=n_showers)
    expected = reference_iou(objects.object_ids, cluster_ids, energy, objects.n_objects, n_showers)
    np.testing.assert_allclose(iou.toarray(), expected, rtol=1e-12, atol=1e-15)


# Object A = hits 0, 1 (5 GeV); object B = hit 2 (1 GeV); shower X = hits 0, 2; shower Y = hit 1.
# IoU(A, X) = 3/6 = 0.5, IoU(A, Y) = 2/5 = 0.4, IoU(B, X) = 1/4 = 0.25, IoU(B, Y) = 0.
T_IDX, CLUSTERS, ENERGY = np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([3.0, 2.0, 1.0])


def test_hungarian_maximises_total_iou_not_greedily():
    matches = match_showers(T_IDX, CLUSTERS, ENERGY, [0, 3], iou_threshold=0.1)
    assert dict(zip(matches.matched_objects.tolist(), matches.matched_showers.tolist())) == {0: 1, 1: 0}
    np.testing.assert_allclose(matches.iou, [0.4, 0.25])


def test_threshold_drops_pairs_before_assignment():
    matches = match_showers(T_IDX, CLUSTERS, ENERGY, [0, 3], iou_threshold=0.3)
    assert dict(zip(matches.matched_objects.tolist(), matches.matched_showers.tolist())) == {0: 0}
    assert match_showers(T_IDX, CLUSTERS, ENERGY, [0, 3], iou_threshold=0.6).n_matched == 0


def test_zero_threshold_never_matches_pairs_without_overlap():
    matches = match_showers([0, 1], [0, 1], [1.0, 1.0], [0, 1, 2], iou_threshold=0.0)
    assert sorted(zip(matches.matched_objects.tolist(), matches.matched_showers.tolist())) == [(0, 0), (1, 1)]
    matches = match_showers([0, -1], [-1, 0], [1.0, 1.0], [0, 2], iou_threshold=0.0)
    assert matches.n_matched == 0 and matches.n_showers == 1 and matches.truth.n_objects == 1


@pytest.mark.parametrize("seed", range(10))
def test_assignment_is_optimal_one_to_one_and_within_events(seed):
    t_idx, cluster_ids, energy, row_splits, n_showers = random_batch(np.random.default_rng(100 + seed))
    matches = match_showers(t_idx, cluster_ids, energy, row_splits, iou_threshold=0.1, n_showers=n_showers)
    objects = matches.truth
    iou = reference_iou(objects.object_ids, cluster_ids, energy, objects.n_objects, n_showers)
    iou[iou < 0.1] = 0
    assert len(set(matches.matched_objects)) == len(set(matches.matched_showers)) == matches.n_matched
    assert np.all(matches.iou >= 0.1)
    np.testing.assert_allclose(matches.iou, iou[matches.matched_objects, matches.matched_showers])
    hit_event = np.repeat(np.arange(len(row_splits) - 1), np.diff(row_splits))
    shower_event = {int(c): int(e) for c, e in zip(cluster_ids, hit_event) if c >= 0}
    for obj, shower in zip(matches.matched_objects, matches.matched_showers):
        assert objects.object_event[obj] == shower_event[int(shower)]
    # Brute force, per event, over all one-to-one pairings gives the same best total.
    best = 0.0
    for start, stop in zip(row_splits[:-1], row_splits[1:]):
        rows = np.unique(objects.object_ids[start:stop][objects.object_ids[start:stop] >= 0])
        cols = np.unique(cluster_ids[start:stop][cluster_ids[start:stop] >= 0])
        small = iou[np.ix_(rows, cols)] if len(rows) <= len(cols) else iou[np.ix_(rows, cols)].T
        best += max((small[np.arange(small.shape[0]), list(perm)].sum()
                     for perm in itertools.permutations(range(small.shape[1]), small.shape[0])), default=0.0)
    np.testing.assert_allclose(matches.iou.sum(), best, rtol=1e-12, atol=1e-12)
