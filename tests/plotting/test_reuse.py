"""Drawing into an earlier figure: the same picture as a new figure of the same data, from the same axes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread

from gravtrain.plotting import coordinate_space_figure, loss_curves_figure, schedule_figure

STEPS = np.arange(1, 60)


def pixels(figure) -> np.ndarray:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    return imread(io.BytesIO(buffer.getvalue()), format="png")


def space_data(seed: int, n_dims: int) -> tuple[tuple, dict]:
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(150, n_dims)) * rng.uniform(0.5, 5.0)
    return (coords, rng.integers(-1, 5, 150)), {"beta": rng.uniform(0, 1, 150), "title": f"event {seed}"}


# Each case: the figure function, the arguments of the earlier call, those of the call drawing into its figure.
CASES = {
    "space-1d": (coordinate_space_figure, space_data(1, 1), space_data(2, 1)),
    "space-2d": (coordinate_space_figure, space_data(1, 2), space_data(2, 2)),
    "space-3d": (coordinate_space_figure, space_data(1, 3), space_data(2, 3)),
    "loss-log-to-symlog": (
        loss_curves_figure, (({"a": (STEPS, 1 / STEPS), "b": (STEPS, 2 / STEPS)},), {"stage_boundaries": [10]}),
        (({"a": (3 * STEPS, -1 / STEPS), "b": (3 * STEPS, np.where(STEPS > 40, np.nan, 2 / STEPS))},),
         {"stage_boundaries": [10, 70], "stage_names": ["x", "y", "z"]})),
    "loss-log-to-linear": (
        loss_curves_figure, (({"a": (STEPS, 1 / STEPS)},), {}), (({"a": (STEPS, 1 / STEPS)},), {"log_y": False})),
    "schedule": (
        schedule_figure, ((STEPS, np.full(len(STEPS), 1e-3)), {"stage_boundaries": [10], "stage_names": ["a", "b"]}),
        ((2 * STEPS, np.where(STEPS > 20, 1e-4, 1e-3)), {"stage_boundaries": [10, 40], "stage_names": ["a", "b", "c"]})),
}


@pytest.mark.parametrize("case", CASES)
def test_a_reused_figure_draws_what_a_new_one_would(case, no_warnings):
    function, (first_args, first_kwargs), (args, kwargs) = CASES[case]
    earlier = function(*first_args, **first_kwargs)
    axes = list(earlier.axes)
    pixels(earlier)  # drawn (and laid out) once with the first data
    reused = function(*args, **kwargs, figure=earlier)
    assert reused is earlier and reused.axes == axes
    np.testing.assert_array_equal(pixels(reused), pixels(function(*args, **kwargs)))


def test_a_figure_with_other_panels_or_of_another_function_is_not_reused():
    args, kwargs = space_data(1, 3)
    three_panels = coordinate_space_figure(*args, **kwargs)
    args, kwargs = space_data(1, 2)
    assert coordinate_space_figure(*args, **kwargs, figure=three_panels) is not three_panels
    schedule = schedule_figure(STEPS, np.full(len(STEPS), 1e-3))
    assert loss_curves_figure({"a": (STEPS, 1 / STEPS)}, figure=schedule) is not schedule
    assert len(schedule.axes[0].lines) == 1  # left as it was
