"""Running a model over a set of events: predictions, physics metrics and the evaluation figures.

    predict_events(model, store)           -> per-hit predictions of every head, in the store's hit order
    score_predictions(predictions, store, options)
                                           -> EvaluationResult: ShowerMetrics + figures (a noise filter:
                                              FilterMetrics + its ROC and shower-energy figures)
    evaluate_model(model, store, options)  -> the two above in one call
    evaluate(config, model_path)           -> the same from files: the config names the data and thresholds

Events are packed into batches of whole events (never split, never mixed: the model keeps events apart),
in stored order, so the concatenated predictions line up with the store's hits. A model behind a noise filter
predicts for the hits it kept; its predictions are mapped back to every hit (zeros for a dropped one) with
``kept`` saying which are real, and the clustering treats the dropped hits as noise: every hit is scored.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from gravtrain.config import load_config
from gravtrain.config.schema import Config, Evaluation
from gravtrain.data import FEATURE_NAMES, PID_NAMES, DataError, EventStore, load_event_sets
from gravtrain.data.batching import HitBudgetBatcher, batch_element_spec
from gravtrain.inference import (
    DEFAULT_ENERGY_BINS,
    ShowerMetrics,
    calorimeter_deposits,
    condense,
    FilterMetrics,
    evaluate_predictions,
    filter_metrics,
    match_showers,
)
from gravtrain.inference.metrics import SCALAR_METRIC_NAMES
from gravtrain.model import HIT_INDEX, HIT_ROW_SPLITS, SIGNAL_SCORE, feature_names, load_model
from gravtrain.plotting import (
    coordinate_space_figure,
    efficiency_response_figure,
    energy_scatter_figure,
    pid_confusion_figure,
    roc_figure,
    shower_energy_kept_figure,
    truth_vs_prediction_figure,
)

logger = logging.getLogger(__name__)

#: Default hit budget of an evaluation batch; raised to the largest event when needed (events are never split).
DEFAULT_HIT_BUDGET = 100_000

#: The names of a shower model's physics metrics (``ShowerMetrics.to_dict``), logged as ``physics/<name>``:
#: the scalars, then the efficiency above the energy threshold of each truth species of ``t_pid`` present there.
PHYSICS_METRIC_NAMES: tuple[str, ...] = SCALAR_METRIC_NAMES + tuple(f"efficiency_{name}" for name in PID_NAMES)


@dataclass
class EvaluationResult:
    """What an evaluation produced.

    Attributes:
        metrics: efficiency, fake rate, response, resolution, binned arrays, PID confusion.
        figures: name -> matplotlib Figure (``efficiency_response``, ``energy_scatter``, ``pid_confusion``,
            ``event_display``, ``cluster_space``; a noise filter: ``roc``, ``shower_energy_kept``); save with
            ``figure.savefig``.
        n_events, n_hits: what was evaluated.
        display_event: the event shown in ``event_display`` and ``cluster_space``.
    """

    metrics: ShowerMetrics | FilterMetrics
    figures: dict[str, Figure] = field(default_factory=dict)
    n_events: int = 0
    n_hits: int = 0
    display_event: int = 0

    def summary(self) -> str:
        """The metrics as a few aligned lines, for a terminal or a log: above the energy threshold and for all
        energies (a noise filter: its efficiency, rejection, AUC and the energy showers keep)."""
        m = self.metrics
        if isinstance(m, FilterMetrics):
            return m.summary()
        above = f"above {m.energy_threshold:g} GeV"
        lines = [
            f"events {m.n_events}: truth objects {m.n_truth} ({m.n_truth_above} {above}), predicted showers "
            f"{m.n_showers} ({m.n_showers_above} {above}), matched objects {m.n_matched} ({m.n_matched_above} "
            f"{above})",
            f"{'':12}{above:>16}{'all energies':>16}",
            f"{'efficiency':12}{m.efficiency:16.3f}{m.efficiency_all:16.3f}   (truth objects matched to a shower)",
            f"{'fake rate':12}{m.fake_rate:16.3f}{m.fake_rate_all:16.3f}   (showers matched to no truth object)",
            f"{'response':12}{m.response:16.3f}{m.response_all:16.3f}   (mean E_pred / E_true of matches)",
            f"{'resolution':12}{m.resolution:16.3f}{m.resolution_all:16.3f}   (std / mean of that ratio)",
        ]
        by_species = m.class_efficiency
        if by_species:
            counts = dict(zip(m.class_names, m.class_counts_above))
            lines.append(f"efficiency by species {above}: " + ", ".join(
                f"{name} {value:.3f} ({counts[name]})" for name, value in by_species.items()))
        if m.pid_confusion is not None:
            lines.append(f"PID accuracy {m.pid_accuracy:.3f}   (matched showers)")
        return "\n".join(lines)


    def headline(self) -> str:
        """One line of the main metrics, for the log at an epoch end."""
        m = self.metrics
        if isinstance(m, FilterMetrics):
            return (f"at score >= {m.threshold:g} signal efficiency {m.signal_efficiency:.3f}, noise rejection "
                    f"{m.noise_rejection:.3f}, AUC {m.auc:.3f}, shower energy kept {m.shower_energy_kept:.3f}")
        return (f"above {m.energy_threshold:g} GeV efficiency {m.efficiency:.3f}, fake rate {m.fake_rate:.3f}, "
                f"response {m.response:.3f}")


#: The compiled inference pass of each model, kept while the model lives (training scores it every epoch).
_FORWARD_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _forward_function(model: keras.Model):
    """``model(batch, training=False)`` as one ``tf.function`` with a fixed input signature (one trace per model)."""
    forward = _FORWARD_FUNCTIONS.get(model)
    if forward is None:
        spec = batch_element_spec()
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function(input_signature=[{"features": spec["features"], "row_splits": spec["row_splits"]}])
        def forward(batch):
            return model_ref()(batch, training=False)

        _FORWARD_FUNCTIONS[model] = forward
    return forward


def predict_events(model: keras.Model, store: EventStore, *, hit_budget: int = DEFAULT_HIT_BUDGET) -> dict:
    """Every head of ``model`` on every hit of ``store``, as NumPy arrays in the store's hit order.

    One ``tf.function`` with a fixed input signature serves all batches and every later call for the same model
    (one trace per model).
    """
    _check_features(model, store)
    budget = max(int(hit_budget), int(store.event_sizes.max(initial=1)))
    batcher = HitBudgetBatcher(store, budget, shuffle=False)
    forward = _forward_function(model)

    parts = []
    for batch in batcher.numpy_batches(epoch=0):
        outputs = forward({"features": batch["features"], "row_splits": batch["row_splits"]})
        parts.append(batch_predictions(outputs, len(batch["features"])))
    return concatenate_predictions(parts)


def batch_predictions(outputs: dict, n_hits: int) -> dict:
    """A model's outputs for one batch of ``n_hits`` hits as per-hit NumPy arrays (behind a noise filter: mapped
    back to every hit, with ``kept``)."""
    outputs = {name: np.asarray(value) for name, value in outputs.items()}
    return _to_every_hit(outputs, n_hits) if HIT_INDEX in outputs else outputs


def concatenate_predictions(parts: list[dict]) -> dict:
    """The per-hit predictions of consecutive batches (``batch_predictions``) as one dict of arrays."""
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]} if parts else {}


def _to_every_hit(outputs: dict, n_hits: int) -> dict:
    """The outputs of a model behind a noise filter, for the K hits it kept, as (V, ...) arrays: zeros at the
    dropped hits, and ``kept`` (V,) bool saying which hits the network saw."""
    index = outputs.pop(HIT_INDEX)
    outputs.pop(HIT_ROW_SPLITS)
    every = {"kept": np.zeros(n_hits, bool)}
    every["kept"][index] = True
    for name, value in outputs.items():
        if len(value) == n_hits:  # the pre-model's score covers every hit already
            every[name] = value
            continue
        full = np.zeros((n_hits,) + value.shape[1:], value.dtype)
        full[index] = value
        every[name] = full
    return every


def _check_features(model: keras.Model, store: EventStore) -> None:
    expected = feature_names(model)
    if tuple(expected) != tuple(FEATURE_NAMES) or store.features.shape[1] != len(expected):
        raise DataError(f"the model was built for the features {', '.join(expected)} but the events have "
                        f"{', '.join(FEATURE_NAMES)}; evaluate it on data with the features it was trained on.")


def evaluate_model(model: keras.Model, store: EventStore, options: Evaluation, *, hit_budget: int = DEFAULT_HIT_BUDGET,
                   display_event: int | None = None, energy_bins=None, figures: bool = True) -> EvaluationResult:
    """Predict, cluster, match and score ``store``; draw the evaluation figures.

    Args:
        model: a gravtrain model (``build_model`` or ``load_model``).
        store: the events, with truth.
        options: the config's ``Evaluation`` section (β and distance thresholds of the clustering, IoU threshold).
        hit_budget: hits per prediction batch (raised to the largest event).
        display_event: the event drawn in the event display; by default the one with the most matched truth
            objects (:func:`shown_event`).
        energy_bins: true-energy bin edges (GeV) of the binned metrics; ten log bins from 1 to 200 by default.
        figures: draw the figures (False for metrics only).
    """
    predictions = predict_events(model, store, hit_budget=hit_budget)
    return score_predictions(predictions, store, options, display_event=display_event, energy_bins=energy_bins,
                             figures=figures)


def score_predictions(predictions: dict, store: EventStore, options: Evaluation, *, display_event: int | None = None,
                      energy_bins=None, figures: bool = True) -> EvaluationResult:
    """Cluster, match and score a model's per-hit predictions of ``store`` (``predict_events``, or a validation
    pass's, in the store's hit order); the arguments as :func:`evaluate_model`'s."""
    n_predicted = len(next(iter(predictions.values()))) if predictions else 0
    if n_predicted != store.n_hits:
        raise ValueError(f"the predictions cover {n_predicted} hits but the events have {store.n_hits}")
    if SIGNAL_SCORE in predictions and "beta" not in predictions:
        return _evaluate_noise_filter(predictions[SIGNAL_SCORE], store, options.noise_filter_threshold,
                                      figures=figures)
    truth = store.truth
    hit_energy = store.features[:, FEATURE_NAMES.index("energy")]
    with_species = float(np.sum(truth["t_pid"])) > 0
    with_pid = "pid" in predictions and with_species
    metrics = evaluate_predictions(
        {name: predictions[name] for name in ("beta", "ccoords", "dist", "energy_corr")}
        | ({"pid": predictions["pid"]} if with_pid else {}),
        truth, hit_energy, store.row_splits, beta_threshold=options.beta_threshold,
        distance_threshold=options.distance_threshold, iou_threshold=options.iou_threshold,
        energy_bins=DEFAULT_ENERGY_BINS if energy_bins is None else energy_bins,
        is_track=store.features[:, FEATURE_NAMES.index("is_track")], energy_threshold=options.energy_threshold,
        kept=predictions.get("kept"), class_names=PID_NAMES if with_species else (),
    )
    result = EvaluationResult(metrics=metrics, n_events=store.n_events, n_hits=store.n_hits)
    if figures and store.n_events:
        result.display_event = shown_event(metrics, store) if display_event is None else int(display_event)
        result.figures = _figures(store, predictions, metrics, options, result.display_event)
    return result


