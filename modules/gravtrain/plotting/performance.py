"""Physics performance figures: efficiency and energy response per energy bin, energy scatter, PID confusion.

Takes the plain arrays the metrics produce (per-bin values, matched energy pairs, a confusion matrix) and
returns matplotlib figures, never shown. Bins or pairs that cannot be drawn (NaN, empty, not positive on a
log axis) are left out quietly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

RATIO_RANGE = (0.0, 2.0)   # E_pred / E_true shown in the ratio histogram; outside values go to the edge bins
RATIO_BINS = 40
EMPTY_ENERGY_RANGE_GEV = (0.1, 100.0)


def _errorbar(axes: Axes, centre: np.ndarray, low: np.ndarray, high: np.ndarray, value: np.ndarray,
              keep: np.ndarray, error: np.ndarray | None = None) -> None:
    """Points at the kept bins, with horizontal bars over the bin extent (and vertical ones if given)."""
    axes.errorbar(centre[keep], value[keep], xerr=np.stack([centre[keep] - low[keep], high[keep] - centre[keep]]),
                  yerr=None if error is None else error[keep], fmt="o", markersize=4, capsize=2)


def efficiency_response_figure(energy_bins: np.ndarray, bin_counts: np.ndarray, bin_efficiency: np.ndarray,
                               bin_response: np.ndarray, bin_resolution: np.ndarray, *,
                               title: str | None = None) -> Figure:
    """Efficiency, energy response and resolution against true energy, one panel each (shared log x axis).

    Args:
        energy_bins: (B + 1,) bin edges in true shower energy (GeV), increasing. Each point sits at the
            geometric mean of its bin's edges, with a horizontal bar over the bin; bins with an edge <= 0
            cannot be drawn on the log axis and are skipped.
        bin_counts: (B,) number of truth objects per bin (n of the binomial error).
        bin_efficiency: (B,) fraction of truth objects matched to a predicted shower, drawn with the binomial
            error sqrt(eff (1 - eff) / n).
        bin_response: (B,) mean E_pred / E_true of the matched pairs (dashed line at 1).
        bin_resolution: (B,) std / mean of E_pred / E_true of the matched pairs.
        title: optional figure title.

    Every panel skips its NaN / infinite bins and empty bins (count <= 0), with no warning, so an all-NaN
    or all-empty input gives empty panels.

    Returns:
        A ``matplotlib.figure.Figure`` with three axes (efficiency, response, resolution), top to bottom.
    """
    edges = np.asarray(energy_bins, dtype=float).ravel()
    counts, efficiency, response, resolution = (np.asarray(a, dtype=float).ravel() for a in
                                                (bin_counts, bin_efficiency, bin_response, bin_resolution))
    n_bins = max(len(edges) - 1, 0)
    if not len(counts) == len(efficiency) == len(response) == len(resolution) == n_bins:
        raise ValueError(f"{len(edges)} bin edges need {n_bins} values per bin; got counts {len(counts)}, "
                         f"efficiency {len(efficiency)}, response {len(response)}, resolution {len(resolution)}")
    low, high = edges[:-1], edges[1:]
    drawable = (low > 0) & (high > low) & np.isfinite(low) & np.isfinite(high) & (counts > 0)
    centre = np.sqrt(np.where(drawable, low * high, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        efficiency_error = np.sqrt(np.clip(efficiency * (1.0 - efficiency), 0.0, None) / counts)

    figure = Figure(figsize=(7.0, 9.0), layout="constrained")
    efficiency_axes, response_axes, resolution_axes = figure.subplots(3, 1, sharex=True)
    _errorbar(efficiency_axes, centre, low, high, efficiency,
              drawable & np.isfinite(efficiency) & np.isfinite(efficiency_error), efficiency_error)
    _errorbar(response_axes, centre, low, high, response, drawable & np.isfinite(response))
    _errorbar(resolution_axes, centre, low, high, resolution, drawable & np.isfinite(resolution))
    efficiency_axes.set(ylabel="efficiency", ylim=(0.0, 1.05), title="efficiency (matched / true objects)")
    response_axes.axhline(1.0, color="black", linestyle="--", linewidth=1)
    response_axes.set(ylabel=r"response $\langle E_{pred} / E_{true} \rangle$", title="energy response")
    resolution_axes.set(ylabel=r"resolution $\sigma / \mu$ of $E_{pred} / E_{true}$", title="energy resolution",
                        xlabel="true energy [GeV]")
    resolution_axes.set_ylim(bottom=0.0)
    resolution_axes.set_xscale("log")
    positive = (low > 0) & (high > low) & np.isfinite(low) & np.isfinite(high)
    # The energy axis spans the bins that hold objects (a toy's 30 GeV, not the configured bins' 200), else every
    # bin; explicit limits, since an axis left to autoscale over no positive data cannot be log-scaled.
    shown = drawable if drawable.any() else positive
    resolution_axes.set_xlim(*((low[shown].min(), high[shown].max()) if shown.any() else EMPTY_ENERGY_RANGE_GEV))
    for axes in (efficiency_axes, response_axes, resolution_axes):
        axes.grid(alpha=0.3, which="both")
    if title:
        figure.suptitle(title)
    return figure


def energy_scatter_figure(true_energy: np.ndarray, predicted_energy: np.ndarray) -> Figure:
    """Predicted against true shower energy of the matched pairs, and the histogram of their ratio.

    Args:
        true_energy: (P,) true energy of each matched truth object (GeV).
        predicted_energy: (P,) energy of the predicted shower matched to it (GeV).

    Pairs with a non-finite or non-positive energy are left out (log axes); zero pairs give empty panels.
    The left panel is log-log with the diagonal E_pred = E_true; the right one histograms E_pred / E_true in
    ``RATIO_RANGE`` (values outside are counted in the edge bins) with a dashed line at 1 and the median.

    Returns:
        A ``matplotlib.figure.Figure`` with two axes (scatter, ratio histogram).
    """
    true_energy = np.asarray(true_energy, dtype=float).ravel()
    predicted_energy = np.asarray(predicted_energy, dtype=float).ravel()
    if len(true_energy) != len(predicted_energy):
        raise ValueError(f"{len(true_energy)} true energies but {len(predicted_energy)} predicted ones")
    keep = np.isfinite(true_energy) & np.isfinite(predicted_energy) & (true_energy > 0) & (predicted_energy > 0)
    true_energy, predicted_energy = true_energy[keep], predicted_energy[keep]
    ratio = predicted_energy / true_energy

    figure = Figure(figsize=(12.0, 5.5), layout="constrained")
    scatter_axes, ratio_axes = figure.subplots(1, 2)
    scatter_axes.scatter(true_energy, predicted_energy, s=8, alpha=0.6, linewidths=0)
    scatter_axes.set(xscale="log", yscale="log", xlabel="true energy [GeV]", ylabel="predicted energy [GeV]",
                     title="matched pairs")
    if len(ratio):
        low = min(true_energy.min(), predicted_energy.min()) / 1.5
        high = max(true_energy.max(), predicted_energy.max()) * 1.5
    else:
        low, high = EMPTY_ENERGY_RANGE_GEV
    scatter_axes.set(xlim=(low, high), ylim=(low, high))
    scatter_axes.set_aspect("equal", adjustable="box")
    scatter_axes.axline((1.0, 1.0), (10.0, 10.0), color="black", linestyle="--", linewidth=1,
                        label=r"$E_{pred} = E_{true}$")
    scatter_axes.legend(loc="upper left")
    scatter_axes.grid(alpha=0.3, which="both")

    ratio_axes.hist(np.clip(ratio, *RATIO_RANGE), bins=RATIO_BINS, range=RATIO_RANGE, histtype="stepfilled",
                    alpha=0.7)
    ratio_axes.axvline(1.0, color="black", linestyle="--", linewidth=1)
    summary = f"{len(ratio)} pairs"
    if len(ratio):
        median = float(np.median(ratio))
        ratio_axes.axvline(median, color="tab:red", linewidth=1)
        summary += f", median {median:.3f} (red), mean {ratio.mean():.3f}, std {ratio.std():.3f}"
    ratio_axes.set(xlabel=r"$E_{pred} / E_{true}$ (edge bins hold the overflow)", ylabel="pairs",
                   xlim=RATIO_RANGE, title=summary)
    ratio_axes.grid(alpha=0.3)
    return figure


def pid_confusion_figure(confusion: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Particle-identification confusion matrix, normalised per true class, with the counts written in.

    Args:
        confusion: (C, C) counts; row i = true class i, column j = predicted class j.
        class_names: C names, in the order of the rows and columns.

    Each cell is coloured by its fraction of the row (0 to 1, so each row sums to 1) and annotated with that
    fraction and the count; rows without any entry are drawn blank.

    Returns:
        A ``matplotlib.figure.Figure`` with the matrix axes and its colour bar.
    """
    counts = np.asarray(confusion, dtype=float)
    names = [str(name) for name in class_names]
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] != len(names):
        raise ValueError(f"confusion must be (C, C) with C = {len(names)} class names, got shape {counts.shape}")
    row_totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, row_totals, out=np.full_like(counts, np.nan), where=row_totals > 0)

    size = 2.0 + 0.9 * len(names)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    axes = figure.subplots()
    colour_scale = ScalarMappable(Normalize(0.0, 1.0), "Blues")
    if len(names):  # imshow of a 0 x 0 matrix would warn about singular limits
        axes.imshow(np.ma.masked_invalid(fractions), cmap=colour_scale.cmap, norm=colour_scale.norm)
    figure.colorbar(colour_scale, ax=axes, label="fraction of the true class")
    for (row, column), count in np.ndenumerate(counts):
        fraction = fractions[row, column]
        count_text = f"{int(count)}" if float(count).is_integer() else f"{count:.3g}"
        text = count_text if np.isnan(fraction) else f"{fraction:.2f}\n({count_text})"
        axes.text(column, row, text, ha="center", va="center", fontsize=8,
                  color="white" if fraction > 0.5 else "black")
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="predicted class", ylabel="true class", title="PID confusion (rows normalised)")
    return figure
