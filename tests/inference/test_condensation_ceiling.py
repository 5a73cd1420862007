"""``benchmarks/condensation_ceiling.py``: its oracle clustering and neighbour distances, against hand-made
events (the benchmark itself needs a trained model; its JSON is described in its docstring)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SPEC = importlib.util.spec_from_file_location(
    "condensation_ceiling", Path(__file__).resolve().parents[2] / "benchmarks" / "condensation_ceiling.py")
ceiling = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ceiling)


def test_oracle_clusters_join_the_nearest_true_seed_of_the_same_event_only():
    # Event 0: objects 0 and 1 with seeds at x = 0 and x = 1, a noise hit and a track; event 1: object 0 alone.
    coords = np.array([[0.0], [0.1], [1.0], [0.9], [5.0], [0.05], [0.0], [0.2]])
    t_idx = np.array([0, 0, 1, 1, -1, 0, 0, 0])
    unique = np.array([1, 0, 1, 0, 0, 0, 1, 0], bool)
    track = np.array([0, 0, 0, 0, 0, 1, 0, 0], bool)
    ids = ceiling.oracle_clusters(coords, t_idx, unique, track, np.array([0, 6, 8]), distance=0.5)
    assert ids.tolist() == [0, 0, 1, 1, -1, -1, 2, 2]  # the far hit and the track join nothing
    # A hit of object 1 placed near object 0's seed joins object 0: the oracle uses the coordinates only.
    coords[3] = [0.2]
    assert ceiling.oracle_clusters(coords, t_idx, unique, track, np.array([0, 6, 8]), 0.5)[3] == 0


def test_nearest_neighbour_distance_stays_inside_each_event_and_wraps_phi():
    eta = np.array([0.0, 0.0, 0.3, 2.0])
    phi = np.array([3.1, -3.1, 3.1, 0.0])
    seeds = np.array([0, 1, 2, 3])
    events = np.array([0, 0, 0, 1])
    distance = ceiling.nearest_neighbour_distance(eta, phi, seeds, events)
    wrap = 2 * np.pi - 6.2
    np.testing.assert_allclose(distance[:3], [wrap, wrap, 0.3])
    assert distance[3] == np.inf  # alone in its event


def test_failure_modes_by_hand():
    # One event. Objects: 0 (10 GeV, found), 1 (8 GeV, merged into 0's shower), 2 (6 GeV, a third in shower 1,
    # a third in shower 2, a third unclustered: split), 3 (5 GeV, not clustered). Showers: 0 = objects 0 + 1
    # (matched to 0), 1 and 2 = pieces of object 2 (fakes), 3 = 1 GeV of object 0 and 3 GeV of noise.
    object_ids = np.array([0, 0, 1, 2, 2, 2, 3, -1, 0])
    cluster_ids = np.array([0, 0, 0, 1, 2, -1, -1, 3, 3])
    deposits = np.array([5.0, 4.0, 8.0, 2.0, 2.0, 2.0, 5.0, 3.0, 1.0])
    failures = ceiling.failure_modes(object_ids, cluster_ids, deposits, np.array([0]), np.array([0]),
                                     np.ones(4, bool), np.ones(4, bool), species=np.array(["a", "b", "b", "c"]))
    assert failures["lost"] == {"merged": 1, "split": 1, "not clustered": 1}
    assert failures["lost_by_species"] == {"b": {"merged": 1, "split": 1}, "c": {"not clustered": 1}}
    assert failures["fakes"] == {"piece of a lost object": 2, "mostly noise": 1}
    assert (failures["n_lost"], failures["n_fakes"]) == (3, 3)
