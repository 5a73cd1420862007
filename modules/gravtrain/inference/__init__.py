"""Inference: condensation clustering, truth matching and physics metrics, on NumPy arrays.

Flow, for a batch of E events with V hits delimited by ``row_splits``::

    condense(beta, ccoords, row_splits, ...)     -> showers: id per hit + condensation points
    shower_energies(hit_energy, showers, corr)   -> energy of each shower (GeV)
    match_showers(t_idx, ids, hit_energy, ...)   -> truth object <-> shower pairs (energy IoU + Hungarian)
    compute_shower_metrics(...)                  -> ShowerMetrics (efficiency, fake rate, response, ...)

:func:`evaluate_predictions` runs the whole chain on dicts of per-hit predictions and truth;
:func:`filter_metrics` scores a noise filter (signal efficiency, noise rejection, ROC, shower energy kept).
"""

from gravtrain.inference.clustering import PredictedShowers, condensation_clusters, condense, shower_energies
from gravtrain.inference.filter_metrics import FILTER_METRIC_NAMES, FilterMetrics, filter_metrics
from gravtrain.inference.matching import (
    ShowerMatches,
    TruthObjects,
    energy_weighted_iou,
    match_showers,
    truth_objects,
)
from gravtrain.inference.metrics import (
    DEFAULT_ENERGY_BINS,
    ShowerMetrics,
    calorimeter_deposits,
    compute_shower_metrics,
    evaluate_predictions,
)

__all__ = [
    "DEFAULT_ENERGY_BINS",
    "FILTER_METRIC_NAMES",
    "FilterMetrics",
    "filter_metrics",
    "PredictedShowers",
    "ShowerMatches",
    "ShowerMetrics",
    "TruthObjects",
    "calorimeter_deposits",
    "compute_shower_metrics",
    "condensation_clusters",
    "condense",
    "energy_weighted_iou",
    "evaluate_predictions",
    "match_showers",
    "shower_energies",
    "truth_objects",
]
