"""The embedded toy calorimeter: simulate events with their per-hit features and truth (``Data.source: toy``).

One event = particles (see :mod:`gravtrain.data.showers`) -> energy spots -> cells -> hits:

1. Spots are summed per (cell, particle). A cell's energy is the sum over particles, plus Gaussian
   electronic noise; cells below the zero-suppression threshold (0.5 MIP of their layer) or outside the
   eta acceptance vanish. A cell's truth is the particle that deposited the most energy in it.
2. Hit time: the energy-weighted spot time, smeared by sqrt(0.02^2 + 0.2^2 MIP / E) ns.
3. Noise hits: Poisson(``noise_hits``) cells drawn uniformly over all cells of the detector, with an
   energy just above threshold and t_idx = -1.
4. Tracks (``tracks=True``): one row per charged particle with is_track = 1, the momentum (smeared by
   0.5 % (+) 0.01 % x p/GeV) as energy and the impact point on the calorimeter front as position.
5. Rows are shuffled, so their order carries no truth.

Truth of an object's rows: t_energy (true energy, GeV; for a muon, by the field's convention, what it deposited
in recorded cells, as t_rec_energy, unless ``true_muon_momentum``), t_pos (impact on the front face, cm), t_time (ns),
t_pid (species; ``ambiguous`` when less than half of what the object deposited lies in cells it won),
t_rec_energy (its deposit in recorded cells, GeV), t_fully_contained (at least 95 % of its shower inside the
detector and not escaping), t_spectator (a calorimeter hit further than 3 energy-weighted RMS radii from
its particle's axis), t_is_unique (1 on the object's most energetic calorimeter hit; on its track if it has
no calorimeter hit). Noise rows have zero truth except t_idx = -1.

Reproducibility: event ``i`` of stream ``stream`` is drawn from ``SeedSequence(seed, spawn_key=(stream,
i))``, so it depends on (seed, stream, i) only, not on how many events are simulated at once. Streams 0 and
1 are the training and validation sets.
"""

from __future__ import annotations

import logging

import numpy as np

from gravtrain.data.event_store import EventStore
from gravtrain.data.geometry import SPEED_OF_LIGHT_CM_PER_NS, CalorimeterGeometry, default_geometry
from gravtrain.data.names import (FEATURE_DTYPE, N_FEATURES, NOISE_INDEX, PID_INDEX, PID_NAMES, TRUTH_DTYPES,
                                  TRUTH_WIDTHS)
from gravtrain.data.showers import (SPECIES_FRACTIONS, SPECIES_IS_CHARGED, SPECIES_MASS_GEV, SPECIES_NAMES, SPECIES_PID,
                                    Deposits, Particles, generate_particles, shower_deposits, species_probabilities)

logger = logging.getLogger(__name__)

TRAIN_STREAM, VAL_STREAM = 0, 1
CELL_INDEX_OFFSET = 2**20         # cell grid indices are shifted by this to be non-negative in the cell key
CONTAINED_FRACTION = 0.95
SPECTATOR_RMS_RADII = 3.0
AMBIGUOUS_WON_FRACTION = 0.5
NOISE_ENERGY_SCALE_MIP = 0.3


def _hit_time_sigma_ns(energy_gev: np.ndarray, mip_gev: np.ndarray) -> np.ndarray:
    return np.sqrt(0.02**2 + 0.2**2 * mip_gev / np.maximum(energy_gev, 1e-6))


def _feature_rows(energy, x, y, z, time, hit_size, is_track) -> np.ndarray:
    """(n, N_FEATURES) float32 rows in FEATURE_NAMES order from per-row quantities (GeV, cm, ns)."""
    radius = np.hypot(x, y)
    theta = np.arctan2(radius, z)
    eta = -np.log(np.tan(0.5 * theta))
    columns = (energy, eta, np.full(len(x), float(is_track)), theta, radius, x, y, z, time, hit_size)
    return np.stack(columns, axis=1).astype(FEATURE_DTYPE)


