"""The event display returns a two-panel matplotlib figure, from plain arrays."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import gravtrain.plotting.event_display as event_display_module
from gravtrain.plotting import event_display_figure


def test_figure_of_a_simulated_event_is_produced(tmp_path):
    from gravtrain.data import simulate_events
    from gravtrain.data.names import FEATURE_INDEX as column

    store = simulate_events(1, n_particles=(3, 3), seed=2)
    event = store.event(0)
    f = event["features"]
    figure = event_display_figure(f[:, column["x"]], f[:, column["y"]], f[:, column["z"]], f[:, column["energy"]],
                                  event["t_idx"][:, 0], is_track=f[:, column["is_track"]] > 0, title="toy event")
    assert isinstance(figure, Figure)
    xy_axes, zr_axes = figure.axes
    assert xy_axes.get_xlabel() == "x [cm]" and zr_axes.get_ylabel() == "R [cm]"
    drawn = sum(len(c.get_offsets()) for c in zr_axes.collections)
    assert drawn == store.n_hits
    path = tmp_path / "event.png"
    figure.savefig(path, dpi=60)
    assert path.stat().st_size > 10_000


def test_noise_only_and_empty_events_do_not_fail():
    rng = np.random.default_rng(0)
    x, y, z, e = rng.normal(size=(4, 20))
    assert isinstance(event_display_figure(x, y, z + 330, np.abs(e), np.full(20, -1)), Figure)
    empty = np.zeros(0)
    assert isinstance(event_display_figure(empty, empty, empty, empty, empty.astype(int)), Figure)


def test_plotting_imports_nothing_of_gravtrain():
    tree = ast.parse(Path(event_display_module.__file__).read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("gravtrain")]