def _evaluate_noise_filter(score: np.ndarray, store: EventStore, threshold: float, *,
                           figures: bool) -> EvaluationResult:
    """A noise filter's :class:`~gravtrain.inference.FilterMetrics` on ``store``, with its ROC curve and the
    histogram of the energy fraction each truth shower keeps."""
    features = store.features
    metrics = filter_metrics(score, store.truth["t_idx"], features[:, FEATURE_NAMES.index("energy")],
                             store.row_splits, threshold=threshold,
                             is_track=features[:, FEATURE_NAMES.index("is_track")])
    result = EvaluationResult(metrics=metrics, n_events=store.n_events, n_hits=store.n_hits)
    if figures and store.n_events:
        result.figures = {
            "roc": roc_figure(metrics.roc_noise_kept, metrics.roc_signal_kept, threshold=threshold, auc=metrics.auc,
                              working_point=(1.0 - metrics.noise_rejection, metrics.signal_efficiency)),
            "shower_energy_kept": shower_energy_kept_figure(metrics.shower_fractions, threshold=threshold),
        }
    return result


def shown_event(metrics: ShowerMetrics, store: EventStore) -> int:
    """The event the event display draws by default: the one with the most matched truth objects, then the most
    truth objects, the first of equals; so an event with matches whenever the model matched any. Without the
    metrics' per-event counts, :func:`busiest_event`."""
    matched, truth = metrics.matched_per_event, metrics.truth_per_event
    if matched is None or truth is None or len(matched) != store.n_events or not len(matched):
        return busiest_event(store)
    return int(np.lexsort((np.arange(len(matched)), -truth, -matched))[0])


