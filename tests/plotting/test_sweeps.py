"""The sweep figures draw without a warning and keep their labels inside the figure."""

from __future__ import annotations

from gravtrain.plotting.sweeps import optimisation_history_figure, parallel_coordinates_figure

KEYS = ["Training.0.learning_rate", "Architecture.gravnet.0.n", "DenseOptions.activation"]
POINTS = [{"Training.0.learning_rate": 1e-4, "Architecture.gravnet.0.n": 8, "DenseOptions.activation": "elu"},
          {"Training.0.learning_rate": 3e-2, "Architecture.gravnet.0.n": 24, "DenseOptions.activation": "relu"},
          {"Training.0.learning_rate": 1e-3, "Architecture.gravnet.0.n": 16, "DenseOptions.activation": "elu"}]
VALUES = [0.52, 0.74, 0.61]


def test_the_history_marks_the_best_so_far(save_png, assert_fits):
    figure = optimisation_history_figure([0, 1, 2], VALUES, metric="physics/efficiency", maximize=True,
                                         spreads=[0.0, 0.02, 0.01])
    best_line = figure.axes[0].lines[-1]
    assert list(best_line.get_ydata()) == [0.52, 0.74, 0.74]
    assert_fits(figure)
    save_png(figure)


def test_parallel_coordinates_label_each_axis_with_its_range(save_png, assert_fits):
    figure = parallel_coordinates_figure(POINTS, VALUES, keys=KEYS, metric="physics/efficiency")
    texts = {text.get_text() for text in figure.axes[0].texts}
    assert {"0.0001 (log)", "0.03", "8", "24", "elu", "relu", "0.52", "0.74"} <= texts
    # readable: the values and the key names at 9 pt or more
    assert min(text.get_fontsize() for text in [*figure.axes[0].texts, *figure.axes[0].get_xticklabels()]) >= 9
    trial_lines = [line for line in figure.axes[0].lines if len(line.get_xdata()) == len(KEYS) + 1]
    assert len(trial_lines) == len(POINTS)
    assert_fits(figure)
    save_png(figure)
