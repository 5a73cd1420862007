"""Condensation clustering: from per-hit β and cluster-space coordinates to predicted showers.

Per event, independently of every other event of the batch, over its calorimeter hits:

    candidates = calorimeter hits i with β_i > beta_threshold, in descending β (ties: lower hit index first)
    for α in candidates:
        if α is already assigned: skip
        α becomes a condensation point and opens a new shower, which takes α and every still-unassigned
        calorimeter hit i with ‖x_i − x_α‖ ≤ distance_threshold · d_α      (Euclidean, in cluster space)
    calorimeter hits never assigned are noise (cluster id −1)
    then each track t joins the shower of its nearest calorimeter hit c(t) = argmin_c ‖x_t − x_c‖
    (none, if that hit is noise or the event has no calorimeter hit)

with x the cluster-space coordinates (``ccoords``) and d_α = ``dist[α]``, or 1 when no ``dist`` is given.
Without ``is_track`` every row is a calorimeter hit.

Tracks, as a calorimeter physicist treats them: a shower is made of deposits, and a charged particle's track
is attached to it afterwards. A track is never a condensation point (the loss never makes it one either) and
never takes hits, so a track that the network placed away from its shower cannot open a shower of its own or
pull calorimeter hits away; it can at worst join the wrong shower, where it weighs nothing in the
energy-weighted IoU (see :mod:`gravtrain.inference.matching`) and adds nothing to the shower energy.

The ball queries use one ``scipy.spatial.cKDTree`` per event, so the cost grows like the number of
condensation points times the hits in their balls, not like V².

Because a hit of higher β would have been taken as a candidate first, the condensation point of each shower
is also its calorimeter hit of highest β (first index on ties).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from gravtrain.inference.ragged import checked_row_splits, per_hit_vector

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PredictedShowers:
    """The predicted showers of a batch of E events (V hits, S showers in all).

    Attributes:
        cluster_ids: (V,) int64, the shower of each hit, −1 for noise. Showers are numbered 0..S−1
            consecutively, event by event, and within an event in the order their condensation points were
            taken (descending β), so ids never repeat across events.
        condensation_points: (S,) int64, the hit index (row of the batch) of each shower's condensation point.
        cluster_row_splits: (E+1,) int64; the showers of event e are ids
            ``cluster_row_splits[e]:cluster_row_splits[e+1]``.
    """

    cluster_ids: np.ndarray
    condensation_points: np.ndarray
    cluster_row_splits: np.ndarray

    @property
    def n_showers(self) -> int:
        return len(self.condensation_points)


def condense(beta, ccoords, row_splits, *, beta_threshold: float, distance_threshold: float,
             dist=None, is_track=None, kept=None) -> PredictedShowers:
    """Run condensation clustering (see the module docstring) and return ids and condensation points.

    Args:
        beta: (V,) or (V, 1) condensation confidence β in [0, 1].
        ccoords: (V, C) cluster-space coordinates.
        row_splits: (E+1,) integer event boundaries.
        beta_threshold: hits with β strictly above it are candidates.
        distance_threshold: the radius of a shower in units of d_α (a hit at exactly that distance is taken).
        dist: optional (V,) or (V, 1) non-negative per-hit distance scale d; 1 for every hit when None.
        is_track: optional (V,) or (V, 1) track flag (> 0.5: a track row, attached afterwards); None: no tracks.
        kept: optional (V,) bool, the hits a noise filter kept: the others are noise (id −1) and take no part
            in the clustering (their predictions are not read); None: every hit.

    Returns:
        A :class:`PredictedShowers`.
    """
    if kept is not None:
        return _condense_kept(np.asarray(kept, bool).reshape(-1), beta, ccoords, row_splits,
                              beta_threshold=beta_threshold, distance_threshold=distance_threshold, dist=dist,
                              is_track=is_track)
    ccoords = np.asarray(ccoords, dtype=np.float64)
    if ccoords.ndim != 2:
        raise ValueError(f"ccoords must have shape (V, C), got {ccoords.shape}")
    n_hits = ccoords.shape[0]
    beta = per_hit_vector(beta, n_hits, "beta")
    row_splits = checked_row_splits(row_splits, n_hits)
    scale = np.ones(n_hits) if dist is None else per_hit_vector(dist, n_hits, "dist")
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(ccoords)) and np.all(np.isfinite(scale))):
        raise ValueError("beta, ccoords and dist must be finite")
    if np.any(scale < 0) or distance_threshold < 0:
        raise ValueError("dist and distance_threshold must be non-negative")
    radius = distance_threshold * scale
    track = np.zeros(n_hits, bool) if is_track is None else per_hit_vector(is_track, n_hits, "is_track") > 0.5

    cluster_ids = np.full(n_hits, -1, dtype=np.int64)
    points: list[np.ndarray] = []
    cluster_row_splits = np.zeros(len(row_splits), dtype=np.int64)
    next_id = 0
    for event, (start, stop) in enumerate(zip(row_splits[:-1], row_splits[1:])):
        event_points = _condense_event(beta[start:stop], ccoords[start:stop], radius[start:stop], track[start:stop],
                                       beta_threshold, cluster_ids[start:stop], next_id)
        points.append(event_points + start)
        next_id += len(event_points)
        cluster_row_splits[event + 1] = next_id
    condensation_points = np.concatenate(points) if points else np.zeros(0, dtype=np.int64)
    logger.debug("condensation: %d hits, %d events, %d showers", n_hits, len(row_splits) - 1, next_id)
    return PredictedShowers(cluster_ids, condensation_points.astype(np.int64), cluster_row_splits)


def _condense_kept(kept: np.ndarray, beta, ccoords, row_splits, **options) -> PredictedShowers:
    """:func:`condense` of the kept hits alone (events kept apart), mapped back to all V hits."""
    rows = np.flatnonzero(kept)
    row_splits = checked_row_splits(row_splits, len(kept))
    kept_row_splits = np.r_[0, np.cumsum(kept)][row_splits]

    def subset(values):
        return None if values is None else np.asarray(values)[rows]

    options = {name: subset(value) if name in ("dist", "is_track") else value for name, value in options.items()}
    inner = condense(subset(beta), np.asarray(ccoords)[rows], kept_row_splits, **options)
    cluster_ids = np.full(len(kept), -1, dtype=np.int64)
    cluster_ids[rows] = inner.cluster_ids
    return PredictedShowers(cluster_ids, rows[inner.condensation_points].astype(np.int64), inner.cluster_row_splits)


def _condense_event(beta: np.ndarray, ccoords: np.ndarray, radius: np.ndarray, track: np.ndarray,
                    beta_threshold: float, cluster_ids: np.ndarray, first_id: int) -> np.ndarray:
    """Cluster one event in place into ``cluster_ids`` (a view, all −1); return its condensation points."""
    calo = np.flatnonzero(~track)
    if calo.size == 0:
        return np.zeros(0, dtype=np.int64)
    calo_ids = np.full(calo.size, -1, dtype=np.int64)
    candidates = np.flatnonzero(beta[calo] > beta_threshold)
    # Stable sort on −β keeps ascending hit index among equal β.
    candidates = candidates[np.argsort(-beta[calo][candidates], kind="stable")]
    tree = cKDTree(ccoords[calo])
    points = []
    for alpha in candidates:
        if calo_ids[alpha] >= 0:
            continue
        shower_id = first_id + len(points)
        neighbours = np.asarray(tree.query_ball_point(ccoords[calo[alpha]], radius[calo[alpha]],
                                                      return_sorted=False), dtype=np.int64)
        calo_ids[neighbours[calo_ids[neighbours] < 0]] = shower_id
        calo_ids[alpha] = shower_id
        points.append(calo[alpha])
    cluster_ids[calo] = calo_ids
    tracks = np.flatnonzero(track)
    if tracks.size:
        _, nearest = tree.query(ccoords[tracks], k=1)
        cluster_ids[tracks] = calo_ids[nearest]
    return np.asarray(points, dtype=np.int64)


def condensation_clusters(beta, ccoords, row_splits, *, beta_threshold: float, distance_threshold: float,
                          dist=None, is_track=None) -> np.ndarray:
    """(V,) int64 shower id per hit (−1 noise), ids unique across the batch; see :func:`condense`.

    Use :func:`condense` when the condensation point of each shower is needed too (e.g. for its energy).
    """
    return condense(beta, ccoords, row_splits, beta_threshold=beta_threshold,
                    distance_threshold=distance_threshold, dist=dist, is_track=is_track).cluster_ids


def shower_energies(hit_energy, showers: PredictedShowers, energy_corr=None) -> np.ndarray:
    """(S,) energy of each predicted shower in GeV.

    E_s = energy_corr[α_s] · Σ_{i ∈ s} hit_energy_i, with α_s the condensation point of shower s; without
    ``energy_corr`` the factor is 1.

    Args:
        hit_energy: (V,) or (V, 1) hit energy in GeV (feature column ``energy``).
        showers: the showers, from :func:`condense`.
        energy_corr: optional (V,) or (V, 1) predicted energy correction factor per hit.
    """
    n_hits = len(showers.cluster_ids)
    energy = per_hit_vector(hit_energy, n_hits, "hit_energy")
    in_shower = showers.cluster_ids >= 0
    raw = np.bincount(showers.cluster_ids[in_shower], weights=energy[in_shower],
                      minlength=showers.n_showers)
    if energy_corr is None:
        return raw
    return raw * per_hit_vector(energy_corr, n_hits, "energy_corr")[showers.condensation_points]
