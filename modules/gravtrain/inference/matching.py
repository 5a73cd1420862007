"""Truth matching: pair each truth object with at most one predicted shower, per event.

For truth object T and predicted shower S of the same event, with e_i the hit energy (GeV):

    IoU(T, S) = Σ_{i ∈ T ∩ S} e_i / Σ_{i ∈ T ∪ S} e_i = I / (E_T + E_S − I)

(0 where the union carries no energy). Pairs with IoU < ``iou_threshold``, and pairs that share no energy
(IoU = 0), are dropped; then, per event, the Hungarian assignment (``scipy.optimize.linear_sum_assignment``)
picks the one-to-one pairing of the remaining pairs that maximises the summed IoU.

The intersection I is built for the whole batch at once as a sparse (K, S) matrix over the (object, shower)
pairs that share hits, so the cost grows like V plus the number of overlapping pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment

from gravtrain.inference.ragged import checked_row_splits, event_of_hit, per_hit_vector


@dataclass(frozen=True, eq=False)
class TruthObjects:
    """The K truth objects of a batch of E events, numbered 0..K−1 event by event.

    Attributes:
        object_ids: (V,) int64, the batch-wide object of each hit, −1 for noise (``t_idx`` < 0).
        first_hits: (K,) int64, the first hit (row of the batch) of each object.
        object_event: (K,) int64, the event of each object.
    """

    object_ids: np.ndarray
    first_hits: np.ndarray
    object_event: np.ndarray

    @property
    def n_objects(self) -> int:
        return len(self.first_hits)


def truth_objects(t_idx, row_splits) -> TruthObjects:
    """Number the objects of a batch: (event, ``t_idx``) pairs with ``t_idx`` ≥ 0 become ids 0..K−1.

    Args:
        t_idx: (V,) or (V, 1) integer object index within its event, −1 for noise.
        row_splits: (E+1,) event boundaries.
    """
    t_idx = np.asarray(t_idx)
    n_hits = t_idx.shape[0] if t_idx.ndim else 0
    t_idx = per_hit_vector(t_idx, n_hits, "t_idx", dtype=np.int64)
    events = event_of_hit(checked_row_splits(row_splits, n_hits))
    is_object = t_idx >= 0
    object_ids = np.full(n_hits, -1, dtype=np.int64)
    key = events[is_object] * (int(t_idx.max(initial=0)) + 1) + t_idx[is_object]
    _, first_in_subset, inverse = np.unique(key, return_index=True, return_inverse=True)
    object_ids[is_object] = inverse.reshape(-1)
    first_hits = np.flatnonzero(is_object)[first_in_subset].astype(np.int64)
    return TruthObjects(object_ids, first_hits, events[first_hits])


def energy_weighted_iou(object_ids, cluster_ids, hit_energy, *, n_objects: int | None = None,
                        n_showers: int | None = None) -> sparse.csr_matrix:
    """(K, S) sparse matrix of IoU(T, S) (module docstring) for every pair sharing at least one hit.

    Args:
        object_ids: (V,) batch-wide truth object per hit, −1 for noise (see :func:`truth_objects`).
        cluster_ids: (V,) batch-wide predicted shower per hit, −1 for noise.
        hit_energy: (V,) or (V, 1) hit energy in GeV.
        n_objects, n_showers: K and S; by default one more than the largest id.
    """
    object_ids = np.asarray(object_ids, dtype=np.int64).reshape(-1)
    cluster_ids = np.asarray(cluster_ids, dtype=np.int64).reshape(-1)
    energy = per_hit_vector(hit_energy, len(object_ids), "hit_energy")
    if cluster_ids.shape != object_ids.shape:
        raise ValueError(f"object_ids and cluster_ids differ in shape: {object_ids.shape} vs {cluster_ids.shape}")
    n_objects = int(object_ids.max(initial=-1)) + 1 if n_objects is None else n_objects
    n_showers = int(cluster_ids.max(initial=-1)) + 1 if n_showers is None else n_showers
    in_object, in_shower = object_ids >= 0, cluster_ids >= 0
    object_energy = np.bincount(object_ids[in_object], weights=energy[in_object], minlength=n_objects)
    shower_energy = np.bincount(cluster_ids[in_shower], weights=energy[in_shower], minlength=n_showers)
    both = in_object & in_shower
    # coo -> csr sums the energies of hits sharing the same (object, shower) pair.
    intersection = sparse.coo_matrix((energy[both], (object_ids[both], cluster_ids[both])),
                                     shape=(n_objects, n_showers)).tocsr()
    intersection.sum_duplicates()
    pairs = intersection.tocoo()
    union = object_energy[pairs.row] + shower_energy[pairs.col] - pairs.data
    iou = np.divide(pairs.data, union, out=np.zeros_like(pairs.data), where=union > 0)
    return sparse.csr_matrix((iou, (pairs.row, pairs.col)), shape=(n_objects, n_showers))


@dataclass(frozen=True, eq=False)
class ShowerMatches:
    """The result of :func:`match_showers` for a batch with K truth objects and S showers (M matches).

    Attributes:
        truth: the truth objects (batch-wide numbering, first hits, events).
        n_showers: S.
        matched_objects: (M,) int64 object ids, sorted by event then object.
        matched_showers: (M,) int64 shower ids, paired with ``matched_objects``.
        iou: (M,) float64 energy-weighted IoU of each match.
    """

    truth: TruthObjects
    n_showers: int
    matched_objects: np.ndarray
    matched_showers: np.ndarray
    iou: np.ndarray

    @property
    def n_matched(self) -> int:
        return len(self.matched_objects)


def match_showers(t_idx, cluster_ids, hit_energy, row_splits, *, iou_threshold: float,
                  n_showers: int | None = None) -> ShowerMatches:
    """Match truth objects and predicted showers per event by energy-weighted IoU and Hungarian assignment.

    Args:
        t_idx: (V,) or (V, 1) truth object index within its event, −1 for noise.
        cluster_ids: (V,) predicted shower per hit, batch-wide ids, −1 for noise (from clustering).
        hit_energy: (V,) or (V, 1) hit energy in GeV, the IoU weights.
        row_splits: (E+1,) event boundaries.
        iou_threshold: pairs with IoU below it are never matched.
        n_showers: S; by default one more than the largest shower id.
    """
    truth = truth_objects(t_idx, row_splits)
    cluster_ids = np.asarray(cluster_ids, dtype=np.int64).reshape(-1)
    n_showers = int(cluster_ids.max(initial=-1)) + 1 if n_showers is None else n_showers
    iou = energy_weighted_iou(truth.object_ids, cluster_ids, hit_energy, n_objects=truth.n_objects,
                              n_showers=n_showers).tocoo()
    keep = (iou.data >= iou_threshold) & (iou.data > 0)
    rows, cols, values = iou.row[keep], iou.col[keep], iou.data[keep]
    pair_event = truth.object_event[rows]
    order = np.lexsort((cols, rows, pair_event))
    rows, cols, values, pair_event = rows[order], cols[order], values[order], pair_event[order]
    boundaries = np.flatnonzero(np.diff(pair_event)) + 1
    matched_objects, matched_showers, matched_iou = [], [], []
    for event_rows, event_cols, event_values in zip(np.split(rows, boundaries), np.split(cols, boundaries),
                                                    np.split(values, boundaries)):
        if event_rows.size == 0:
            continue
        objects, row_pos = np.unique(event_rows, return_inverse=True)
        showers, col_pos = np.unique(event_cols, return_inverse=True)
        dense = np.zeros((len(objects), len(showers)))
        dense[row_pos, col_pos] = event_values
        best_rows, best_cols = linear_sum_assignment(dense, maximize=True)
        real = dense[best_rows, best_cols] > 0  # dropped pairs are zeros the assignment may still pick
        matched_objects.append(objects[best_rows[real]])
        matched_showers.append(showers[best_cols[real]])
        matched_iou.append(dense[best_rows, best_cols][real])

    def joined(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return ShowerMatches(truth, n_showers, joined(matched_objects, np.int64), joined(matched_showers, np.int64),
                         joined(matched_iou, np.float64))
