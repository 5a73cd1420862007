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
    """One line per trial through its value of each key (numbers on their range, log if it spans more than a
    factor of 100 and is positive; other values as categories), coloured by the objective."""
    figsize = (max(6.4, 1.8 * (len(keys) + 1)), 4.2)
    figure = Figure(figsize=figsize)
    figure.subplots_adjust(**margins(figsize, left=0.5, right=1.1, bottom=0.9, top=0.4))
    axes = figure.add_subplot()
    columns = [_normalised([point[k] for point in points]) for k in keys]
    columns.append(_normalised(list(values)))
    y = np.array(columns).T if points else np.zeros((0, len(keys) + 1))
    finite = np.asarray(values, dtype=float)
    low, high = (np.nanmin(finite), np.nanmax(finite)) if len(finite) else (0.0, 1.0)
    colours = cm.viridis((finite - low) / (high - low) if high > low else np.full(len(finite), 0.5))
    for row, colour in zip(y, colours):
        axes.plot(range(len(keys) + 1), row, color=colour, alpha=0.8)
    axes.set_xticks(range(len(keys) + 1), [*keys, metric], rotation=20, ha="right", fontsize="small")
    axes.set_yticks([0, 1], ["low", "high"])
    for x in range(len(keys) + 1):
        axes.axvline(x, color="0.6", linewidth=0.8)
    axes.set_ylim(-0.05, 1.05)
    axes.set_title("trials (colour: objective)")
    return figure


def _normalised(column: list) -> list[float]:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column)
    if not numbers:
        labels = sorted({str(v) for v in column})
        return [labels.index(str(v)) / max(len(labels) - 1, 1) for v in column]
    x = np.asarray(column, dtype=float)
    if len(x) and np.all(x > 0) and x.max() / x.min() > 100:
        x = np.log10(x)
    low, high = (x.min(), x.max()) if len(x) else (0.0, 1.0)
    return list((x - low) / (high - low) if high > low else np.full(len(x), 0.5))
