"""Physics metrics of predicted showers against truth objects, over a set of events.

With K truth objects, S predicted showers and M matches (see :mod:`gravtrain.inference.matching`), and for
each match m the ratio r_m = E_pred / E_true (both GeV; E_true = the object's ``t_energy``, E_pred = the
shower energy of :func:`~gravtrain.inference.clustering.shower_energies`), the headline metrics are those
physicists quote, above an energy threshold E_thr (``Evaluation.energy_threshold``, 10 GeV by default):

    efficiency = M' / K'     K' = truth objects with E_true > E_thr, M' = those of them that are matched
    fake_rate  = F' / S'     S' = showers with E_pred > E_thr, F' = those of them matched to no object
    response   = mean_m r_m              over the matches whose object has E_true > E_thr
    resolution = std_m r_m / mean_m r_m  over the same matches (population std)

and one figure of both, the objective a sweep maximises to find more objects without more fakes:

    efficiency_minus_fake_rate = efficiency − fake_rate

and the same four over all energies (E_thr = 0, no cut) as ``efficiency_all``, ``fake_rate_all``,
``response_all`` and ``resolution_all``. A shower above E_thr matched to an object below it is not a fake.

By truth class c (the object's species, with ``class_names``), over the objects above E_thr:

    efficiency_<name of c> = M'_c / K'_c     K'_c = objects of class c with E_true > E_thr, M'_c = those matched

logged only for the classes with K'_c > 0 (a class absent above the threshold has no efficiency).

The binned versions use the truth objects whose E_true lies in each bin of ``energy_bins`` (edges, GeV; the
last edge belongs to the last bin, objects outside the edges are left out of the binned arrays). A quantity
with nothing to average over (no objects, no showers, no matches, an empty bin) is NaN. Matches with
E_true ≤ 0 are left out of the response and resolution.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from gravtrain.inference.clustering import condense, shower_energies
from gravtrain.inference.matching import match_showers
from gravtrain.inference.ragged import per_hit_vector

logger = logging.getLogger(__name__)

DEFAULT_ENERGY_BINS: tuple[float, ...] = tuple(np.geomspace(1.0, 200.0, 11).tolist())
"""Ten log-spaced true-energy bins from 1 to 200 GeV."""


#: The names of `PhysicsMetrics.to_dict`, logged as ``physics/<name>`` (``pid_accuracy``, last, with PID only).
SCALAR_METRIC_NAMES = (
    "efficiency", "fake_rate", "response", "resolution", "efficiency_minus_fake_rate", "efficiency_all",
    "fake_rate_all", "response_all", "resolution_all", "energy_threshold", "n_events", "n_truth", "n_showers",
    "n_matched", "n_truth_above", "n_showers_above", "n_matched_above", "pid_accuracy",
)


@dataclass(frozen=True, eq=False)
class ShowerMetrics:
    """Efficiency, fake rate, energy response and resolution, overall and in B bins of true energy.

    Attributes:
        n_events, n_truth, n_showers, n_matched: E, K, S and M, over all energies.
        efficiency, fake_rate, response, resolution: the headline metrics above ``energy_threshold`` (module
            docstring); NaN when undefined.
        energy_threshold: E_thr in GeV.
        n_truth_above, n_showers_above, n_matched_above: K', S' and M' (module docstring).
        efficiency_all, fake_rate_all, response_all, resolution_all: the same metrics over all energies.
        energy_bins: (B+1,) bin edges of true energy in GeV.
        bin_counts: (B,) truth objects per bin.
        bin_matched: (B,) matched truth objects per bin.
        bin_efficiency, bin_response, bin_resolution: (B,) the metrics per bin, NaN where undefined.
        matched_true_energy, matched_pred_energy: (M,) E_true and E_pred of each match, GeV.
        pid_confusion: (C, C) int64 counts over matches, row = truth class of the object, column = argmax of the
            predicted class probabilities at the shower's condensation point; None without a PID prediction.
        class_names: the names of the truth classes, index = class; empty without truth classes.
        class_counts_above, class_matched_above: (C,) K'_c and M'_c of each truth class (module docstring).
        truth_per_event, matched_per_event: (E,) the truth objects and the matched ones of each event, over all
            energies (they sum to K and M); None where the metrics were computed without the events' numbering.
    """

    n_events: int
    n_truth: int
    n_showers: int
    n_matched: int
    efficiency: float
    fake_rate: float
    response: float
    resolution: float
    energy_bins: np.ndarray
    bin_counts: np.ndarray
    bin_matched: np.ndarray
    bin_efficiency: np.ndarray
    bin_response: np.ndarray
    bin_resolution: np.ndarray
    matched_true_energy: np.ndarray
    matched_pred_energy: np.ndarray
    pid_confusion: np.ndarray | None = None
    energy_threshold: float = 0.0
    n_truth_above: int = 0
    n_showers_above: int = 0
    n_matched_above: int = 0
    efficiency_all: float = float("nan")
    fake_rate_all: float = float("nan")
    response_all: float = float("nan")
    resolution_all: float = float("nan")
    class_names: tuple[str, ...] = ()
    class_counts_above: np.ndarray | None = None
    class_matched_above: np.ndarray | None = None
    truth_per_event: np.ndarray | None = None
    matched_per_event: np.ndarray | None = None

    @property
    def efficiency_minus_fake_rate(self) -> float:
        """Efficiency less fake rate above the threshold (module docstring); NaN when either is undefined."""
        return self.efficiency - self.fake_rate

    @property
    def class_efficiency(self) -> dict[str, float]:
        """``{class name: efficiency above the threshold}`` for each truth class with an object above it."""
        if self.class_counts_above is None:
            return {}
        return {name: float(matched / count) for name, count, matched
                in zip(self.class_names, self.class_counts_above, self.class_matched_above) if count > 0}

    @property
    def pid_accuracy(self) -> float:
        """Fraction of matches whose predicted class is the truth class; NaN without matches or PID."""
        if self.pid_confusion is None or self.pid_confusion.sum() == 0:
            return float("nan")
        return float(np.trace(self.pid_confusion) / self.pid_confusion.sum())

    def to_dict(self) -> dict[str, float]:
        """The scalar metrics under stable names, ready to log; ``pid_accuracy`` only with a PID prediction.

        ``efficiency``, ``fake_rate``, ``response`` and ``resolution`` are above ``energy_threshold`` (also in
        the dict), the ``*_all`` ones over all energies; ``efficiency_<class>`` for each truth class present above
        the threshold.
        """
        names = SCALAR_METRIC_NAMES if self.pid_confusion is not None else SCALAR_METRIC_NAMES[:-1]
        scalars = {name: float(getattr(self, name)) for name in names}
        return scalars | {f"efficiency_{name}": value for name, value in self.class_efficiency.items()}


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else float("nan")


def _response_and_resolution(ratios: np.ndarray) -> tuple[float, float]:
    if ratios.size == 0:
        return float("nan"), float("nan")
    mean = float(np.mean(ratios))
    return mean, (float(np.std(ratios) / mean) if mean != 0 else float("nan"))


def _energy_bin(energy: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each energy (the last edge belongs to the last bin), −1 outside the edges."""
    index = np.searchsorted(edges, energy, side="right") - 1
    index[energy == edges[-1]] = len(edges) - 2
    index[(index < 0) | (index >= len(edges) - 1)] = -1
    return index


