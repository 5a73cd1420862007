"""The toy calorimeter: reproducibility, event content and truth consistency."""

from __future__ import annotations

import numpy as np
import pytest

from gravtrain.data import (FEATURE_NAMES, NOISE_INDEX, PID_NAMES, TRUTH_DTYPES, TRUTH_WIDTHS, simulate_events,
                            simulate_toy_datasets, validate_event_arrays)
from gravtrain.data.geometry import default_geometry
from gravtrain.data.names import FEATURE_INDEX


def _assert_stores_equal(a, b):
    np.testing.assert_array_equal(a.row_splits, b.row_splits)
    np.testing.assert_array_equal(a.features, b.features)
    for name in TRUTH_WIDTHS:
        np.testing.assert_array_equal(a.truth[name], b.truth[name])


def test_same_seed_gives_identical_events():
    _assert_stores_equal(simulate_events(4, seed=7), simulate_events(4, seed=7))


def test_different_seed_gives_different_events():
    a, b = simulate_events(4, seed=7), simulate_events(4, seed=8)
    assert a.n_hits != b.n_hits or not np.array_equal(a.features, b.features)


def test_an_event_depends_on_seed_and_number_only():
    whole = simulate_events(5, seed=3, n_particles=(1, 3))
    _assert_stores_equal(simulate_events(3, seed=3, n_particles=(1, 3), first_event=2), whole.select([2, 3, 4]))


def test_train_and_validation_are_independent_streams():
    train, val = simulate_toy_datasets(n_train_events=3, n_val_events=2, n_particles=(1, 2), seed=1)
    assert (train.n_events, val.n_events) == (3, 2)
    assert not np.array_equal(train.event(0)["features"], val.event(0)["features"])
    _, val_again = simulate_toy_datasets(n_train_events=1, n_val_events=2, n_particles=(1, 2), seed=1)
    _assert_stores_equal(val, val_again)


def test_arrays_have_the_declared_names_shapes_and_dtypes(default_store):
    store = default_store
    assert store.features.shape == (store.n_hits, len(FEATURE_NAMES))
    assert store.features.dtype == np.float32 and store.row_splits.dtype == np.int64
    for name, width in TRUTH_WIDTHS.items():
        assert store.truth[name].shape == (store.n_hits, width)
        assert store.truth[name].dtype == TRUTH_DTYPES[name]
    validate_event_arrays(store.features, store.truth, store.row_splits)


def test_default_events_hold_a_few_thousand_hits(default_store):
    assert 1500 < default_store.event_sizes.mean() < 4500


def test_truth_is_consistent_per_object(default_store):
    for i in range(default_store.n_events):
        event = default_store.event(i)
        t_idx = event["t_idx"][:, 0]
        noise = t_idx == NOISE_INDEX
        assert t_idx.max() < default_store.event_info["n_particles"][i]
        assert (event["t_pid"][noise] == 0).all() and (event["t_energy"][noise] == 0).all()
        np.testing.assert_array_equal(event["t_pid"][~noise].sum(axis=1), 1.0)
        for obj in np.unique(t_idx[~noise]):
            rows = t_idx == obj
            assert event["t_is_unique"][rows].sum() == 1
            for name in ("t_energy", "t_pos", "t_time", "t_pid", "t_fully_contained", "t_rec_energy"):
                assert (event[name][rows] == event[name][rows][0]).all(), name


def test_hits_pass_zero_suppression(default_store):
    geometry = default_geometry()
    calo = default_store.features[:, FEATURE_INDEX["is_track"]] == 0
    layer = np.searchsorted(geometry.sensor_z_cm, default_store.features[calo, FEATURE_INDEX["z"]] - 1e-3)
    assert (default_store.features[calo, FEATURE_INDEX["energy"]] >= geometry.threshold_gev[layer] * 0.999).all()


def test_one_track_row_per_charged_particle_only_when_asked():
    charged = ("muon", "electron", "charged_hadron")
    with_tracks = simulate_events(6, seed=2, noise_hits=0)
    is_track = with_tracks.features[:, FEATURE_INDEX["is_track"]] == 1
    assert is_track.sum() == with_tracks.event_info["n_tracks"].sum() > 0
    for i in range(with_tracks.n_events):
        event = with_tracks.event(i)
        tracks = event["features"][:, FEATURE_INDEX["is_track"]] == 1
        assert len(np.unique(event["t_idx"][tracks, 0])) == tracks.sum()
        pid = np.array(PID_NAMES)[event["t_pid"][tracks].argmax(axis=1)]
        assert np.isin(pid, charged + ("ambiguous",)).all()
        assert (event["features"][tracks, FEATURE_INDEX["hit_size"]] == 0).all()
    without = simulate_events(6, seed=2, noise_hits=0, tracks=False)
    assert (without.features[:, FEATURE_INDEX["is_track"]] == 0).all()


def test_spectators_are_a_small_share_of_object_hits(default_store):
    is_object = default_store.truth["t_idx"][:, 0] >= 0
    share = default_store.truth["t_spectator"][is_object].mean()
    assert 0.0 < share < 0.15


@pytest.mark.parametrize("bad", [dict(n_particles=(3, 2)), dict(n_particles=(0, 2)), dict(energy_range=(5.0, 1.0))])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        simulate_events(1, **bad)


def test_unknown_species_is_refused():
    with pytest.raises(ValueError, match="unknown species"):
        simulate_events(1, species=("gluon",))


def test_a_muons_truth_energy_is_its_deposit_unless_true_muon_momentum():
    """The field's convention (its CMSSW converter with ``use_true_muon_momentum`` off): a muon's t_energy is
    what it left in recorded hits; ``true_muon_momentum=True`` gives its true energy. Nothing else changes."""
    kwargs = dict(n_particles=(4, 6), energy_range=(5.0, 50.0), noise_hits=5, seed=11, species=("muon", "photon"))
    field, true = simulate_events(6, **kwargs), simulate_events(6, true_muon_momentum=True, **kwargs)
    np.testing.assert_array_equal(field.features, true.features)
    muon_rows = (field.truth["t_pid"][:, PID_NAMES.index("muon")] > 0.5) & (field.truth["t_idx"][:, 0] >= 0)
    assert muon_rows.sum() > 0 and (~muon_rows & (field.truth["t_idx"][:, 0] >= 0)).sum() > 0
    np.testing.assert_array_equal(field.truth["t_energy"][muon_rows], field.truth["t_rec_energy"][muon_rows])
    assert np.all(true.truth["t_energy"][muon_rows] > 2.0 * true.truth["t_rec_energy"][muon_rows])
    np.testing.assert_array_equal(field.truth["t_energy"][~muon_rows], true.truth["t_energy"][~muon_rows])
    for name in TRUTH_WIDTHS:
        if name != "t_energy":
            np.testing.assert_array_equal(field.truth[name], true.truth[name])
