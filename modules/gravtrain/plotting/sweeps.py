"""Sweep figures: the objective trial by trial with the best so far, and every trial's point as a line across
the swept keys (parallel coordinates). Plain arrays in, matplotlib figures out, never shown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import cm
from matplotlib.figure import Figure

from gravtrain.plotting.margins import margins


def optimisation_history_figure(numbers: Sequence[int], values: Sequence[float], *, metric: str,
                                maximize: bool, spreads: Sequence[float] | None = None) -> Figure:
    """Each finished trial's objective against its number (error bars: the spread over repeats) and the best
    value so far as a step line."""
    figsize = (6.4, 4.0)
    figure = Figure(figsize=figsize)
    figure.subplots_adjust(**margins(figsize, left=1.0, right=0.2, bottom=0.55, top=0.4))
    axes = figure.add_subplot()
    x, y = np.asarray(numbers, dtype=float), np.asarray(values, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    errors = None if spreads is None else np.asarray(spreads, dtype=float)[order]
    axes.errorbar(x, y, yerr=errors, fmt="o", color="tab:blue", label="trial")
    if len(y):
        best = np.maximum.accumulate(y) if maximize else np.minimum.accumulate(y)
        axes.step(x, best, where="post", color="tab:red", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel(metric)
    axes.set_title(f"{'maximize' if maximize else 'minimize'} {metric}")
    axes.legend(loc="best", fontsize="small")
    return figure


def parallel_coordinates_figure(points: Sequence[Mapping[str, object]], values: Sequence[float], *,
                                keys: Sequence[str], metric: str) -> Figure:
    """One line per trial through its value of each key and the objective, coloured by the objective. Each axis
    runs from its lowest to its highest value, both written at its ends: numbers on their range (log10 if
    positive and spanning more than a factor of 100), other values as evenly spaced categories."""
    axes_names = [*keys, metric]
    columns = [[point[k] for point in points] for k in keys] + [list(values)]
    scaled = [_scaled(column) for column in columns]
    figsize = (max(6.4, 1.9 * len(axes_names) + 1.0), 4.6)
    figure = Figure(figsize=figsize)
    figure.subplots_adjust(**margins(figsize, left=1.2, right=1.0, bottom=1.3, top=0.75))
    axes = figure.add_subplot()
    objective = np.asarray(values, dtype=float)
    low, high = (float(np.nanmin(objective)), float(np.nanmax(objective))) if len(objective) else (0.0, 1.0)
    colours = cm.viridis((objective - low) / (high - low) if high > low else np.full(len(objective), 0.5))
    positions = np.arange(len(axes_names))
    for row, colour in zip(np.array([column for column, _, _ in scaled]).T if points else [], colours):
        axes.plot(positions, row, color=colour, alpha=0.85)
    for x, (_, lowest, highest) in zip(positions, scaled):
        axes.axvline(x, color="0.6", linewidth=0.8)
        for y, text, align in ((-0.05, lowest, "top"), (1.05, highest, "bottom")):  # on white, over the lines
            axes.text(x, y, text, ha="center", va=align, fontsize=9,
                      bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0})
    axes.set_xticks(positions, axes_names, rotation=20, ha="right", fontsize=10)
    axes.set_yticks([])
    axes.set_xlim(-0.3, len(axes_names) - 0.7)
    axes.set_ylim(-0.14, 1.14)
    figure.suptitle(f"{len(points)} trials, coloured by {metric}", fontsize="medium")
    return figure


def _scaled(column: list) -> tuple[list[float], str, str]:
    """The column mapped onto [0, 1], and the texts of its lowest and highest value."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column)
    if not numbers:
        labels = sorted({str(v) for v in column})
        return ([labels.index(str(v)) / max(len(labels) - 1, 1) for v in column],
                labels[0] if labels else "", labels[-1] if labels else "")
    x = np.asarray(column, dtype=float)
    if not len(x):
        return [], "", ""
    low, high = float(x.min()), float(x.max())
    logarithmic = low > 0 and high / low > 100
    t = np.log10(x) if logarithmic else x
    t_low, t_high = float(t.min()), float(t.max())
    fraction = (t - t_low) / (t_high - t_low) if t_high > t_low else np.full(len(t), 0.5)
    return list(fraction), f"{low:.3g}" + (" (log)" if logarithmic else ""), f"{high:.3g}"
