"""Drawing a figure again into the figure an earlier call made: what makes live plots cheap.

A figure function that takes ``figure=`` draws into that figure when it is one the same function made with the
same panels: the figure, its axes and their ticks are kept, only the data artists (lines, collections,
patches, texts, images, the legend) are removed and drawn anew, and the data limits start over. Everything else
of the function runs as for a new figure, so a reused figure draws the same picture as a new one given the same
data (a test compares the pixels). What it saves is matplotlib's set-up of figures, axes and ticks. A caller
that also keeps the layout of the first draw (``keep_layout``, as the renderer does while ``label_lengths``
stays the same, and ``lay_out_again`` when it changes) saves the constrained layout too: its layout pass is a
whole draw without output.

The contract for a function that reuses: it sets, on every call, whatever it sets at all on an axes (scales,
ticks, labels, titles, aspect, grid), because those survive from the earlier call.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable

import numpy as np
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine, LayoutEngine
from matplotlib.transforms import Bbox

# The figures this module made, and for what: (the maker's name, the grid, the figure size, the subplot options).
_MADE: "weakref.WeakKeyDictionary[Figure, Hashable]" = weakref.WeakKeyDictionary()


def figure_with_axes(figure: Figure | None, maker: str, *, rows: int = 1, columns: int = 1,
                     figsize: tuple[float, float], **subplot_options) -> tuple[Figure, np.ndarray]:
    """A (rows, columns) grid of axes: those of ``figure``, cleared of their data, when ``maker`` made it with
    this grid, size and options; otherwise those of a new constrained-layout figure.

    Args:
        figure: an earlier figure to draw into, or None.
        maker: the name of the figure function asking (a figure is only reused by the function that made it).
        rows, columns: the grid of axes.
        figsize: inches.
        subplot_options: keyword arguments of ``Figure.subplots`` (``width_ratios`` and the like).

    Returns:
        The figure and a (rows, columns) array of its axes.
    """
    key = (maker, rows, columns, tuple(float(size) for size in figsize), tuple(sorted(subplot_options.items())))
    if figure is not None and _MADE.get(figure) == key:
        grid = np.asarray(figure.axes, dtype=object).reshape(rows, columns)
        for axes in grid.flat:
            _clear_data(axes)
        if isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine):  # (a kept layout stays as it is)
            lay_out_again(figure, figure.get_layout_engine())
        return figure, grid
    figure = Figure(figsize=figsize, layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False, **subplot_options)
    _MADE[figure] = key
    return figure, grid


def keep_layout(figure: Figure) -> None:
    """Keep the axes of ``figure`` where its last draw put them: no layout engine at all from now on (``'none'``
    would leave a placeholder engine, for which ``savefig`` still makes its layout pass: a whole draw without
    output)."""
    with rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        figure.set_layout_engine(None)


def lay_out_again(figure: Figure, engine: LayoutEngine) -> None:
    """Have ``engine`` lay ``figure`` out at its next draw, starting (as for a new figure) from the axes' grid
    cells, so that the result does not depend on an earlier layout."""
    figure.set_layout_engine(engine)
    for axes in figure.axes:
        axes.set_subplotspec(axes.get_subplotspec())


def label_lengths(figure: Figure) -> tuple[int, ...]:
    """What a layout of ``figure`` depends on that changes with its data: the number of lines of each title and
    the length of the longest tick label (major or minor) of each axis, as they will be drawn."""
    lengths = [len(figure.get_suptitle().splitlines())]
    for axes in figure.axes:
        axes.apply_aspect()  # an equal-aspect axes' view limits (and so its ticks) as they will be drawn
        lengths.append(len(axes.get_title().splitlines()))
        for axis in (axes.xaxis, axes.yaxis):
            lengths.append(max((len(label.get_text()) for label in axis.get_ticklabels(which="both")), default=0))
    return tuple(lengths)


def _clear_data(axes) -> None:
    """Remove the data artists of ``axes``, start its data limits and colour cycle over; keep its ticks, scales
    and labels."""
    for artists in (axes.lines, axes.collections, axes.patches, axes.texts, axes.images, axes.artists):
        for artist in list(artists):
            artist.remove()
    if axes.get_legend() is not None:
        axes.get_legend().remove()
    axes.dataLim.set_points(Bbox.null().get_points())
    axes.ignore_existing_data_limits = True
    axes.set_autoscale_on(True)
    axes.set_prop_cycle(None)
