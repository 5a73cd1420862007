"""Event display: the hits of one event in x-y and z-R, coloured by truth object (matplotlib, never shown).

Takes plain arrays, so it serves simulated events, files and predictions alike (pass predicted cluster
indices as ``object_id`` to see a reconstruction). Imports nothing of gravtrain.
"""

from __future__ import annotations

import numpy as np
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
    radius = np.hypot(x, y)
    colours = np.array([to_rgba(NOISE_COLOUR)] * len(x)) if len(x) else np.zeros((0, 4))
    objects = np.unique(object_id[object_id >= 0])
    for rank, obj in enumerate(objects):
        colours[object_id == obj] = to_rgba(OBJECT_COLOURS[rank % len(OBJECT_COLOURS)])
    areas = _marker_areas(np.where(is_track, 0.0, energy))
    # Noise first (underneath), then objects from the largest area down, so small showers stay visible.
    order = np.lexsort((-areas, object_id >= 0))
    hits = order[~is_track[order]]
    tracks = np.flatnonzero(is_track)

    figure = Figure(figsize=figsize, layout="constrained")
    xy_axes, zr_axes = figure.subplots(1, 2, width_ratios=(1.0, 1.25))
    for axes, (horizontal, vertical) in ((xy_axes, (x, y)), (zr_axes, (z, radius))):
        axes.scatter(horizontal[hits], vertical[hits], s=areas[hits], c=colours[hits], linewidths=0, alpha=0.8)
        if len(tracks):
            axes.scatter(horizontal[tracks], vertical[tracks], s=90, c=colours[tracks], marker="*",
                         edgecolors="black", linewidths=0.6)
        axes.grid(alpha=0.3)
    xy_axes.set(xlabel="x [cm]", ylabel="y [cm]", title="x-y (front view)")
    xy_axes.set_aspect("equal", adjustable="datalim")
    in_objects = object_id >= 0
    if zoom_xy and in_objects.any():
        # Central 99 % of the object hits, so a lone halo hit does not set the scale.
        low = np.percentile(np.stack([x[in_objects], y[in_objects]], axis=1), 0.5, axis=0)
        high = np.percentile(np.stack([x[in_objects], y[in_objects]], axis=1), 99.5, axis=0)
        centre, half = 0.5 * (low + high), 0.5 * (high - low).max() + ZOOM_MARGIN_CM
        xy_axes.set_xlim(centre[0] - half, centre[0] + half)
        xy_axes.set_ylim(centre[1] - half, centre[1] + half)
        xy_axes.set_aspect("equal", adjustable="box")
        xy_axes.set_title("x-y (front view, zoomed to the objects)")
    zr_axes.set(xlabel="z [cm]", ylabel="R [cm]", title="z-R (side view)")
    n_noise = int((object_id < 0).sum())
    summary = f"{len(x)} hits, {len(objects)} objects, {n_noise} noise hits (grey), {len(tracks)} tracks (stars)"
    figure.suptitle(f"{title}\n{summary}" if title else summary)
    return figure
