"""Fixtures of the model tests: small configs, toy events and their feature statistics."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from gravtrain.config.schema import Config
from gravtrain.data import FeatureStats, simulate_events

SMALL = {
    "General": {"name": "small", "seed": 3},
    "Architecture": {
        "gravnet": [{"n": 6, "n_filters": 16, "n_propagate": 8}, {"n": 4, "n_filters": 16, "n_propagate": 8}],
        "message_passing": [{"n": 8}, {"n": 8}],
        "dense_pre_gravnet": [{"n": 16}, {"n": 16}],
        "dense_post_message_passing": [{"n": 16}],
        "dense_final": [{"n": 16}],
        "n_embedding": 8,
    },
    "Training": [{"epochs": 1, "batch_size": 5000, "learning_rate": 1e-3}],
}


def small_config(**changes) -> Config:
    """SMALL with ``changes`` as {"Section.key": value} applied."""
    data = copy.deepcopy(SMALL)
    for path, value in changes.items():
        section, key = path.split(".")
        data.setdefault(section, {})[key] = value
    return Config.from_dict(data)


@pytest.fixture(scope="session")
def toy_store():
    """12 light toy events (1-3 particles, 20 noise hits, tracks on)."""
    return simulate_events(12, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=20, seed=21)


@pytest.fixture(scope="session")
def toy_stats(toy_store):
    return FeatureStats.from_store(toy_store)


@pytest.fixture(scope="session")
def toy_batch(toy_store):
    """All 12 events as one batch: {"features": (V, F) float32, "row_splits": (13,) int32}."""
    batch = toy_store.gather(np.arange(toy_store.n_events))
    return {"features": batch["features"], "row_splits": batch["row_splits"].astype(np.int32)}
