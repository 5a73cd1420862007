"""The names, widths and dtypes of the per-hit arrays: the one definition every room imports.

A batch (and a shard on disk) holds, for V hits:

- ``features`` (V, F) float32, the columns named by :data:`FEATURE_NAMES` in that order;
- one truth array per entry of :data:`TRUTH_WIDTHS`, shape (V, width), dtype :data:`TRUTH_DTYPES`;
- ``row_splits`` (E+1,): the hits of event ``i`` are rows ``row_splits[i]:row_splits[i+1]``.

What each column and truth array holds, with its unit, is in :data:`FEATURE_MEANINGS` and
:data:`TRUTH_MEANINGS` (the documentation's shard-format table is generated from them).
"""

from __future__ import annotations

import numpy as np

FEATURE_NAMES: tuple[str, ...] = (
    "energy", "eta", "is_track", "theta", "R", "x", "y", "z", "time", "hit_size",
)
#: What each feature column holds, and its unit.
FEATURE_MEANINGS: dict[str, str] = {
    "energy": "GeV: the hit's energy, calibrated to the electromagnetic scale; for a track, its momentum",
    "eta": "the pseudorapidity of the hit's position seen from the origin",
    "is_track": "1 for a track row, 0 for a calorimeter hit",
    "theta": "rad: the polar angle of the hit's position seen from the origin",
    "R": "cm: the transverse radius sqrt(x² + y²) of the hit's position",
    "x": "cm: the hit's position",
    "y": "cm: the hit's position",
    "z": "cm: the hit's position (along the beam)",
    "time": "ns: the hit's time",
    "hit_size": "cm: the cell's edge length; 0 for a track",
}
N_FEATURES = len(FEATURE_NAMES)
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURE_NAMES)}

PID_NAMES: tuple[str, ...] = (
    "muon", "electron", "photon", "charged_hadron", "neutral_hadron", "ambiguous",
)
PID_INDEX: dict[str, int] = {name: i for i, name in enumerate(PID_NAMES)}

#: name -> number of columns.
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
#: What each truth array holds for a hit (the truth of the object it belongs to), and its unit.
TRUTH_MEANINGS: dict[str, str] = {
    "t_idx": "the index of the hit's truth object in its event (0, 1, ...); -1 for noise",
    "t_energy": "GeV: the object's true energy (a muon's: what it deposited, unless the true momentum is asked for)",
    "t_pos": "cm: the object's impact point x, y, z at the calorimeter front",
    "t_time": "ns: the object's arrival time at the front",
    "t_pid": f"the object's species, one-hot over {', '.join(PID_NAMES)} (in this order); all zero for noise",
    "t_spectator": "1 for a hit far from its shower's core, else 0",
    "t_fully_contained": "1 if the object's shower is contained in the calorimeter, else 0",
    "t_rec_energy": "GeV: the energy the object deposited in the recorded hits",
    "t_is_unique": "1 on exactly one hit of each object, else 0",
}
TRUTH_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(np.int32) if name == "t_idx" else np.dtype(np.float32) for name in TRUTH_NAMES
}
FEATURE_DTYPE = np.dtype(np.float32)
ROW_SPLITS_DTYPE = np.dtype(np.int64)
NOISE_INDEX = -1