def compute_shower_metrics(object_energy, shower_energy, matched_objects, matched_showers, *, n_events: int,
                           energy_bins=None, object_class=None, shower_class=None,
                           n_classes: int | None = None, energy_threshold: float = 0.0,
                           class_names: tuple[str, ...] = ()) -> ShowerMetrics:
    """Metrics from matched pairs (module docstring).

    Args:
        object_energy: (K,) true energy of each truth object, GeV.
        shower_energy: (S,) predicted energy of each shower, GeV.
        matched_objects: (M,) the matched pairs' truth objects (ids into ``object_energy``).
        matched_showers: (M,) the matched pairs' showers (ids into ``shower_energy``).
        n_events: E, carried into the result.
        energy_bins: (B+1,) increasing edges in GeV; :data:`DEFAULT_ENERGY_BINS` when None.
        object_class: optional (K,) integer class of each truth object (-1: no class); with ``shower_class``
            it gives the confusion matrix, with ``class_names`` the efficiency per class.
        shower_class: optional (S,) integer class of each shower.
        n_classes: C; by default one more than the largest class seen.
        energy_threshold: E_thr in GeV of the headline metrics; 0 makes them equal to the all-energy ones.
        class_names: the name of each truth class (index = class) for the efficiency per class.
    """
    object_energy = np.asarray(object_energy, dtype=np.float64).reshape(-1)
    shower_energy = np.asarray(shower_energy, dtype=np.float64).reshape(-1)
    matched_objects = np.asarray(matched_objects, dtype=np.int64).reshape(-1)
    matched_showers = np.asarray(matched_showers, dtype=np.int64).reshape(-1)
    edges = np.asarray(DEFAULT_ENERGY_BINS if energy_bins is None else energy_bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"energy_bins must be at least two increasing edges, got {edges.tolist()}")
    n_truth, n_showers, n_matched = len(object_energy), len(shower_energy), len(matched_objects)

    true_e, pred_e = object_energy[matched_objects], shower_energy[matched_showers]
    ratios = np.divide(pred_e, true_e, out=np.full_like(pred_e, np.nan), where=true_e > 0)
    response_all, resolution_all = _response_and_resolution(ratios[np.isfinite(ratios)])

    threshold = float(energy_threshold)
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"energy_threshold must be a non-negative number of GeV, got {energy_threshold!r}")
    object_above, shower_above = object_energy > threshold, shower_energy > threshold
    match_above = object_above[matched_objects]
    n_truth_above, n_showers_above = int(object_above.sum()), int(shower_above.sum())
    n_matched_above = int(match_above.sum())
    fakes_above = n_showers_above - int(shower_above[matched_showers].sum())
    response, resolution = _response_and_resolution(ratios[match_above & np.isfinite(ratios)])

    n_bins = len(edges) - 1
    object_bin = _energy_bin(object_energy, edges)
    bin_counts = np.bincount(object_bin[object_bin >= 0], minlength=n_bins)
    match_bin = object_bin[matched_objects]
    bin_matched = np.bincount(match_bin[match_bin >= 0], minlength=n_bins)
    bin_efficiency = np.divide(bin_matched, bin_counts, out=np.full(n_bins, np.nan), where=bin_counts > 0)
    bin_response, bin_resolution = np.full(n_bins, np.nan), np.full(n_bins, np.nan)
    for b in range(n_bins):
        in_bin = ratios[(match_bin == b) & np.isfinite(ratios)]
        bin_response[b], bin_resolution[b] = _response_and_resolution(in_bin)

    class_counts = class_matched = None
    if object_class is not None and class_names:
        classes = np.asarray(object_class, dtype=np.int64).reshape(-1)
        counted = object_above & (classes >= 0)
        class_counts = np.bincount(classes[counted], minlength=len(class_names))
        matched_counted = counted[matched_objects]
        class_matched = np.bincount(classes[matched_objects][matched_counted], minlength=len(class_names))

    confusion = None
    if object_class is not None and shower_class is not None:
        truth_class = np.asarray(object_class, dtype=np.int64).reshape(-1)[matched_objects]
        pred_class = np.asarray(shower_class, dtype=np.int64).reshape(-1)[matched_showers]
        classified = truth_class >= 0  # an object of no class (a row of zeros in t_pid) has no row
        truth_class, pred_class = truth_class[classified], pred_class[classified]
        if n_classes is None:
            n_classes = int(max(truth_class.max(initial=-1), pred_class.max(initial=-1))) + 1
        confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(confusion, (truth_class, pred_class), 1)

    return ShowerMetrics(
        n_events=int(n_events), n_truth=n_truth, n_showers=n_showers, n_matched=n_matched,
        efficiency=_ratio(n_matched_above, n_truth_above), fake_rate=_ratio(fakes_above, n_showers_above),
        response=response, resolution=resolution, energy_bins=edges, bin_counts=bin_counts,
        bin_matched=bin_matched, bin_efficiency=bin_efficiency, bin_response=bin_response,
        bin_resolution=bin_resolution, matched_true_energy=true_e, matched_pred_energy=pred_e,
        pid_confusion=confusion, energy_threshold=threshold, n_truth_above=n_truth_above,
        n_showers_above=n_showers_above, n_matched_above=n_matched_above,
        efficiency_all=_ratio(n_matched, n_truth), fake_rate_all=_ratio(n_showers - n_matched, n_showers),
        response_all=response_all, resolution_all=resolution_all, class_names=tuple(class_names),
        class_counts_above=class_counts, class_matched_above=class_matched)


