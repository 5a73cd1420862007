"""Training figures: loss terms and learning rate against the global step, with the stages marked.

Takes plain arrays (what the training loop logs) and returns matplotlib figures, never shown. A stage is a
block of steps; ``stage_boundaries`` are the global steps at which a stage begins, and ``stage_names`` name
either the stages that begin at those boundaries (one name per boundary) or every stage including the one
before the first boundary (one name more than boundaries).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from gravtrain.plotting.margins import margins

STAGE_SHADES = ("0.93", "0.85")


def _one_axes_margins(figsize: tuple[float, float]) -> dict[str, float]:
    """Room for (symmetric-)log tick labels and the axis label on the left, one title line above."""
    return margins(figsize, left=1.0, right=0.2, bottom=0.55, top=0.4)


def _stage_spans(stage_boundaries: Sequence[float], stage_names: Sequence[str], first_step: float | None,
                 last_step: float | None) -> list[tuple[float, float, str]]:
    """(start, end, name) of every stage, from the first step (or boundary) to the last; unnamed stages get ""."""
    boundaries = [float(b) for b in stage_boundaries]
    names = [str(name) for name in stage_names]
    if names and len(names) not in (len(boundaries), len(boundaries) + 1):
        raise ValueError(f"{len(names)} stage names for {len(boundaries)} stage boundaries: give one name per "
                         f"boundary, or one more for the stage before the first boundary")
    if boundaries != sorted(boundaries):
        raise ValueError(f"stage boundaries must be increasing, got {boundaries}")
    known = boundaries + [s for s in (first_step, last_step) if s is not None]
    if not known:
        return []
    starts = [min(known)] + boundaries
    end = max(known)
    names = (names if len(names) == len(starts) else [""] + names) if names else [""] * len(starts)
    return list(zip(starts, starts[1:] + [end], names))


def _label_stages(axes: Axes, spans: list[tuple[float, float, str]], *, centred: bool) -> None:
    """Write each named stage at the top of the axes, at its start (rotated) or in its middle."""
    transform = blended_transform_factory(axes.transData, axes.transAxes)
    for start, end, name in spans:
        if not name:
            continue
        if centred:
            axes.text(0.5 * (start + end), 0.98, name, transform=transform, ha="center", va="top", fontsize=8)
        else:
            axes.text(start, 0.98, f" {name}", transform=transform, ha="left", va="top", rotation=90, fontsize=8)


def _finite_steps(steps: np.ndarray) -> tuple[float | None, float | None]:
    """First and last finite step, or (None, None) when there is none."""
    finite = steps[np.isfinite(steps)]
    return (float(finite.min()), float(finite.max())) if len(finite) else (None, None)


def loss_curves_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, stage_boundaries: Sequence[float] = (),
                       stage_names: Sequence[str] = (), log_y: bool = True,
                       figsize: tuple[float, float] = (10.0, 6.0)) -> Figure:
    """One line per loss term against the global step, with dashed lines where stages begin.

    Args:
        curves: ``{term name: (steps, values)}``, steps and values (V,) arrays of the same length (values in
            the loss's own units). NaN / infinite points are left out and counted in the term's legend entry;
            an empty curve is listed in the legend as having no values.
        stage_boundaries: global steps at which a stage begins; each gets a vertical dashed line.
        stage_names: names of the stages (see the module docstring), written at the start of each stage.
        log_y: logarithmic y axis when every finite value is positive, symmetric-log otherwise (linear
            within the smallest non-zero magnitude); linear when False.
        figsize: inches.

    Returns:
        A ``matplotlib.figure.Figure`` with one axes.
    """
    lines = []  # (label, steps, values) of each term, its finite points only
    for name, (steps, values) in curves.items():
        steps, values = np.asarray(steps, dtype=float).ravel(), np.asarray(values, dtype=float).ravel()
        if len(steps) != len(values):
            raise ValueError(f"loss term {name!r}: {len(steps)} steps but {len(values)} values")
        finite = np.isfinite(steps) & np.isfinite(values)
        label = name if len(steps) else f"{name} (no values)"
        if (~finite).any():
            label += f" ({int((~finite).sum())} non-finite dropped)"
        lines.append((label, steps[finite], values[finite]))
    # the legend beside the axes, never over the curves: its width from the longest label
    legend = LEGEND_HANDLE_INCHES + LEGEND_CHARACTER_INCHES * max((len(label) for label, _, _ in lines), default=0)
    figure = Figure(figsize=figsize)
    axes = figure.subplots(gridspec_kw=margins(figsize, left=1.0, right=0.2 + (legend if lines else 0.0),
                                               bottom=0.55, top=0.4))
    for index, (label, steps, values) in enumerate(lines):
        colour, style = term_style(index)
        axes.plot(steps, values, linewidth=1.2, color=colour, linestyle=style, label=label)
    kept_steps, kept_values = [steps for _, steps, _ in lines], [values for _, _, values in lines]
    all_values = np.concatenate(kept_values) if kept_values else np.zeros(0)
    all_steps = np.concatenate(kept_steps) if kept_steps else np.zeros(0)
    if log_y and (all_values > 0).all():
        axes.set_yscale("log")
    elif log_y:
        magnitudes = np.abs(all_values[all_values != 0])
        axes.set_yscale("symlog", linthresh=float(magnitudes.min()) if len(magnitudes) else 1.0)
    else:
        axes.set_yscale("linear")
    for boundary in stage_boundaries:
        axes.axvline(float(boundary), color="0.3", linestyle="--", linewidth=1)
    _label_stages(axes, _stage_spans(stage_boundaries, stage_names, *_finite_steps(all_steps)), centred=False)
    axes.set(xlabel="global step", ylabel="loss", title="loss terms")
    axes.grid(alpha=0.3, which="both")
    if curves:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)
    return figure


#: Colours (matplotlib's 10-colour ``tab10`` cycle) and line styles of the loss terms: the n-th term gets colour
#: n mod 10 and the style of its round of 10, so no two of up to 40 terms look alike.
TERM_COLOURS = tuple(f"tab:{name}" for name in ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray",
                                                 "olive", "cyan"))
TERM_LINE_STYLES = ("-", "--", ":", "-.")
#: Width of the legend's line sample and padding, and of one character of its 8-point labels, in inches.
LEGEND_HANDLE_INCHES = 0.75
LEGEND_CHARACTER_INCHES = 0.07


def term_style(index: int) -> tuple[str, str]:
    """The colour and line style of the ``index``-th loss term (`TERM_COLOURS`, `TERM_LINE_STYLES`)."""
    return (TERM_COLOURS[index % len(TERM_COLOURS)],
            TERM_LINE_STYLES[(index // len(TERM_COLOURS)) % len(TERM_LINE_STYLES)])


def schedule_figure(steps: np.ndarray, learning_rate: np.ndarray, *, stage_boundaries: Sequence[float] = (),
                    stage_names: Sequence[str] = (), figsize: tuple[float, float] = (10.0, 4.5)) -> Figure:
    """The learning rate against the global step (log y axis), with each stage shaded and named.

    Args:
        steps: (N,) global steps.
        learning_rate: (N,) learning rate at those steps (per step, no unit); non-finite or non-positive
            values cannot be drawn on the log axis and are left out.
        stage_boundaries: global steps at which a stage begins; stages are shaded alternately from the
            first step (or boundary) to the last.
        stage_names: names of the stages (see the module docstring), written in the middle of each stage.
        figsize: inches.

    Returns:
        A ``matplotlib.figure.Figure`` with one axes.
    """
    steps = np.asarray(steps, dtype=float).ravel()
    learning_rate = np.asarray(learning_rate, dtype=float).ravel()
    if len(steps) != len(learning_rate):
        raise ValueError(f"{len(steps)} steps but {len(learning_rate)} learning rates")
    keep = np.isfinite(steps) & np.isfinite(learning_rate) & (learning_rate > 0)
    figure = Figure(figsize=figsize)
    axes = figure.subplots(gridspec_kw=_one_axes_margins(figsize))
    spans = _stage_spans(stage_boundaries, stage_names, *_finite_steps(steps[keep]))
    for index, (start, end, _) in enumerate(spans):
        if end > start:
            axes.axvspan(start, end, color=STAGE_SHADES[index % len(STAGE_SHADES)], linewidth=0, zorder=0)
    axes.plot(steps[keep], learning_rate[keep], color="tab:blue", linewidth=1.5)
    axes.set_yscale("log")
    _label_stages(axes, spans, centred=True)
    axes.set(xlabel="global step", ylabel="learning rate", title="learning-rate schedule")
    axes.grid(alpha=0.3, which="both")
    return figure
