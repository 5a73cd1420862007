"""Learned-space figures and truth-vs-prediction displays, coloured like the event display."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

import gravtrain.plotting as plotting_room
from gravtrain.plotting import coordinate_space_figure, truth_vs_prediction_figure
from gravtrain.plotting.event_display import NOISE_COLOUR, OBJECT_COLOURS

NOISE_RGB = to_rgba(NOISE_COLOUR)[:3]


def _toy_space(n_dims: int, n_hits: int = 40, seed: int = 0):
    """Hits of three objects (ids 2, 5, 9) and noise (-1) around separate centres of a D-dim space."""
    rng = np.random.default_rng(seed)
    object_id = rng.choice([-1, 2, 5, 9], size=n_hits)
    coords = 3.0 * object_id[:, None] + rng.normal(size=(n_hits, n_dims))
    return coords, object_id, rng.random(n_hits)


def _rows(coords: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Index of the hit drawn at each offset (matched on the first two coordinates)."""
    return np.array([np.flatnonzero(np.all(np.isclose(coords[:, :2], point), axis=1))[0] for point in offsets])


@pytest.mark.parametrize("n_dims, n_panels", [(1, 1), (2, 1), (3, 3), (5, 3)])
def test_coordinate_space_has_one_panel_per_pair_of_the_first_three_dimensions(save_png, n_dims, n_panels):
    coords, object_id, beta = _toy_space(n_dims)
    figure = coordinate_space_figure(coords, object_id, beta=beta, title="cluster space", axis_label="s")
    assert isinstance(figure, Figure) and len(figure.axes) == n_panels
    labels = [(axes.get_xlabel(), axes.get_ylabel()) for axes in figure.axes]
    expected = {1: [("s0", "truth object")], 2: [("s0", "s1")]}.get(n_dims, [("s0", "s1"), ("s0", "s2"), ("s1", "s2")])
    assert labels == expected
    for axes in figure.axes:
        assert sum(len(c.get_offsets()) for c in axes.collections) == len(coords) + 3  # plus 3 outlined hits
    assert figure.get_suptitle().startswith("cluster space\n40 hits, 3 objects")
    assert ("first 3 of 5 dimensions" in figure.get_suptitle()) == (n_dims == 5)
    if n_dims != 3:  # D = 3 draws like D = 5
        save_png(figure)


def test_coordinate_space_colours_objects_like_the_event_display_and_noise_grey_underneath():
    coords, object_id, _ = _toy_space(2)
    (hits,) = coordinate_space_figure(coords, object_id).axes[0].collections
    drawn = _rows(coords, hits.get_offsets())
    colours = hits.get_facecolors()[:, :3]
    n_noise = int((object_id < 0).sum())
    assert n_noise and (object_id[drawn[:n_noise]] < 0).all(), "noise is drawn first, underneath"
    np.testing.assert_allclose(colours[:n_noise], np.tile(NOISE_RGB, (n_noise, 1)))
    for rank, obj in enumerate((2, 5, 9)):
        np.testing.assert_allclose(colours[object_id[drawn] == obj], [to_rgba(OBJECT_COLOURS[rank])[:3]] *
                                   int((object_id == obj).sum()))


def test_coordinate_space_outlines_the_highest_beta_hit_of_each_object():
    coords, object_id, beta = _toy_space(3)
    figure = coordinate_space_figure(coords, object_id, beta=beta)
    hits, outlined = figure.axes[0].collections
    expected = [np.flatnonzero(object_id == obj)[np.argmax(beta[object_id == obj])] for obj in (2, 5, 9)]
    np.testing.assert_allclose(outlined.get_offsets(), coords[expected][:, :2])
    assert {tuple(colour[:3]) for colour in outlined.get_edgecolors()} == {(0.0, 0.0, 0.0)}
    drawn_beta = beta[_rows(coords, hits.get_offsets())]
    sizes, alphas = hits.get_sizes(), hits.get_facecolors()[:, 3]
    grows = np.argsort(drawn_beta)
    assert np.all(np.diff(sizes[grows]) >= 0) and np.all(np.diff(alphas[grows]) >= 0)
    assert len(coordinate_space_figure(coords, object_id).axes[0].collections) == 1, "no outline without beta"


@pytest.mark.parametrize("n_dims", [1, 3])  # the strip plot and the panels of pairs (D = 2, 5 draw like D = 3)
def test_coordinate_space_of_a_single_hit_or_no_hit(save_png, n_dims):
    save_png(coordinate_space_figure(np.ones((1, n_dims)), [0], beta=[0.7]), "single.png")
    save_png(coordinate_space_figure(np.zeros((0, n_dims)), np.zeros(0, int), beta=np.zeros(0)), "empty.png")


