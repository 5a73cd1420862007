"""Training figures: loss terms and learning-rate schedule against the global step, with the stages marked."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from gravtrain.plotting import loss_curves_figure, schedule_figure

STEPS = np.arange(0, 300, 10)


def _boundary_lines(axes) -> list[float]:
    return [line.get_xdata()[0] for line in axes.lines if line.get_linestyle() == "--"]


def test_loss_curves_draw_one_line_per_term_and_dashed_lines_at_stage_boundaries(save_png):
    total = 2.0 * np.exp(-STEPS / 100.0) + 0.1
    beta = np.where(STEPS == 50, np.nan, np.exp(-STEPS / 50.0) + 0.01)
    beta[-1] = np.inf
    figure = loss_curves_figure({"total": (STEPS, total), "beta": (STEPS, beta)}, stage_boundaries=(100, 200),
                                stage_names=("warm-up", "main", "fine-tune"))
    assert isinstance(figure, Figure)
    (axes,) = figure.axes
    total_line, beta_line = axes.lines[:2]
    np.testing.assert_allclose(total_line.get_xdata(), STEPS)
    np.testing.assert_allclose(total_line.get_ydata(), total)
    finite = np.isfinite(beta)
    np.testing.assert_allclose(beta_line.get_xdata(), STEPS[finite])
    np.testing.assert_allclose(beta_line.get_ydata(), beta[finite])
    assert _boundary_lines(axes) == [100, 200]
    assert [(t.get_position()[0], t.get_text().strip()) for t in axes.texts] == [
        (0, "warm-up"), (100, "main"), (200, "fine-tune")]
    assert axes.get_yscale() == "log" and axes.get_xlabel() == "global step"
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == ["total", "beta (2 non-finite dropped)"]
    save_png(figure)


def test_loss_curves_switch_to_symlog_for_non_positive_values_and_to_linear_on_request():
    curves = {"payload": (STEPS, np.linspace(1.0, -1.0, len(STEPS))), "zero": (STEPS, np.zeros(len(STEPS)))}
    assert loss_curves_figure(curves).axes[0].get_yscale() == "symlog"
    assert loss_curves_figure(curves, log_y=False).axes[0].get_yscale() == "linear"


def test_loss_curves_name_one_stage_per_boundary(save_png):
    figure = loss_curves_figure({"total": (STEPS, np.ones(len(STEPS)))}, stage_boundaries=(0, 150),
                                stage_names=("stage 1", "stage 2"))
    (axes,) = figure.axes
    assert _boundary_lines(axes) == [0, 150]
    assert [(t.get_position()[0], t.get_text().strip()) for t in axes.texts] == [(0, "stage 1"), (150, "stage 2")]
    with pytest.raises(ValueError, match="stage names"):
        loss_curves_figure({}, stage_boundaries=(10,), stage_names=("a", "b", "c"))


@pytest.mark.parametrize("curves", [{}, {"total": ([], [])}, {"total": (STEPS, np.full(len(STEPS), np.nan))}],
                         ids=["no-terms", "empty-term", "all-nan-term"])
def test_loss_curves_without_values(save_png, curves):
    figure = loss_curves_figure(curves, stage_boundaries=(100,), stage_names=("a", "b"))
    assert len(figure.axes) == 1 and _boundary_lines(figure.axes[0]) == [100]
    save_png(figure)


def test_schedule_draws_the_learning_rate_on_a_log_axis_with_shaded_named_stages(save_png):
    learning_rate = np.where(STEPS < 100, 1e-3, np.where(STEPS < 200, 3e-4, 1e-4))
    learning_rate = np.where(STEPS == 20, 0.0, learning_rate)  # not drawable on a log axis
    figure = schedule_figure(STEPS, learning_rate, stage_boundaries=(100, 200),
                             stage_names=("warm-up", "main", "fine-tune"))
    (axes,) = figure.axes
    (line,) = axes.lines
    np.testing.assert_allclose(line.get_xdata(), STEPS[STEPS != 20])
    np.testing.assert_allclose(line.get_ydata(), learning_rate[STEPS != 20])
    assert axes.get_yscale() == "log" and axes.get_ylabel() == "learning rate"
    spans = [(patch.get_x(), patch.get_x() + patch.get_width()) for patch in axes.patches]
    assert spans == [(0, 100), (100, 200), (200, 290)]
    assert [(t.get_position()[0], t.get_text()) for t in axes.texts] == [
        (50, "warm-up"), (150, "main"), (245, "fine-tune")]
    save_png(figure)


def test_schedule_edge_cases(save_png):
    save_png(schedule_figure([], []), "empty.png")
    save_png(schedule_figure([], [], stage_boundaries=(0, 50), stage_names=("a", "b")), "stages_only.png")
    save_png(schedule_figure([3], [1e-3], stage_boundaries=(3,), stage_names=("only",)), "single.png")
    with pytest.raises(ValueError, match="increasing"):
        schedule_figure(STEPS, np.ones(len(STEPS)), stage_boundaries=(200, 100))
    with pytest.raises(ValueError, match="learning rates"):
        schedule_figure(STEPS, [1e-3])


@pytest.mark.parametrize("values", [1.0 / (STEPS + 1), np.linspace(1.0, -1.0, len(STEPS))], ids=["log", "symlog"])
def test_the_training_figures_fit_their_labels_without_a_layout_pass(assert_fits, values):
    stages = {"stage_boundaries": (0, 150), "stage_names": ("warm-up", "main")}
    assert_fits(loss_curves_figure({"objective": (STEPS, values), "loss/beta": (STEPS, values / 3)}, **stages))
    assert_fits(schedule_figure(STEPS, np.full(len(STEPS), 3e-4), **stages))


def test_every_loss_term_looks_different_and_the_legend_sits_beside_the_curves(assert_fits):
    """Thirteen terms (as a condensation run logs) with labels as long as a run's: no two share a colour and a
    line style, and the legend lies right of the axes, inside the figure."""
    from gravtrain.plotting.training import loss_curves_figure, term_style

    names = [f"loss/term_{i}" for i in range(12)] + ["regularizer/gravnet_space_regularizer_0"]
    figure = loss_curves_figure({name: (STEPS, np.full(len(STEPS), 1.0 + i)) for i, name in enumerate(names)})
    [axes] = figure.axes
    looks = [(line.get_color(), line.get_linestyle()) for line in axes.get_lines() if line.get_label() in names]
    assert len(looks) == 13 and len(set(looks)) == 13
    assert looks[2][0] == looks[12][0] and looks[2][1] != looks[12][1]  # the 10-colour cycle wraps: style differs
    assert term_style(0) == ("tab:blue", "-") and term_style(10) == ("tab:blue", "--")
    assert_fits(figure)
    renderer = figure.canvas.get_renderer()
    legend = axes.get_legend().get_window_extent(renderer)
    assert legend.x0 >= axes.get_window_extent(renderer).x1  # beside the curves, not over them
