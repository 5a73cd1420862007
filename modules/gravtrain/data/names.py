"""The names, widths and dtypes of the per-hit arrays: the one definition every room imports.

A batch (and a shard on disk) holds, for V hits:

- ``features`` (V, F) float32, the columns named by :data:`FEATURE_NAMES` in that order;
- one truth array per entry of :data:`TRUTH_WIDTHS`, shape (V, width), dtype :data:`TRUTH_DTYPES`;
- ``row_splits`` (E+1,): the hits of event ``i`` are rows ``row_splits[i]:row_splits[i+1]``.

Units of the features: ``energy`` GeV (calibrated to the electromagnetic scale; for a track the
momentum), ``eta`` and ``theta`` (rad) of the hit position seen from the origin, ``is_track`` 0/1,
``R``, ``x``, ``y``, ``z`` cm, ``time`` ns, ``hit_size`` cm (the cell's edge length, 0 for a track).
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "energy", "eta", "is_track", "theta", "R", "x", "y", "z", "time", "hit_size",
)
N_FEATURES = len(FEATURE_NAMES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}

PID_NAMES: tuple[str, ...] = (
    "muon", "electron", "photon", "charged_hadron", "neutral_hadron", "ambiguous",
)
PID_INDEX: dict[str, int] = {name: i for i, name in enumerate(PID_NAMES)}

# name -> number of columns. t_idx: object index in its event (0..n-1), -1 for noise;
# t_energy GeV (true energy of the object); t_pos cm (impact x, y, z at the calorimeter front);
# t_time ns (arrival at the front); t_pid one-hot over PID_NAMES (all zero for noise);
# t_spectator 0/1 (hit far from its shower core); t_fully_contained 0/1; t_rec_energy GeV (what the
# object deposited in recorded hits); t_is_unique 0/1 (exactly one hit per object carries 1).
TRUTH_WIDTHS: dict[str, int] = {
    "t_idx": 1,
    "t_energy": 1,
    "t_pos": 3,
    "t_time": 1,
    "t_pid": len(PID_NAMES),
    "t_spectator": 1,
    "t_fully_contained": 1,
    "t_rec_energy": 1,
    "t_is_unique": 1,
}
TRUTH_NAMES: tuple[str, ...] = tuple(TRUTH_WIDTHS)
TRUTH_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(np.int32) if name == "t_idx" else np.dtype(np.float32) for name in TRUTH_NAMES
}
FEATURE_DTYPE = np.dtype(np.float32)
ROW_SPLITS_DTYPE = np.dtype(np.int64)
NOISE_INDEX = -1
