"""Feature standardisation from the training set: streamed, serialisable, robust to constant features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gravtrain.data import FEATURE_NAMES, FeatureStats, simulate_events
from gravtrain.data.conditioning import ASINH_FEATURES, asinh_transform
from gravtrain.data.names import FEATURE_INDEX


def test_streamed_statistics_equal_the_full_ones(small_store):
    full = small_store.features.astype(np.float64)
    energy = FEATURE_INDEX["energy"]
    full[:, energy] = np.arcsinh(full[:, energy] / ASINH_FEATURES["energy"])
    for events_per_chunk in (1, 7, 1000):
        stats = FeatureStats.from_store(small_store, events_per_chunk=events_per_chunk)
        np.testing.assert_allclose(stats.mean, full.mean(axis=0), rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(stats.std, full.std(axis=0), rtol=1e-8, atol=1e-10)
        assert stats.n_hits == small_store.n_hits and stats.names == FEATURE_NAMES


def test_standardised_training_features_have_zero_mean_unit_std(small_store):
    standardised = FeatureStats.from_store(small_store).standardise(small_store.features)
    assert standardised.dtype == np.float32
    np.testing.assert_allclose(standardised.mean(axis=0, dtype=np.float64), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(axis=0, dtype=np.float64), 1.0, rtol=1e-3)


def test_round_trip_through_a_json_dict(small_store):
    stats = FeatureStats.from_store(small_store)
    again = FeatureStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    np.testing.assert_array_equal(again.mean, stats.mean)
    np.testing.assert_array_equal(again.std, stats.std)
    np.testing.assert_array_equal(again.asinh_scale, stats.asinh_scale)
    assert (again.names, again.n_hits) == (stats.names, stats.n_hits)


def test_zero_variance_feature_gets_scale_one():
    store = simulate_events(3, n_particles=(1, 2), noise_hits=5, tracks=False, seed=1)
    stats = FeatureStats.from_store(store)
    is_track = FEATURE_INDEX["is_track"]
    assert stats.std[is_track] == 0.0 and stats.scale[is_track] == 1.0
    standardised = stats.standardise(store.features)
    assert np.isfinite(standardised).all() and (standardised[:, is_track] == 0).all()


def test_bad_dicts_are_refused():
    with pytest.raises(ValueError, match="names"):
        FeatureStats.from_dict({"names": ["a", "b"], "mean": [0.0], "std": [1.0], "n_hits": 3})
    with pytest.raises(ValueError, match="std >= 0"):
        FeatureStats.from_dict({"names": ["a"], "mean": [0.0], "std": [-1.0], "n_hits": 3})


def test_asinh_transform_is_linear_below_the_scale_and_logarithmic_above():
    scale = np.array([0.01, 0.0])
    x = np.array([[-2.0, -2.0], [1e-5, 1e-5], [0.0, 0.0], [100.0, 100.0]])
    t = asinh_transform(x, scale)
    np.testing.assert_array_equal(t[:, 1], x[:, 1])  # scale 0: untouched
    assert t[0, 0] == pytest.approx(-np.log(2 * 200.0), rel=1e-5)  # odd, defined for negative energies
    assert t[1, 0] == pytest.approx(1e-3, rel=1e-6) and t[2, 0] == 0.0
    assert t[3, 0] == pytest.approx(np.log(2 * 1e4), rel=1e-8)


def test_compressed_energy_spreads_the_calorimeter_cells(small_store):
    """The reason for the transform: linearly standardised, the cells' energies are a sliver next to tracks."""
    energy = FEATURE_INDEX["energy"]
    cells = small_store.features[:, FEATURE_INDEX["is_track"]] < 0.5
    linear = FeatureStats.from_feature_chunks([small_store.features]).standardise(small_store.features)
    compressed = FeatureStats.from_store(small_store).standardise(small_store.features)
    spread = [np.subtract(*np.percentile(z[cells, energy], [99, 1])) for z in (linear, compressed)]
    assert spread[0] < 1.0 < spread[1]