def _cell_key(layer, ix, iy):
    return (layer.astype(np.int64) * 2**21 + ix + CELL_INDEX_OFFSET) * 2**21 + iy + CELL_INDEX_OFFSET


def _digitise(rng: np.random.Generator, geometry: CalorimeterGeometry, particles: Particles, deposits: Deposits):
    """Cells from spots: energies, winners, threshold. Returns a dict of per-hit and per-particle arrays."""
    n = particles.n
    size = geometry.cell_size_cm[deposits.layer]
    ix = np.floor(deposits.x_cm / size).astype(np.int64)
    iy = np.floor(deposits.y_cm / size).astype(np.int64)
    pair_keys, inverse = np.unique(_cell_key(deposits.layer, ix, iy) * n + deposits.particle, return_inverse=True)
    pair_energy = np.bincount(inverse, deposits.energy_gev)
    pair_time_sum = np.bincount(inverse, deposits.energy_gev * deposits.time_ns)
    pair_cell_key, pair_particle = pair_keys // n, pair_keys % n
    cell_start = np.flatnonzero(np.r_[True, pair_cell_key[1:] != pair_cell_key[:-1]])
    n_contributors = np.diff(np.r_[cell_start, len(pair_keys)])
    pair_cell = np.repeat(np.arange(len(cell_start)), n_contributors)
    winner_pair = np.lexsort((-pair_energy, pair_cell))[cell_start]

    cell_key = pair_cell_key[cell_start]
    layer = cell_key // 2**42
    cell_ix = (cell_key // 2**21) % 2**21 - CELL_INDEX_OFFSET
    cell_iy = cell_key % 2**21 - CELL_INDEX_OFFSET
    cell_size = geometry.cell_size_cm[layer]
    x, y, z = (cell_ix + 0.5) * cell_size, (cell_iy + 0.5) * cell_size, geometry.sensor_z_cm[layer]
    r_min, r_max = geometry.radius_range_cm(z)
    radius = np.hypot(x, y)
    inside = (radius >= r_min) & (radius <= r_max)
    true_energy = np.add.reduceat(pair_energy, cell_start)
    measured = true_energy + rng.normal(0.0, 1.0, len(cell_start)) * geometry.noise_sigma_gev[layer]
    kept = inside & (measured >= geometry.threshold_gev[layer])

    pair_kept = kept[pair_cell]
    rec_energy = np.bincount(pair_particle[pair_kept], pair_energy[pair_kept], minlength=n)
    inside_energy = np.bincount(pair_particle[inside[pair_cell]], pair_energy[inside[pair_cell]], minlength=n)
    won = pair_kept & (np.arange(len(pair_keys)) == winner_pair[pair_cell])
    won_energy = np.bincount(pair_particle[won], pair_energy[won], minlength=n)
    time = np.add.reduceat(pair_time_sum, cell_start) / np.maximum(true_energy, 1e-12)
    energy = measured[kept]
    time = time[kept] + rng.normal(0.0, 1.0, kept.sum()) * _hit_time_sigma_ns(energy, geometry.mip_gev[layer[kept]])
    return {
        "cell_key": cell_key[kept], "layer": layer[kept], "x": x[kept], "y": y[kept], "z": z[kept],
        "energy": energy, "time": time, "hit_size": cell_size[kept], "t_idx": pair_particle[winner_pair][kept],
        "n_shared": int((kept & (n_contributors > 1)).sum()),
        "rec_energy": rec_energy, "won_energy": won_energy,
        "contained": (inside_energy >= CONTAINED_FRACTION * deposits.generated_gev) & ~deposits.escapes,
    }


def _noise_hits(rng: np.random.Generator, geometry: CalorimeterGeometry, mean_count: float, occupied: np.ndarray):
    """Noise cells uniform over all cells of the detector, avoiding ``occupied`` cell keys."""
    cells = geometry.cells_per_layer()
    n = rng.poisson(mean_count)
    layer = rng.choice(geometry.n_layers, size=n, p=cells / cells.sum())
    z = geometry.sensor_z_cm[layer]
    r_min, r_max = geometry.radius_range_cm(z)
    radius = np.sqrt(rng.uniform(r_min**2, r_max**2))
    phi = rng.uniform(-np.pi, np.pi, n)
    size = geometry.cell_size_cm[layer]
    ix, iy = np.floor(radius * np.cos(phi) / size).astype(np.int64), np.floor(radius * np.sin(phi) / size).astype(np.int64)
    key = _cell_key(layer, ix, iy)
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(n, bool)
    keep[first] = True
    keep &= ~np.isin(key, occupied)
    layer, ix, iy, size, z = layer[keep], ix[keep], iy[keep], size[keep], z[keep]
    energy = geometry.threshold_gev[layer] + rng.exponential(NOISE_ENERGY_SCALE_MIP, len(layer)) * geometry.mip_gev[layer]
    x, y = (ix + 0.5) * size, (iy + 0.5) * size
    time = (np.sqrt(x**2 + y**2 + z**2) / SPEED_OF_LIGHT_CM_PER_NS
            + rng.normal(0.0, 1.0, len(layer)) * _hit_time_sigma_ns(energy, geometry.mip_gev[layer]))
    return _feature_rows(energy, x, y, z, time, size, is_track=False)


def _track_rows(rng: np.random.Generator, particles: Particles) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of the charged particles' tracks, and their particle indices."""
    charged = np.flatnonzero(SPECIES_IS_CHARGED[particles.species])
    energy = particles.energy_gev[charged]
    momentum = np.sqrt(np.maximum(energy**2 - SPECIES_MASS_GEV[particles.species[charged]] ** 2, 0.0))
    momentum *= 1.0 + rng.normal(0.0, 1.0, len(charged)) * np.hypot(0.005, 1e-4 * momentum)
    impact = particles.impact_cm[charged]
    time = particles.time_front_ns[charged] + rng.normal(0.0, 0.03, len(charged))
    rows = _feature_rows(momentum, impact[:, 0], impact[:, 1], impact[:, 2], time, np.zeros(len(charged)), True)
    return rows, charged


def _true_energies(particles: Particles, digits: dict, true_muon_momentum: bool) -> np.ndarray:
    """(n,) truth energy of each particle, GeV: its energy, except a muon's (unless ``true_muon_momentum``).

    A muon crosses the calorimeter leaving MIP deposits, so the field's converter of CMSSW ntuples
    (``use_true_muon_momentum`` off by default) gives it the energy it deposited in recorded hits as its truth
    energy: what a calorimeter can measure of it, and what a shower's energy is compared with.
    """
    energy = particles.energy_gev.copy()
    if not true_muon_momentum:
        muon = particles.species == SPECIES_NAMES.index("muon")
        energy[muon] = digits["rec_energy"][muon]
    return energy


def _object_truth(particles: Particles, digits: dict, t_idx: np.ndarray, *,
                  true_muon_momentum: bool) -> dict[str, np.ndarray]:
    """Per-row truth of object rows (t_idx >= 0), from the per-particle quantities."""
    pid = SPECIES_PID[particles.species].copy()
    ambiguous = digits["won_energy"] < AMBIGUOUS_WON_FRACTION * digits["rec_energy"]
    pid[ambiguous] = PID_INDEX["ambiguous"]
    return {
        "t_idx": t_idx[:, None],
        "t_energy": _true_energies(particles, digits, true_muon_momentum)[t_idx, None],
        "t_pos": particles.impact_cm[t_idx],
        "t_time": particles.time_front_ns[t_idx, None],
        "t_pid": np.eye(len(PID_NAMES))[pid[t_idx]],
        "t_fully_contained": digits["contained"][t_idx, None].astype(float),
        "t_rec_energy": digits["rec_energy"][t_idx, None],
    }


def _spectator_flags(particles: Particles, digits: dict) -> np.ndarray:
    """1 for calorimeter hits further than SPECTATOR_RMS_RADII energy-weighted RMS radii from their axis."""
    t_idx, n = digits["t_idx"], particles.n
    direction = particles.direction[t_idx]
    travel = (digits["z"] - particles.impact_cm[t_idx, 2]) / direction[:, 2]
    distance = np.hypot(digits["x"] - particles.impact_cm[t_idx, 0] - direction[:, 0] * travel,
                        digits["y"] - particles.impact_cm[t_idx, 1] - direction[:, 1] * travel)
    weight = digits["energy"]
    rms = np.sqrt(np.bincount(t_idx, weight * distance**2, minlength=n)
                  / np.maximum(np.bincount(t_idx, weight, minlength=n), 1e-12))
    return distance > SPECTATOR_RMS_RADII * np.maximum(rms[t_idx], digits["hit_size"])


def _unique_flags(t_idx: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """1 on the most energetic row of each object (rows with t_idx = -1 never)."""
    order = np.lexsort((-energy, t_idx))
    first = order[np.r_[True, t_idx[order][1:] != t_idx[order][:-1]]]
    flags = np.zeros(len(t_idx), bool)
    flags[first[t_idx[first] >= 0]] = True
    return flags


def simulate_event(rng: np.random.Generator, geometry: CalorimeterGeometry, *, n_particles: tuple[int, int],
                   energy_range: tuple[float, float], noise_hits: float, tracks: bool,
                   true_muon_momentum: bool = False, species_probability: np.ndarray = SPECIES_FRACTIONS):
    """One event: (features (V, F) float32, truth dict of (V, k) arrays, diagnostics dict of ints)."""
    particles = generate_particles(rng, geometry, n_particles=n_particles, energy_range=energy_range,
                                   species_probability=species_probability)
    digits = _digitise(rng, geometry, particles, shower_deposits(rng, geometry, particles))
    calo_rows = _feature_rows(digits["energy"], digits["x"], digits["y"], digits["z"], digits["time"],
                              digits["hit_size"], is_track=False)
    noise_rows = _noise_hits(rng, geometry, noise_hits, digits["cell_key"])
    track_rows, track_idx = _track_rows(rng, particles) if tracks else (np.zeros((0, N_FEATURES), FEATURE_DTYPE),
                                                                        np.zeros(0, np.int64))
    object_idx = np.r_[digits["t_idx"], track_idx]
    features = np.concatenate([calo_rows, track_rows, noise_rows])
    n_objects_rows, n_rows = len(object_idx), len(features)

    truth = {name: np.zeros((n_rows, width), TRUTH_DTYPES[name])
             for name, width in TRUTH_WIDTHS.items()}
    for name, values in _object_truth(particles, digits, object_idx, true_muon_momentum=true_muon_momentum).items():
        truth[name][:n_objects_rows] = values
    truth["t_idx"][n_objects_rows:] = NOISE_INDEX
    truth["t_spectator"][:len(calo_rows), 0] = _spectator_flags(particles, digits)
    # The unique row is the most energetic calorimeter hit; tracks only count for objects without one.
    ranking = np.r_[digits["energy"], np.full(len(track_idx), -1.0)]
    truth["t_is_unique"][:n_objects_rows, 0] = _unique_flags(object_idx, ranking)

    order = rng.permutation(n_rows)
    diagnostics = {"n_particles": particles.n, "n_noise_hits": len(noise_rows), "n_tracks": len(track_rows),
                   "n_shared_hits": digits["n_shared"]}
    return features[order], {name: array[order] for name, array in truth.items()}, diagnostics


def simulate_events(n_events: int, *, n_particles: tuple[int, int] = (2, 10),
                    energy_range: tuple[float, float] = (1.0, 200.0), noise_hits: float = 200, tracks: bool = True,
                    true_muon_momentum: bool = False, seed: int = 1, stream: int = TRAIN_STREAM, first_event: int = 0,
                    species: tuple[str, ...] | None = None, geometry: CalorimeterGeometry | None = None) -> EventStore:
    """Simulate events ``first_event .. first_event + n_events - 1`` of a stream into an :class:`EventStore`.

    Args:
        n_events: number of events.
        n_particles: [min, max] particles per event (uniform, inclusive).
        energy_range: [min, max] particle energy in GeV (log-uniform).
        noise_hits: mean number of noise hits per event (Poisson).
        tracks: add one track row per charged particle.
        true_muon_momentum: give a muon its true energy as ``t_energy``; by default (the field's convention) it
            gets the energy it deposited in recorded cells (``t_rec_energy``).
        seed: simulator seed; with ``stream`` and the event number it fixes each event.
        stream: independent event sequence (``TRAIN_STREAM`` = 0, ``VAL_STREAM`` = 1).
        first_event: number of the first event in the stream (to simulate a stream in pieces).
        species: restrict particles to these of ``SPECIES_NAMES`` (photon, electron, charged_pion,
            neutral_hadron, muon), in their default proportions; None for the full mix. For studies and tests.
        geometry: the detector; the default 40-layer endcap when None.
    """
    if n_particles[0] < 1 or n_particles[0] > n_particles[1]:
        raise ValueError(f"n_particles must be [min, max] with 1 <= min <= max, got {list(n_particles)}")
    if not 0.0 < energy_range[0] < energy_range[1]:
        raise ValueError(f"energy_range must be [min, max] GeV with 0 < min < max, got {list(energy_range)}")
    geometry = geometry or default_geometry()
    species_probability = species_probabilities(None if species is None else tuple(species))
    features, truths, diagnostics = [], [], []
    for event_number in range(first_event, first_event + n_events):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, event_number)))
        f, t, d = simulate_event(rng, geometry, n_particles=tuple(n_particles), energy_range=tuple(energy_range),
                                 noise_hits=noise_hits, tracks=tracks, true_muon_momentum=true_muon_momentum,
                                 species_probability=species_probability)
        features.append(f)
        truths.append(t)
        diagnostics.append(d)
    sizes = [len(f) for f in features]
    row_splits = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    store = EventStore(
        features=np.concatenate(features) if features else np.zeros((0, N_FEATURES), FEATURE_DTYPE),
        truth={name: (np.concatenate([t[name] for t in truths]) if truths
                      else np.zeros((0, w), TRUTH_DTYPES[name]))
               for name, w in TRUTH_WIDTHS.items()},
        row_splits=row_splits,
        event_info={k: np.array([d[k] for d in diagnostics], np.int64)
                    for k in ("n_particles", "n_noise_hits", "n_tracks", "n_shared_hits")},
    )
    logger.debug("simulated %d events, %d hits (seed %d, stream %d)", n_events, store.n_hits, seed, stream)
    return store


def simulate_toy_datasets(*, n_train_events: int, n_val_events: int, n_particles=(2, 10),
                          energy_range=(1.0, 200.0), noise_hits: int = 200, tracks: bool = True,
                          true_muon_momentum: bool = False, seed: int = 1) -> tuple[EventStore, EventStore]:
    """(training store, validation store) from the keys of the config's ``Data.toy`` block.

    The two sets are independent streams of the same seed, so changing ``n_train_events`` leaves the
    validation events unchanged.
    """
    common = dict(n_particles=n_particles, energy_range=energy_range, noise_hits=noise_hits, tracks=tracks,
                  true_muon_momentum=true_muon_momentum, seed=seed)
    return (simulate_events(n_train_events, stream=TRAIN_STREAM, **common),
            simulate_events(n_val_events, stream=VAL_STREAM, **common))
