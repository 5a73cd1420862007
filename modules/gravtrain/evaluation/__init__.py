"""Evaluation: run a model over events and score its showers (metrics and figures).

This room joins the others (config, data, model, inference, plotting); ``gravtrain evaluate`` and the end of
training both call it.
"""

from gravtrain.inference.filter_metrics import FILTER_METRIC_NAMES
from gravtrain.evaluation.runner import (
    PHYSICS_METRIC_NAMES,
    EvaluationResult,
    batch_predictions,
    busiest_event,
    concatenate_predictions,
    evaluate,
    evaluate_model,
    predict_events,
    save_result,
    score_predictions,
    shown_event,
)

__all__ = ["FILTER_METRIC_NAMES", "PHYSICS_METRIC_NAMES", "EvaluationResult", "batch_predictions", "busiest_event",
           "concatenate_predictions", "evaluate", "evaluate_model", "predict_events", "save_result",
           "score_predictions", "shown_event"]