def busiest_event(store: EventStore, look_at: int = 20) -> int:
    """Of the first ``look_at`` events, the first with the most truth objects (the default event to draw)."""
    counts = []
    for index in range(min(look_at, store.n_events)):
        t_idx = store.event(index)["t_idx"]
        counts.append(len(np.unique(t_idx[t_idx >= 0])))
    return int(np.argmax(counts)) if counts else 0


def _figures(store: EventStore, predictions: dict, metrics: ShowerMetrics, options: Evaluation,
             event_index: int) -> dict[str, Figure]:
    if not 0 <= event_index < store.n_events:
        raise DataError(f"display event {event_index} does not exist: the data has {store.n_events} events "
                        f"(0..{store.n_events - 1}).")
    figures = {
        "efficiency_response": efficiency_response_figure(
            metrics.energy_bins, metrics.bin_counts, metrics.bin_efficiency, metrics.bin_response,
            metrics.bin_resolution, title=f"{metrics.n_events} events, {metrics.n_truth} truth objects"),
        "energy_scatter": energy_scatter_figure(metrics.matched_true_energy, metrics.matched_pred_energy),
    }
    if metrics.pid_confusion is not None:
        figures["pid_confusion"] = pid_confusion_figure(metrics.pid_confusion, PID_NAMES[:len(metrics.pid_confusion)])

    begin, end = (int(v) for v in store.row_splits[event_index:event_index + 2])
    event = store.event(event_index)
    one = {name: value[begin:end] for name, value in predictions.items()}
    one_splits = np.array([0, end - begin])
    features = event["features"]
    column = {name: features[:, FEATURE_NAMES.index(name)] for name in ("x", "y", "z", "is_track", "energy")}
    is_track = column["is_track"] > 0.5
    condensation = condense(one["beta"], one["ccoords"], one_splits, beta_threshold=options.beta_threshold,
                            distance_threshold=options.distance_threshold, dist=one.get("dist"), is_track=is_track,
                            kept=one.get("kept"))
    energy = column["energy"]
    t_idx = event["t_idx"].reshape(-1)
    matches = match_showers(t_idx, condensation.cluster_ids, calorimeter_deposits(energy, is_track), one_splits,
                            iou_threshold=options.iou_threshold, n_showers=condensation.n_showers)
    object_t_idx = t_idx[matches.truth.first_hits]
    shower_to_truth = {int(s): int(object_t_idx[o]) for o, s in zip(matches.matched_objects, matches.matched_showers)}
    figures["event_display"] = truth_vs_prediction_figure(
        column["x"], column["y"], column["z"], energy, t_idx, condensation.cluster_ids,
        is_track=is_track, predicted_to_truth=shower_to_truth,
        title=f"event {event_index}: truth (top) and predicted showers (bottom)")
    shown = one["kept"] if "kept" in one else np.ones(len(t_idx), bool)  # dropped hits have no cluster space
    figures["cluster_space"] = coordinate_space_figure(
        one["ccoords"][shown], t_idx[shown], beta=one["beta"].reshape(-1)[shown],
        title=f"event {event_index}: cluster space, coloured by truth object", axis_label="c")
    return figures


