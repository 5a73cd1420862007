"""Checks and conversions for the ragged per-hit NumPy arrays that inference reads.

A batch of E events holds V hits in all; ``row_splits`` (E+1,) delimits them: the hits of event ``e`` are
rows ``row_splits[e]:row_splits[e+1]``.
"""

from __future__ import annotations

import numpy as np


def checked_row_splits(row_splits, n_hits: int) -> np.ndarray:
    """``row_splits`` as int64 (E+1,), after checking it starts at 0, never decreases and ends at ``n_hits``."""
    splits = np.asarray(row_splits).reshape(-1)
    if splits.size == 0 or not np.issubdtype(splits.dtype, np.integer):
        raise ValueError(f"row_splits must be a non-empty 1-D integer array, got {splits.dtype} of shape "
                         f"{np.shape(row_splits)}")
    splits = splits.astype(np.int64)
    if splits[0] != 0 or splits[-1] != n_hits or np.any(np.diff(splits) < 0):
        raise ValueError(f"row_splits must start at 0, never decrease and end at the number of hits ({n_hits}); "
                         f"got {splits[:3].tolist()}...{splits[-3:].tolist()}")
    return splits


def per_hit_vector(values, n_hits: int, name: str, *, dtype=np.float64) -> np.ndarray:
    """A per-hit quantity given as (V,) or (V, 1), returned as a (V,) array of ``dtype``."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.shape != (n_hits,):
        raise ValueError(f"{name} must have shape ({n_hits},) or ({n_hits}, 1), got {np.shape(values)}")
    return array.astype(dtype, copy=False)


def event_of_hit(row_splits: np.ndarray) -> np.ndarray:
    """(V,) int64: the index of the event each hit belongs to."""
    return np.repeat(np.arange(len(row_splits) - 1, dtype=np.int64), np.diff(row_splits))