def test_coordinate_space_accepts_a_flat_array_nan_beta_and_rejects_bad_shapes():
    figure = coordinate_space_figure(np.arange(4.0), [0, 0, -1, 1], beta=[np.nan, 0.5, 0.1, 1.0])
    assert len(figure.axes) == 1 and figure.axes[0].get_xlabel() == "c0"
    with pytest.raises(ValueError, match="object_id"):
        coordinate_space_figure(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="coords"):
        coordinate_space_figure(np.zeros((3, 0)), [0, 1, 2])


def _toy_event(n_hits: int = 60, seed: int = 1):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(scale=10.0, size=(2, n_hits))
    z, energy = rng.uniform(320.0, 400.0, n_hits), rng.exponential(size=n_hits)
    truth_id = rng.choice([-1, 0, 1, 2], size=n_hits)
    # Shower 7 is truth object 1, shower 3 is truth object 2 (both matched); shower 4 is truth object 0
    # (unmatched); noise stays unassigned.
    predicted_id = np.select([truth_id == 1, truth_id == 2, truth_id == 0], [7, 3, 4], -1)
    return x, y, z, energy, truth_id, predicted_id


def _colour_by_position(axes, x, y) -> dict[tuple[float, float], tuple]:
    colours = {}
    for collection in axes.collections:
        for point, colour in zip(collection.get_offsets(), collection.get_facecolors()):
            colours[tuple(np.round(point, 9))] = tuple(colour[:3])
    return {i: colours[(round(x[i], 9), round(y[i], 9))] for i in range(len(x))}


def test_truth_vs_prediction_gives_matched_showers_their_truth_colour(save_png):
    x, y, z, energy, truth_id, predicted_id = _toy_event()
    is_track = np.zeros(len(x), bool)
    is_track[np.flatnonzero(truth_id == 1)[0]] = True
    figure = truth_vs_prediction_figure(x, y, z, energy, truth_id, predicted_id, is_track=is_track,
                                        predicted_to_truth={7: 1, 3: 2, 99: 0}, title="toy")
    assert len(figure.axes) == 4
    titles = [axes.get_title() for axes in figure.axes]
    assert titles[0].startswith("truth: x-y") and titles[3] == "prediction: z-R (side view)"
    truth = _colour_by_position(figure.axes[0], x, y)
    prediction = _colour_by_position(figure.axes[2], x, y)
    rgb = {colour: to_rgba(colour)[:3] for colour in OBJECT_COLOURS}
    for obj in (0, 1, 2):
        assert {truth[i] for i in np.flatnonzero(truth_id == obj)} == {rgb[OBJECT_COLOURS[obj]]}
    for shower, obj in ((7, 1), (3, 2)):
        assert {prediction[i] for i in np.flatnonzero(predicted_id == shower)} == {rgb[OBJECT_COLOURS[obj]]}
    unmatched = {prediction[i] for i in np.flatnonzero(predicted_id == 4)}
    assert unmatched == {rgb[OBJECT_COLOURS[3]]}, "an unmatched shower takes a colour no truth object uses"
    assert {prediction[i] for i in np.flatnonzero(predicted_id < 0)} == {NOISE_RGB}
    assert {truth[i] for i in np.flatnonzero(truth_id < 0)} == {NOISE_RGB}
    assert figure.axes[0].get_xlim() == figure.axes[2].get_xlim(), "both x-y panels are zoomed alike"
    assert "3 showers (2 matched" in figure.get_suptitle()
    save_png(figure)


def test_truth_vs_prediction_of_empty_and_single_hit_events(save_png):
    empty = np.zeros(0)
    save_png(truth_vs_prediction_figure(empty, empty, empty, empty, empty.astype(int), empty.astype(int)), "e.png")
    one = np.ones(1)
    save_png(truth_vs_prediction_figure(one, one, one * 330, one, [0], [-1], predicted_to_truth={}), "one.png")
    with pytest.raises(ValueError, match="one entry per hit"):
        truth_vs_prediction_figure(one, one, one, one, [0, 1], [0])


def test_plotting_room_imports_nothing_of_gravtrain_outside_itself():
    for path in sorted(Path(plotting_room.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        outside = [m for m in imported if m and m.split(".")[0] == "gravtrain"
                   and not m.startswith("gravtrain.plotting")]
        assert not outside, f"{path.name} imports {outside}"


@pytest.mark.parametrize("n_dims, scale", [(1, 1.0), (2, 1000.0), (3, 0.01), (5, 30.0)])
def test_coordinate_space_fits_its_labels_and_title_without_a_layout_pass(assert_fits, n_dims, scale):
    rng = np.random.default_rng(n_dims)
    object_id = rng.integers(-1, 12, 300)  # a strip plot of 12 objects: long tick labels
    figure = coordinate_space_figure(scale * rng.normal(size=(300, n_dims)), object_id, beta=rng.random(300),
                                     title="cluster space, validation event 11, step 1480")
    assert_fits(figure)