def evaluate(config, model_path, *, split: str = "val", overrides=(), display_event: int | None = None,
             out_dir=None, hit_budget: int = DEFAULT_HIT_BUDGET) -> EvaluationResult:
    """Evaluate a saved model on the data a config names: the Python face of ``gravtrain evaluate``.

    Args:
        config: a :class:`~gravtrain.config.schema.Config` or the path of a YAML config; its ``Data`` section
            names the events, its ``Evaluation`` section the thresholds.
        model_path: the ``.keras`` file.
        split: ``"val"`` (default) or ``"train"``.
        overrides: ``KEY=VALUE`` strings applied to a config path, as ``--set`` does.
        display_event: the event drawn in the event display (default: chosen as in :func:`evaluate_model`).
        out_dir: if given, the figures are saved there as PNG and the metrics as ``metrics.json``.
        hit_budget: hits per prediction batch.

    Returns:
        The :class:`EvaluationResult`; its ``summary()`` is what the command prints.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if not isinstance(config, Config):
        config = load_config(config, overrides)
    model = load_model(model_path)
    train_store, val_store = load_event_sets(config.Data)
    store = val_store if split == "val" else train_store
    result = evaluate_model(model, store, config.Evaluation, hit_budget=hit_budget, display_event=display_event)
    if out_dir is not None:
        save_result(result, out_dir)
    return result


def save_result(result: EvaluationResult, out_dir) -> list[Path]:
    """Write ``metrics.json`` (scalars and binned arrays) and one PNG per figure into ``out_dir``."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    payload = {
        "scalars": m.to_dict(),
        "energy_bins": m.energy_bins.tolist(),
        "bin_counts": m.bin_counts.tolist(),
        "bin_efficiency": m.bin_efficiency.tolist(),
        "bin_response": m.bin_response.tolist(),
        "bin_resolution": m.bin_resolution.tolist(),
        "pid_confusion": None if m.pid_confusion is None else m.pid_confusion.tolist(),
        "display_event": result.display_event,
    }
    paths = [out / "metrics.json"]
    # NaN marks an undefined metric (e.g. an empty bin); JSON has no NaN, so it is written as null.
    paths[0].write_text(json.dumps(_nan_to_none(payload), indent=2) + "\n")
    for name, figure in result.figures.items():
        path = out / f"{name}.png"
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths


def _nan_to_none(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(item) for item in value]
    return value
