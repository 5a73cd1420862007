"""Event display: the hits of one event in x-y and z-R, coloured by truth object (matplotlib, never shown).

Takes plain arrays, so it serves simulated events, files and predictions alike (pass predicted cluster
indices as ``object_id`` to see a reconstruction). Imports nothing of gravtrain.

The colouring (``assign_object_colours``, ``hit_colours``) and the two views (``draw_event_views``) are
shared with the other figures of this room, so an object has the same colour wherever it is drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

NOISE_COLOUR = "0.6"
OBJECT_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
)
MIN_MARKER_AREA = 1.0    # points^2, for the least energetic hit
MAX_MARKER_AREA = 60.0   # points^2, for the most energetic hit
ZOOM_MARGIN_CM = 5.0


def _marker_areas(energy: np.ndarray) -> np.ndarray:
    """Marker areas growing with sqrt(energy), so a few hot cells do not hide everything else."""
    scaled = np.sqrt(np.maximum(energy, 0.0) / max(float(np.max(energy, initial=0.0)), 1e-12))
    return MIN_MARKER_AREA + (MAX_MARKER_AREA - MIN_MARKER_AREA) * scaled


def assign_object_colours(object_id: np.ndarray, *, fixed: Mapping[int, str] | None = None,
                          avoid: Iterable[str] = ()) -> dict[int, str]:
    """A palette colour for every object id >= 0 present in ``object_id``.

    Args:
        object_id: (V,) integer object per hit; negative ids (noise, unassigned) get no entry.
        fixed: optional colours imposed on some ids (e.g. a predicted shower takes its truth object's colour).
        avoid: colours the other ids should not take (e.g. those of the truth objects); ignored once the
            palette would run out.

    Returns:
        ``{id: colour}``. Ids without a fixed colour take the free palette colours in increasing id order,
        cycling when there are more ids than colours; with neither ``fixed`` nor ``avoid`` the k-th smallest
        id gets ``OBJECT_COLOURS[k % len(OBJECT_COLOURS)]``.
    """
    fixed = {int(k): v for k, v in (fixed or {}).items()}
    taken = set(avoid) | set(fixed.values())
    free = [c for c in OBJECT_COLOURS if c not in taken] or list(OBJECT_COLOURS)
    ids = np.unique(np.asarray(object_id).ravel().astype(int))
    colours: dict[int, str] = {}
    rank = 0
    for obj in (int(i) for i in ids[ids >= 0]):
        if obj in fixed:
            colours[obj] = fixed[obj]
        else:
            colours[obj] = free[rank % len(free)]
            rank += 1
    return colours


def hit_colours(object_id: np.ndarray, colour_of_object: Mapping[int, str]) -> np.ndarray:
    """(V, 4) RGBA colour per hit: its object's colour, or ``NOISE_COLOUR`` for ids absent from the map."""
    object_id = np.asarray(object_id).ravel().astype(int)
    colours = np.tile(np.asarray(to_rgba(NOISE_COLOUR)), (len(object_id), 1))
    for obj, colour in colour_of_object.items():
        colours[object_id == obj] = to_rgba(colour)
    return colours


def draw_event_views(xy_axes: Axes, zr_axes: Axes, x: np.ndarray, y: np.ndarray, z: np.ndarray, energy: np.ndarray,
                     object_id: np.ndarray, colours: np.ndarray, is_track: np.ndarray, *,
                     zoom_to: np.ndarray | None = None) -> None:
    """Draw the hits of one event into an x-y (front) and a z-R (side) axes, with labels and titles.

    Args:
        xy_axes, zr_axes: the two axes to draw into.
        x, y, z: (V,) hit positions (cm); energy: (V,) hit energies (GeV), marker area grows with sqrt(energy).
        object_id: (V,) integer object per hit; negative ids are drawn first (underneath).
        colours: (V, 4) RGBA per hit, e.g. from ``hit_colours``.
        is_track: (V,) bool; tracks are drawn as black-edged stars on top.
        zoom_to: optional (V,) bool; limit the x-y view to the central 99 % of these hits plus a margin
            (no zoom when None or when no hit is selected).
    """
    radius = np.hypot(x, y)
    areas = _marker_areas(np.where(is_track, 0.0, energy))
    # Noise first (underneath), then objects from the largest area down, so small showers stay visible.
    order = np.lexsort((-areas, object_id >= 0))
    hits = order[~is_track[order]]
    tracks = np.flatnonzero(is_track)
    for axes, (horizontal, vertical) in ((xy_axes, (x, y)), (zr_axes, (z, radius))):
        axes.scatter(horizontal[hits], vertical[hits], s=areas[hits], c=colours[hits], linewidths=0, alpha=0.8)
        if len(tracks):
            axes.scatter(horizontal[tracks], vertical[tracks], s=90, c=colours[tracks], marker="*",
                         edgecolors="black", linewidths=0.6)
        axes.grid(alpha=0.3)
    xy_axes.set(xlabel="x [cm]", ylabel="y [cm]", title="x-y (front view)")
    xy_axes.set_aspect("equal", adjustable="datalim")
    if zoom_to is not None and np.any(zoom_to):
        # Central 99 % of the selected hits, so a lone halo hit does not set the scale.
        selected = np.stack([x[zoom_to], y[zoom_to]], axis=1)
        low, high = np.percentile(selected, 0.5, axis=0), np.percentile(selected, 99.5, axis=0)
        centre, half = 0.5 * (low + high), 0.5 * (high - low).max() + ZOOM_MARGIN_CM
        xy_axes.set_xlim(centre[0] - half, centre[0] + half)
        xy_axes.set_ylim(centre[1] - half, centre[1] + half)
        xy_axes.set_aspect("equal", adjustable="box")
        xy_axes.set_title("x-y (front view, zoomed to the objects)")
    zr_axes.set(xlabel="z [cm]", ylabel="R [cm]", title="z-R (side view)")


def event_display_figure(x: np.ndarray, y: np.ndarray, z: np.ndarray, energy: np.ndarray, object_id: np.ndarray, *,
                         is_track: np.ndarray | None = None, title: str | None = None, zoom_xy: bool = True,
                         figsize: tuple[float, float] = (13.0, 6.0)) -> Figure:
    """A two-panel figure of one event: x-y (looking along the beam) and z-R (side view).

    Args:
        x, y, z: (V,) hit positions (cm).
        energy: (V,) hit energies (GeV); marker area grows with sqrt(energy).
        object_id: (V,) integer object per hit (truth t_idx or a predicted cluster); negative means noise,
            drawn grey and underneath.
        is_track: optional (V,) bool; tracks are drawn as black-edged stars.
        title: optional figure title.
        zoom_xy: limit the x-y panel to the objects' hits (plus a margin), since showers are a few cm
            across in a detector metres wide; the z-R panel always shows every hit.
        figsize: inches.

    Returns:
        A ``matplotlib.figure.Figure`` (not attached to pyplot; save it with ``fig.savefig``).
    """
    x, y, z, energy = (np.asarray(a, dtype=float).ravel() for a in (x, y, z, energy))
    object_id = np.asarray(object_id).ravel().astype(int)
    is_track = np.zeros(len(x), bool) if is_track is None else np.asarray(is_track).ravel().astype(bool)
    colour_of_object = assign_object_colours(object_id)
    figure = Figure(figsize=figsize, layout="constrained")
    xy_axes, zr_axes = figure.subplots(1, 2, width_ratios=(1.0, 1.25))
    draw_event_views(xy_axes, zr_axes, x, y, z, energy, object_id, hit_colours(object_id, colour_of_object),
                     is_track, zoom_to=(object_id >= 0) if zoom_xy else None)
    n_noise = int((object_id < 0).sum())
    summary = (f"{len(x)} hits, {len(colour_of_object)} objects, {n_noise} noise hits (grey), "
               f"{int(is_track.sum())} tracks (stars)")
    figure.suptitle(f"{title}\n{summary}" if title else summary)
    return figure
