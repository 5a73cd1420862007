"""Learned spaces and reconstructions of one event (matplotlib, never shown).

``coordinate_space_figure`` shows the hits of one event in a learned space (the cluster space, or the space
of a GravNet layer), coloured by truth object; ``truth_vs_prediction_figure`` puts the truth objects of an
event above the predicted showers, in the views of the event display. Colours are those of
``event_display``, so an object keeps its colour from figure to figure. Takes plain arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from gravtrain.plotting.event_display import assign_object_colours, draw_event_views, hit_colours
from gravtrain.plotting.margins import TITLE_LINE, margins

SPACE_MARKER_AREA = 12.0        # points^2, every hit when no beta is given
MIN_BETA_MARKER_AREA = 3.0      # points^2, at beta = 0
MAX_BETA_MARKER_AREA = 50.0     # points^2, at beta = 1
MIN_BETA_ALPHA = 0.15           # opacity at beta = 0 (1 at beta = 1)
CONDENSATION_MARKER_AREA = 80.0  # points^2, the outlined highest-beta hit of each object
STRIP_JITTER = 0.25             # half-height of the random vertical spread of a strip plot row
MAX_STRIP_TICK_LABELS = 25
PLANE_PAIRS = ((0, 1), (0, 2), (1, 2))


def _condensation_hits(object_id: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Index of the highest-beta hit of each object (ids >= 0), in increasing id order."""
    objects = np.unique(object_id[object_id >= 0])
    return np.array([np.flatnonzero(object_id == obj)[np.argmax(beta[object_id == obj])] for obj in objects],
                    dtype=int)


def _strip_rows(object_id: np.ndarray) -> tuple[np.ndarray, list[int], list[str]]:
    """Row per hit for a strip plot (noise at 0, the k-th object at k + 1), jittered; plus ticks and labels."""
    objects = np.unique(object_id[object_id >= 0])
    rows = np.where(object_id < 0, 0, np.searchsorted(objects, object_id) + 1).astype(float)
    rows += np.random.default_rng(0).uniform(-STRIP_JITTER, STRIP_JITTER, len(rows))
    if len(objects) > MAX_STRIP_TICK_LABELS:
        return rows, [0], ["noise"]
    return rows, list(range(len(objects) + 1)), ["noise"] + [f"object {obj}" for obj in objects]


def coordinate_space_figure(coords: np.ndarray, object_id: np.ndarray, *, beta: np.ndarray | None = None,
                            title: str | None = None, axis_label: str = "c",
                            figsize: tuple[float, float] | None = None) -> Figure:
    """The hits of one event in a learned space, coloured by truth object.

    Args:
        coords: (V, D) coordinates of the V hits in the space, D >= 1 (learned, no unit); a (V,) array is
            taken as D = 1. D = 1 gives a strip plot (the coordinate against one row per truth object),
            D = 2 one panel, D >= 3 three panels of the pairs (0, 1), (0, 2), (1, 2): only the first three
            dimensions are shown, and the title says so when D > 3.
        object_id: (V,) truth object per hit (t_idx); negative means noise, drawn grey and underneath.
        beta: optional (V,) condensation confidence in [0, 1] (NaN counts as 0); marker area and opacity
            grow with beta, high-beta hits are drawn on top, and the highest-beta hit of each truth object is
            outlined in black.
        title: optional figure title, above a summary line.
        axis_label: name of the space's coordinates; axes are labelled ``f"{axis_label}{dim}"``.
        figsize: inches; by default 5.5 inches per panel.

    Returns:
        A ``matplotlib.figure.Figure`` (not attached to pyplot).
    """
    coords = np.asarray(coords, dtype=float)
    coords = coords[:, None] if coords.ndim == 1 else coords
    if coords.ndim != 2 or coords.shape[1] < 1:
        raise ValueError(f"coords must have shape (V, D) with D >= 1, got {coords.shape}")
    n_hits, n_dims = coords.shape
    object_id = np.asarray(object_id).ravel().astype(int)
    if len(object_id) != n_hits:
        raise ValueError(f"object_id has {len(object_id)} entries for {n_hits} hits")
    colour_of_object = assign_object_colours(object_id)
    colours = hit_colours(object_id, colour_of_object)
    if beta is None:
        confidence = np.zeros(n_hits)
        areas = np.full(n_hits, SPACE_MARKER_AREA)
        colours[:, 3] = 0.8
        condensation = np.zeros(0, dtype=int)
    else:
        confidence = np.clip(np.nan_to_num(np.asarray(beta, dtype=float).ravel(), nan=0.0), 0.0, 1.0)
        if len(confidence) != n_hits:
            raise ValueError(f"beta has {len(confidence)} entries for {n_hits} hits")
        areas = MIN_BETA_MARKER_AREA + (MAX_BETA_MARKER_AREA - MIN_BETA_MARKER_AREA) * confidence
        colours[:, 3] = MIN_BETA_ALPHA + (1.0 - MIN_BETA_ALPHA) * confidence
        condensation = _condensation_hits(object_id, confidence)
    # Noise underneath, then objects from the lowest beta up, so condensation points stay visible.
    order = np.lexsort((confidence, object_id >= 0))

    pairs = ((0,),) if n_dims == 1 else PLANE_PAIRS[:1] if n_dims == 2 else PLANE_PAIRS
    summary = f"{n_hits} hits, {len(colour_of_object)} objects, {int((object_id < 0).sum())} noise hits (grey)"
    if beta is not None:
        summary += "\nsize and opacity grow with beta; outlined: highest-beta hit of each object"
    if n_dims > 3:
        summary += f"\nshowing the first 3 of {n_dims} dimensions"
    suptitle = f"{title}\n{summary}" if title else summary
    figsize = figsize or (5.5 * len(pairs) + 0.5, 5.0)
    figure = Figure(figsize=figsize)
    grid = figure.subplots(1, len(pairs), squeeze=False, gridspec_kw=margins(
        figsize, left=1.1 if n_dims == 1 else 0.85, right=0.2, bottom=0.55,
        top=0.2 + TITLE_LINE * len(suptitle.splitlines()), gap=0.85, columns=len(pairs)))
    for axes, pair in zip(grid[0], pairs):
        horizontal = coords[:, pair[0]]
        if len(pair) == 1:
            vertical, ticks, tick_labels = _strip_rows(object_id)
            axes.set_yticks(ticks, tick_labels)
            axes.set(xlabel=f"{axis_label}{pair[0]}", ylabel="truth object")
        else:
            vertical = coords[:, pair[1]]
            axes.set(xlabel=f"{axis_label}{pair[0]}", ylabel=f"{axis_label}{pair[1]}")
            axes.set_aspect("equal", adjustable="datalim")
        axes.scatter(horizontal[order], vertical[order], s=areas[order], c=colours[order], linewidths=0)
        if len(condensation):
            axes.scatter(horizontal[condensation], vertical[condensation], s=CONDENSATION_MARKER_AREA,
                         c=colours[condensation, :3], edgecolors="black", linewidths=1.2)
        axes.grid(alpha=0.3)
    figure.suptitle(suptitle)
    return figure


