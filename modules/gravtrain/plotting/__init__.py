"""Figures (matplotlib) returned as objects and never shown; this room imports nothing of gravtrain."""

from gravtrain.plotting.event_display import event_display_figure
from gravtrain.plotting.noise_filter import roc_figure, shower_energy_kept_figure
from gravtrain.plotting.performance import efficiency_response_figure, energy_scatter_figure, pid_confusion_figure
from gravtrain.plotting.spaces import coordinate_space_figure, truth_vs_prediction_figure
from gravtrain.plotting.training import loss_curves_figure, schedule_figure

__all__ = [
    "coordinate_space_figure",
    "efficiency_response_figure",
    "energy_scatter_figure",
    "event_display_figure",
    "loss_curves_figure",
    "pid_confusion_figure",
    "roc_figure",
    "schedule_figure",
    "shower_energy_kept_figure",
    "truth_vs_prediction_figure",
]
