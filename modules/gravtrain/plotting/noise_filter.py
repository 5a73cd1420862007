"""Figures of a noise filter: its ROC curve with the working point, and the energy each truth shower keeps."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def roc_figure(noise_kept: np.ndarray, signal_kept: np.ndarray, *, working_point: tuple[float, float],
               threshold: float, auc: float) -> Figure:
    """The ROC curve: the fraction of signal hits kept against the fraction of noise hits kept, over all
    thresholds, with the chance diagonal (a constant score) and the working point (noise kept, signal kept)."""
    figure = Figure(figsize=(5.0, 4.6))
    axes = figure.add_subplot()
    axes.plot(noise_kept, signal_kept, lw=1.8, label=f"filter (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="chance (a constant score)")
    axes.plot(*working_point, "o", c="C3", label=f"score >= {threshold:g}")
    axes.set_xlabel("noise hits kept (1 - noise rejection)")
    axes.set_ylabel("signal hits kept (signal efficiency)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower right", fontsize=8)
    axes.set_title("noise filter ROC, calorimeter hits")
    figure.subplots_adjust(left=0.14, right=0.96, bottom=0.12, top=0.92)
    return figure


def shower_energy_kept_figure(fractions: np.ndarray, *, threshold: float) -> Figure:
    """Histogram of the fraction of each truth shower's energy in the hits the filter keeps."""
    figure = Figure(figsize=(5.0, 4.0))
    axes = figure.add_subplot()
    axes.hist(np.clip(fractions, 0.0, 1.0), bins=np.linspace(0.0, 1.0, 41), histtype="stepfilled", alpha=0.7)
    axes.set_yscale("log")
    axes.set_xlabel("energy fraction of a truth shower kept")
    axes.set_ylabel("truth showers")
    axes.set_title(f"{len(fractions)} truth showers, score >= {threshold:g}")
    figure.subplots_adjust(left=0.14, right=0.96, bottom=0.13, top=0.9)
    return figure
