"""Physics sanity of the toy calorimeter: response, shower depth, noise and overlap."""

from __future__ import annotations

import numpy as np
import pytest

from gravtrain.data import NOISE_INDEX, simulate_events
from gravtrain.data.names import FEATURE_INDEX

ENERGY, Z = FEATURE_INDEX["energy"], FEATURE_INDEX["z"]


def _single_particles(species: str, n_events: int, seed: int):
    return simulate_events(n_events, species=(species,), n_particles=(1, 1), energy_range=(2.0, 200.0),
                           noise_hits=0, tracks=False, seed=seed)


@pytest.fixture(scope="module")
def photons():
    return _single_particles("photon", 60, seed=21)


@pytest.fixture(scope="module")
def pions():
    return _single_particles("charged_pion", 60, seed=22)


def _deposited_and_true(store):
    deposited = np.add.reduceat(store.features[:, ENERGY], store.row_splits[:-1])
    true = store.truth["t_energy"][store.row_splits[:-1], 0]
    return deposited, true


def _mean_depth_cm(store):
    """Energy-weighted mean depth of each event's hits behind the calorimeter front (cm)."""
    energy, z = store.features[:, ENERGY], store.features[:, Z] - 320.0
    return np.add.reduceat(energy * z, store.row_splits[:-1]) / np.add.reduceat(energy, store.row_splits[:-1])


def test_em_deposit_tracks_particle_energy_with_a_constant_fraction(photons):
    deposited, true = _deposited_and_true(photons)
    assert np.corrcoef(deposited, true)[0, 1] > 0.99
    ratio = deposited / true
    assert 0.85 < ratio.mean() < 1.05
    high = true > 20.0
    assert ratio[high].std() / ratio[high].mean() < 0.06  # stochastic term ~20 %/sqrt(E)


def test_hadron_deposit_is_linear_but_lower_and_broader(photons, pions):
    deposited, true = _deposited_and_true(pions)
    assert np.corrcoef(deposited, true)[0, 1] > 0.9
    em_ratio = np.mean(np.divide(*_deposited_and_true(photons)))
    hadron_ratio = deposited / true
    assert 0.4 < hadron_ratio.mean() < em_ratio  # non-compensating: e/h > 1
    high = true > 20.0
    assert hadron_ratio[high].std() > np.divide(*_deposited_and_true(photons))[high].std()


def test_em_showers_are_shorter_than_hadronic_ones(photons, pions):
    assert np.median(_mean_depth_cm(photons)) < 0.5 * np.median(_mean_depth_cm(pions))


@pytest.mark.parametrize("noise_hits", [0, 150])
def test_noise_count_is_as_configured(noise_hits):
    store = simulate_events(40, n_particles=(1, 2), energy_range=(1.0, 10.0), noise_hits=noise_hits, seed=4)
    per_event = np.add.reduceat(store.truth["t_idx"][:, 0] == NOISE_INDEX, store.row_splits[:-1])
    np.testing.assert_array_equal(per_event, store.event_info["n_noise_hits"])
    # Poisson mean noise_hits: the 40-event mean lies within ~5 sigma (a few cells collide with showers).
    assert abs(per_event.mean() - noise_hits) <= 5 * np.sqrt(max(noise_hits, 1) / 40) + 0.01 * noise_hits


def test_showers_overlap_in_multi_particle_events():
    store = simulate_events(10, n_particles=(6, 10), seed=9)
    assert (store.event_info["n_shared_hits"] > 0).mean() > 0.8
    # Seen from the truth alone: an object's deposit in recorded hits exceeds the energy of the hits it won.
    shared_objects = 0
    for i in range(store.n_events):
        event = store.event(i)
        calo = event["features"][:, FEATURE_INDEX["is_track"]] == 0
        t_idx = event["t_idx"][calo, 0]
        for obj in np.unique(t_idx[t_idx >= 0]):
            rows = t_idx == obj
            won = event["features"][calo][rows, ENERGY].sum()
            shared_objects += event["t_rec_energy"][calo][rows][0, 0] > 1.02 * won
    assert shared_objects > 0