def _class_index(values, n_hits: int, name: str) -> np.ndarray:
    """(V,) class per hit from a (V, C) one-hot / probability array (argmax; -1 for a row of zeros, a hit of no
    class such as noise) or a (V,)/(V, 1) integer array."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] > 1:
        if array.shape[0] != n_hits:
            raise ValueError(f"{name} must have {n_hits} rows, got shape {array.shape}")
        return np.where(array.max(axis=1) > 0, np.argmax(array, axis=1), -1).astype(np.int64)
    return per_hit_vector(array, n_hits, name, dtype=np.int64)


def calorimeter_deposits(hit_energy, is_track=None) -> np.ndarray:
    """(V,) float64 hit energies with track rows (``is_track`` > 0.5) at 0: a track's "energy" is its momentum,
    not a deposit, so it weighs nothing in the IoU and adds nothing to a shower's energy."""
    deposits = np.asarray(hit_energy, dtype=np.float64).reshape(-1)
    if is_track is None:
        return deposits
    return np.where(np.asarray(is_track).reshape(-1) > 0.5, 0.0, deposits)


def evaluate_predictions(predictions: dict, truth: dict, hit_energy, row_splits, *, beta_threshold: float,
                         distance_threshold: float, iou_threshold: float, energy_bins=None,
                         is_track=None, energy_threshold: float = 0.0, kept=None,
                         class_names: tuple[str, ...] = ()) -> ShowerMetrics:
    """Cluster, match and score the predictions of a batch of E events (V hits) in one call.

    Args:
        predictions: per-hit NumPy arrays: ``beta`` (V,)/(V, 1) and ``ccoords`` (V, C), optionally ``dist``
            (V,)/(V, 1), ``energy_corr`` (V,)/(V, 1) (1 when absent) and ``pid`` (V, C) class probabilities
            (with it, the result carries the PID confusion matrix).
        truth: ``t_idx`` (V,)/(V, 1), ``t_energy`` (V,)/(V, 1) GeV, the true energy of a hit's object, read at
            the object's first hit, and ``t_pid`` (V, C) one-hot (or integer classes), needed only with ``pid``
            or ``class_names``.
        hit_energy: (V,) or (V, 1) hit energy in GeV: the ``energy`` column (column 0) of the features. Used for
            the shower energies and as the IoU weights.
        is_track: optional (V,) or (V, 1) flag (> 0.5: a track row). A track's "energy" is its momentum, not a
            deposit: tracks are clustered as :func:`~gravtrain.inference.condense` does (never condensation
            points, attached afterwards to the shower of their nearest calorimeter hit), weigh 0 in the IoU
            (a track placed in the wrong shower cannot sink a correctly clustered one) and are left out of the
            shower energies, which thus sum calorimeter deposits as the energy loss does (c · E_rec).
        row_splits: (E+1,) event boundaries.
        beta_threshold, distance_threshold: clustering parameters (:func:`~gravtrain.inference.condense`).
        iou_threshold: matching parameter (:func:`~gravtrain.inference.match_showers`).
        energy_bins: (B+1,) true-energy bin edges in GeV; :data:`DEFAULT_ENERGY_BINS` when None.
        energy_threshold: E_thr in GeV of the headline metrics (module docstring); 0: no cut.
        kept: optional (V,) bool, the hits a noise filter kept; the others are noise (:func:`condense`), and the
            truth still counts every hit, so dropped signal costs efficiency and response.
        class_names: the names of the ``t_pid`` classes: with them, the efficiency per truth class.
    """
    showers = condense(predictions["beta"], predictions["ccoords"], row_splits, beta_threshold=beta_threshold,
                       distance_threshold=distance_threshold, dist=predictions.get("dist"), is_track=is_track,
                       kept=kept)
    deposits = calorimeter_deposits(hit_energy, is_track)
    predicted_energy = shower_energies(deposits, showers, predictions.get("energy_corr"))
    matches = match_showers(truth["t_idx"], showers.cluster_ids, deposits, row_splits,
                            iou_threshold=iou_threshold, n_showers=showers.n_showers)
    n_hits = len(showers.cluster_ids)
    first_hits = matches.truth.first_hits
    object_energy = per_hit_vector(truth["t_energy"], n_hits, "t_energy")[first_hits]
    object_class = shower_class = n_classes = None
    if class_names or predictions.get("pid") is not None:
        object_class = _class_index(truth["t_pid"], n_hits, "t_pid")[first_hits]
    if predictions.get("pid") is not None:
        pid = np.asarray(predictions["pid"])
        shower_class = _class_index(pid, n_hits, "pid")[showers.condensation_points]
        n_classes = max(pid.shape[1] if pid.ndim == 2 else 1,
                        np.shape(truth["t_pid"])[1] if np.ndim(truth["t_pid"]) == 2 else 1,
                        int(object_class.max(initial=-1)) + 1)
    n_events = len(np.asarray(row_splits).reshape(-1)) - 1
    metrics = compute_shower_metrics(object_energy, predicted_energy, matches.matched_objects,
                                     matches.matched_showers, n_events=n_events,
                                     energy_bins=energy_bins, object_class=object_class,
                                     shower_class=shower_class, n_classes=n_classes,
                                     energy_threshold=energy_threshold, class_names=class_names)
    object_event = matches.truth.object_event
    metrics = replace(metrics, truth_per_event=np.bincount(object_event, minlength=n_events),
                      matched_per_event=np.bincount(object_event[matches.matched_objects], minlength=n_events))
    logger.info("evaluated %d events: above %g GeV efficiency %.3f, fake rate %.3f, response %.3f, resolution "
                "%.3f", metrics.n_events, metrics.energy_threshold, metrics.efficiency, metrics.fake_rate,
                metrics.response, metrics.resolution)
    return metrics
