"""Fixtures of the data tests: small simulated stores, made once per session (about a second in all)."""

from __future__ import annotations

import pytest

from gravtrain.data import EventStore, simulate_events


@pytest.fixture(scope="session")
def default_store() -> EventStore:
    """30 events at the default toy settings (2-10 particles, 1-200 GeV, 200 noise hits, tracks)."""
    return simulate_events(30, seed=11)


@pytest.fixture(scope="session")
def small_store() -> EventStore:
    """40 light events (1-3 particles of 1-20 GeV, 20 noise hits): quick to batch and to write."""
    return simulate_events(40, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=20, seed=5)