def truth_vs_prediction_figure(x: np.ndarray, y: np.ndarray, z: np.ndarray, energy: np.ndarray,
                               truth_id: np.ndarray, predicted_id: np.ndarray, *, is_track: np.ndarray | None = None,
                               predicted_to_truth: Mapping[int, int] | None = None, title: str | None = None,
                               zoom_xy: bool = True, figsize: tuple[float, float] = (13.0, 11.0)) -> Figure:
    """Truth objects (top row) and predicted showers (bottom row) of one event, in x-y and z-R.

    Args:
        x, y, z: (V,) hit positions (cm).
        energy: (V,) hit energies (GeV); marker area grows with sqrt(energy).
        truth_id: (V,) truth object per hit (t_idx); negative means noise, drawn grey and underneath.
        predicted_id: (V,) predicted shower per hit; -1 (any negative) means unassigned, drawn grey.
        is_track: optional (V,) bool; tracks are drawn as black-edged stars.
        predicted_to_truth: optional ``{shower id: truth id}`` of the showers matched to a truth object;
            a matched shower takes its truth object's colour, the other showers take the palette colours
            that no truth object of the event uses (the whole palette once those run out).
        title: optional figure title, above a summary line.
        zoom_xy: limit both x-y panels to the same region around the hits of the truth objects and of the
            predicted showers (plus a margin); the z-R panels always show every hit.
        figsize: inches.

    Returns:
        A ``matplotlib.figure.Figure`` with four axes: truth x-y, truth z-R, prediction x-y, prediction z-R.
    """
    x, y, z, energy = (np.asarray(a, dtype=float).ravel() for a in (x, y, z, energy))
    truth_id = np.asarray(truth_id).ravel().astype(int)
    predicted_id = np.asarray(predicted_id).ravel().astype(int)
    if not len(x) == len(y) == len(z) == len(energy) == len(truth_id) == len(predicted_id):
        raise ValueError("x, y, z, energy, truth_id and predicted_id must have one entry per hit")
    is_track = np.zeros(len(x), bool) if is_track is None else np.asarray(is_track).ravel().astype(bool)
    truth_colours = assign_object_colours(truth_id)
    present_showers = set(np.unique(predicted_id[predicted_id >= 0]).tolist())
    matched = {int(shower): truth_colours[int(obj)] for shower, obj in (predicted_to_truth or {}).items()
               if int(shower) in present_showers and int(obj) in truth_colours}
    shower_colours = assign_object_colours(predicted_id, fixed=matched, avoid=truth_colours.values())
    zoom_to = ((truth_id >= 0) | (predicted_id >= 0)) if zoom_xy else None

    figure = Figure(figsize=figsize, layout="constrained")
    rows = figure.subplots(2, 2, width_ratios=(1.0, 1.25))
    for (xy_axes, zr_axes), ids, colour_of_object, name in ((rows[0], truth_id, truth_colours, "truth"),
                                                            (rows[1], predicted_id, shower_colours, "prediction")):
        draw_event_views(xy_axes, zr_axes, x, y, z, energy, ids, hit_colours(ids, colour_of_object), is_track,
                         zoom_to=zoom_to)
        for axes in (xy_axes, zr_axes):
            axes.set_title(f"{name}: {axes.get_title()}")
    summary = (f"{len(x)} hits; truth: {len(truth_colours)} objects, {int((truth_id < 0).sum())} noise hits (grey); "
               f"prediction: {len(shower_colours)} showers ({len(matched)} matched, in their object's colour), "
               f"{int((predicted_id < 0).sum())} unassigned hits (grey)")
    figure.suptitle(f"{title}\n{summary}" if title else summary)
    return figure

