"""Random ragged batches for the loss tests: every awkward event shape the loss must handle.

The events of :data:`EVENT_T_IDX` (object ids deliberately not contiguous) are, in order: a mixed event with
an object of one hit, an empty event, an event without objects, an event without noise, an event that is a
single object (V = N_k), an event of a single one-hit object, and another mixed event.
"""

from __future__ import annotations

import numpy as np
import pytest

EVENT_T_IDX = (
    [2, 2, 5, -1, 9, 2, -1, 5],
    [],
    [-1, -1, -1],
    [0, 0, 1, 1, 1],
    [4, 4, 4],
    [0],
    [1, -1, 0, 0, 1, 3, -1, 3, 3],
)
N_CLASSES = 6


def random_batch(seed: int, event_t_idx=EVENT_T_IDX, n_coords: int = 3) -> dict:
    """Inputs of the loss as float64 NumPy arrays (t_idx int32, row_splits int64); hits shuffled per event."""
    rng = np.random.default_rng(seed)
    t_idx = np.concatenate([rng.permutation(np.asarray(event, dtype=np.int32)) for event in event_t_idx])
    row_splits = np.concatenate([[0], np.cumsum([len(event) for event in event_t_idx])]).astype(np.int64)
    n_hits = len(t_idx)
    is_noise = t_idx < 0
    true_class = rng.integers(0, N_CLASSES, size=n_hits)
    t_pid = np.eye(N_CLASSES)[true_class] * (~is_noise)[:, None]
    logits = rng.normal(size=(n_hits, N_CLASSES))
    return {
        "beta": rng.uniform(0.02, 0.98, size=(n_hits, 1)),
        "ccoords": rng.normal(size=(n_hits, n_coords)),
        "dist": rng.uniform(0.5, 1.5, size=(n_hits, 1)),
        "spectator": rng.uniform(0.0, 1.0, size=(n_hits, 1)) * (rng.uniform(size=(n_hits, 1)) < 0.4),
        # About a quarter of the rows are tracks, so some objects have a track of high β and some (one-hit
        # objects) are tracks alone.
        "is_track": (rng.uniform(size=(n_hits, 1)) < 0.25).astype(np.float64),
        "t_idx": t_idx[:, None],
        "row_splits": row_splits,
        "predictions": {
            "energy_corr": rng.uniform(0.5, 1.5, size=(n_hits, 1)),
            "energy_low_quantile": rng.normal(scale=0.2, size=(n_hits, 1)),
            "energy_high_quantile": rng.normal(scale=0.2, size=(n_hits, 1)),
            "pos": rng.normal(scale=10.0, size=(n_hits, 2)),
            "time": rng.uniform(0.5, 2.0, size=(n_hits, 1)),
            "time_unc": rng.uniform(0.1, 2.0, size=(n_hits, 1)),
            "pid": np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True),
        },
        "truth": {
            "t_energy": np.where(is_noise, 0.0, rng.uniform(1.0, 50.0, size=n_hits))[:, None],
            "t_rec_energy": np.where(is_noise, 0.0, rng.uniform(0.5, 50.0, size=n_hits))[:, None],
            "t_pos": rng.normal(scale=10.0, size=(n_hits, 3)),
            "t_time": rng.uniform(0.5, 2.0, size=(n_hits, 1)),
            "t_pid": t_pid,
        },
    }


@pytest.fixture
def make_batch():
    return random_batch
