"""Performance figures: efficiency / response / resolution per energy bin, energy scatter, PID confusion."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from gravtrain.plotting import efficiency_response_figure, energy_scatter_figure, pid_confusion_figure

EDGES = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])  # GeV
COUNTS = np.array([10.0, 0.0, 20.0, 5.0, 40.0])
EFFICIENCY = np.array([0.5, np.nan, 0.75, np.nan, 1.0])
RESPONSE = np.array([0.9, np.nan, np.nan, 1.1, 1.0])
RESOLUTION = np.array([0.3, np.nan, 0.2, np.inf, 0.1])


def _points(axes):
    """(x, y) of the points of the single errorbar plot of an axes, and its container."""
    (container,) = [c for c in axes.containers if isinstance(c, ErrorbarContainer)]
    data_line = container.lines[0]
    return np.asarray(data_line.get_xdata()), np.asarray(data_line.get_ydata()), container


def test_efficiency_response_points_sit_at_bin_centres_and_skip_nan_and_empty_bins(save_png):
    figure = efficiency_response_figure(EDGES, COUNTS, EFFICIENCY, RESPONSE, RESOLUTION, title="toy")
    assert isinstance(figure, Figure)
    efficiency_axes, response_axes, resolution_axes = figure.axes
    centres = np.sqrt(EDGES[:-1] * EDGES[1:])

    x, y, container = _points(efficiency_axes)
    np.testing.assert_allclose(x, centres[[0, 2, 4]])
    np.testing.assert_allclose(y, [0.5, 0.75, 1.0])
    x_bars, y_bars = container.lines[2]
    np.testing.assert_allclose([s[:, 0] for s in x_bars.get_segments()], [[1, 2], [4, 8], [16, 32]])
    half_heights = [0.5 * np.ptp(s[:, 1]) for s in y_bars.get_segments()]
    np.testing.assert_allclose(half_heights, np.sqrt([0.25 / 10, 0.75 * 0.25 / 20, 0.0]))

    x, y, _ = _points(response_axes)  # bin 1 is empty: its response is skipped too
    np.testing.assert_allclose(x, centres[[0, 3, 4]])
    np.testing.assert_allclose(y, [0.9, 1.1, 1.0])
    assert any(list(line.get_ydata()) == [1, 1] and line.get_linestyle() == "--" for line in response_axes.lines)

    x, y, _ = _points(resolution_axes)
    np.testing.assert_allclose(x, centres[[0, 2, 4]])
    np.testing.assert_allclose(y, [0.3, 0.2, 0.1])

    assert resolution_axes.get_xscale() == "log" and resolution_axes.get_xlabel() == "true energy [GeV]"
    assert efficiency_axes.get_ylabel() == "efficiency"
    assert figure.get_suptitle() == "toy"
    save_png(figure)


def test_efficiency_response_without_a_drawable_bin_gives_empty_panels(save_png):
    nan = np.full(5, np.nan)
    all_nan = efficiency_response_figure(EDGES, np.full(5, 10.0), nan, nan, nan)
    all_empty = efficiency_response_figure(EDGES, np.zeros(5), np.full(5, 0.5), np.ones(5), np.ones(5))
    for figure in (all_nan, all_empty):
        assert len(figure.axes) == 3
        assert all(len(_points(axes)[0]) == 0 for axes in figure.axes)
    save_png(all_nan)  # both draw the same empty panels


def test_efficiency_response_with_no_bins_or_a_zero_edge_still_draws(save_png):
    save_png(efficiency_response_figure([], [], [], [], []), "no_bins.png")
    figure = efficiency_response_figure([0.0, 1.0, 10.0], [4, 4], [0.5, 0.5], [1.0, 1.0], [0.1, 0.1])
    np.testing.assert_allclose(_points(figure.axes[0])[0], [np.sqrt(10.0)])  # [0, 1) has no log-axis centre
    save_png(figure, "zero_edge.png")


def test_efficiency_response_rejects_values_that_do_not_match_the_bins():
    with pytest.raises(ValueError, match="values per bin"):
        efficiency_response_figure(EDGES, COUNTS[:4], EFFICIENCY, RESPONSE, RESOLUTION)


def test_energy_scatter_draws_the_valid_pairs_on_log_axes_with_the_diagonal(save_png):
    true_energy = np.array([1.0, 10.0, 100.0, -1.0, np.nan, 5.0])
    predicted_energy = np.array([1.2, 9.0, 100.0, 3.0, 2.0, 0.0])
    figure = energy_scatter_figure(true_energy, predicted_energy)
    scatter_axes, ratio_axes = figure.axes
    (points,) = scatter_axes.collections
    np.testing.assert_allclose(points.get_offsets(), [[1.0, 1.2], [10.0, 9.0], [100.0, 100.0]])
    assert scatter_axes.get_xscale() == scatter_axes.get_yscale() == "log"
    assert scatter_axes.get_xlabel() == "true energy [GeV]" and scatter_axes.get_ylabel() == "predicted energy [GeV]"
    assert scatter_axes.lines, "the diagonal E_pred = E_true is drawn"
    assert ratio_axes.get_title().startswith("3 pairs, median 1.000")
    assert [list(line.get_xdata()) for line in ratio_axes.lines] == [[1, 1], [1.0, 1.0]]
    save_png(figure)


def test_energy_scatter_with_zero_pairs(save_png):
    figure = energy_scatter_figure([], [])
    assert len(figure.axes) == 2 and figure.axes[1].get_title() == "0 pairs"
    save_png(figure)
    with pytest.raises(ValueError):
        energy_scatter_figure([1.0], [])


def test_pid_confusion_is_row_normalised_and_annotated_with_counts(save_png):
    confusion = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    figure = pid_confusion_figure(confusion, ["electron", "photon", "pion"])
    matrix_axes, colour_bar_axes = figure.axes
    (image,) = matrix_axes.images
    shown = image.get_array()
    np.testing.assert_allclose(shown[:2].filled(np.nan), [[0.8, 0.2, 0.0], [0.25, 0.75, 0.0]])
    assert shown.mask[2].all(), "a class without entries is drawn blank"
    texts = [t.get_text() for t in matrix_axes.texts]
    assert len(texts) == 9 and texts[0] == "0.80\n(8)" and texts[4] == "0.75\n(3)" and texts[8] == "0"
    assert matrix_axes.get_ylabel() == "true class" and matrix_axes.get_xlabel() == "predicted class"
    assert [t.get_text() for t in matrix_axes.get_xticklabels()] == ["electron", "photon", "pion"]
    save_png(figure)


def test_pid_confusion_edge_cases(save_png):
    no_entries = pid_confusion_figure(np.zeros((2, 2)), ["a", "b"])
    assert no_entries.axes[0].images[0].get_array().mask.all()
    assert [t.get_text() for t in no_entries.axes[0].texts] == ["0"] * 4
    save_png(pid_confusion_figure(np.zeros((0, 0)), []), "no_classes.png")
    with pytest.raises(ValueError, match="class names"):
        pid_confusion_figure(np.ones((2, 2)), ["a", "b", "c"])


def test_the_energy_axis_spans_the_bins_that_hold_objects():
    """Bins to 200 GeV, as configured, for a toy whose showers stop near 30 GeV: the axis ends with the last bin
    that holds one (50 GeV), not at 200; with no object at all it spans every bin."""
    edges = np.array([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0])
    counts = np.array([0.0, 12.0, 30.0, 25.0, 9.0, 0.0, 0.0])
    values = np.full(7, 0.9)
    figure = efficiency_response_figure(edges, counts, values, values, values)
    assert figure.axes[2].get_xlim() == pytest.approx((2.0, 50.0))
    empty = efficiency_response_figure(edges, np.zeros(7), values, values, values)
    assert empty.axes[2].get_xlim() == pytest.approx((1.0, 200.0))
