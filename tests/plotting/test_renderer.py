"""The figure renderer process: the same pictures as drawing here, at a lower CPU priority, errors with the
child's traceback, Ctrl-C left to the parent, and a dead child reported and replaced."""

from __future__ import annotations

import io
import os
import signal
import time

import numpy as np
import pytest
from matplotlib.image import imread

from gravtrain.plotting import schedule_figure
from gravtrain.plotting.renderer import FigureJob, FigureRenderer, FigureRenderError, _Drawer

STEPS = np.arange(1, 40)
RATES = np.where(STEPS < 20, 1e-3, 1e-4)
STAGES = {"stage_boundaries": [20], "stage_names": ["warm-up", "main"]}


@pytest.fixture(scope="module")
def renderer():
    with FigureRenderer(dpi=40) as renderer:
        yield renderer


def pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")


def test_the_child_draws_what_this_process_would(renderer):
    loss = FigureJob("loss_curves_figure", ({"loss/beta": (STEPS, 1.0 / STEPS)},), STAGES)
    schedule = FigureJob("schedule_figure", (STEPS, RATES), STAGES)
    first, second = renderer.render([loss, schedule])
    assert first.startswith(b"\x89PNG") and second.startswith(b"\x89PNG")
    here = io.BytesIO()
    schedule_figure(STEPS, RATES, **STAGES).savefig(here, format="png", dpi=40)
    np.testing.assert_array_equal(pixels(second), pixels(here.getvalue()))
    assert renderer.pid not in (None, os.getpid())
    spent = renderer.cpu_seconds  # the child's CPU time, starting matplotlib included
    renderer.render([loss])
    assert 0 < spent < renderer.cpu_seconds


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities on this system")
def test_the_child_runs_at_the_lowest_priority(renderer):
    renderer.render([FigureJob("schedule_figure", (STEPS, RATES))])
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, renderer.pid) == min(own + 19, 19)


def test_a_failing_figure_raises_with_the_childs_traceback_and_the_child_carries_on(renderer):
    with pytest.raises(FigureRenderError, match="39 steps but 3 learning rates"):
        renderer.render([FigureJob("schedule_figure", (STEPS, RATES[:3]))])
    with pytest.raises(FigureRenderError, match="'os.system' is not a figure of gravtrain.plotting"):
        renderer.render([FigureJob("os.system", ("true",))])
    pid = renderer.pid
    assert len(renderer.render([FigureJob("schedule_figure", (STEPS, RATES))])) == 1
    assert renderer.pid == pid


def test_ctrl_c_is_left_to_the_parent(renderer):
    renderer.render([FigureJob("schedule_figure", (STEPS, RATES))])
    pid = renderer.pid
    os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert len(renderer.render([FigureJob("schedule_figure", (STEPS, RATES))])) == 1
    assert renderer.pid == pid


class ExitOnArrival:
    """Unpickling this in the child ends the child at once, in the middle of a request."""

    def __reduce__(self):
        return os._exit, (3,)


def test_a_child_that_dies_is_reported_then_replaced():
    with FigureRenderer() as renderer:
        renderer.render([])
        first = renderer.pid
        with pytest.raises(FigureRenderError, match="renderer process exited with code 3"):
            renderer.render([FigureJob("schedule_figure", (ExitOnArrival(),))])
        assert len(renderer.render([FigureJob("schedule_figure", (STEPS, RATES))])) == 1
        second = renderer.pid
        assert second not in (None, first)
        os.kill(second, signal.SIGKILL)  # dies between requests: the next one starts a new child
        time.sleep(0.5)
        assert len(renderer.render([FigureJob("schedule_figure", (STEPS, RATES))])) == 1
        assert renderer.pid not in (None, first, second)
    assert renderer.pid is None


def test_a_live_figure_is_drawn_again_into_the_same_figure_with_its_first_layout(renderer):
    job = FigureJob("schedule_figure", (STEPS, RATES), STAGES, key="plots/schedule.png")
    first, again = renderer.render([job]), renderer.render([job])
    here = io.BytesIO()
    schedule_figure(STEPS, RATES, **STAGES).savefig(here, format="png", dpi=40)
    np.testing.assert_array_equal(pixels(first[0]), pixels(here.getvalue()))
    np.testing.assert_array_equal(pixels(again[0]), pixels(here.getvalue()))
    longer = FigureJob("schedule_figure", (STEPS * 1000, RATES), STAGES, key="plots/schedule.png")
    [relaid] = renderer.render([longer])  # longer tick labels: laid out again, as a new figure would be
    here = io.BytesIO()
    schedule_figure(STEPS * 1000, RATES, **STAGES).savefig(here, format="png", dpi=40)
    np.testing.assert_array_equal(pixels(relaid), pixels(here.getvalue()))


def test_the_layout_of_a_live_figure_is_kept_while_its_labels_keep_their_lengths():
    drawer = _Drawer(dpi=40)
    rng = np.random.default_rng(3)

    def space_job(scale: float, n_hits: int) -> tuple:  # the extremes (and so the ticks) set by two corner hits
        coords = np.concatenate([[[-scale] * 3, [scale] * 3], rng.uniform(-scale, scale, (n_hits, 3))])
        return "coordinate_space_figure", (coords, rng.integers(0, 3, n_hits + 2)), {}, "space"

    drawer.draw([space_job(0.9, 50)])
    drawer.draw([space_job(0.9, 55)])  # equal-aspect axes: the limits follow the layout once, then settle
    figure = drawer.live["space"].figure
    positions = [axes.get_position().bounds for axes in figure.axes]
    assert figure.get_layout_engine() is None  # no layout pass at the next savefig
    drawer.draw([space_job(0.9, 60)])
    assert drawer.live["space"].figure is figure
    assert [axes.get_position().bounds for axes in figure.axes] == positions
    drawer.draw([space_job(900.0, 60)])  # "−500" where there was "−0.5": laid out again, then kept again
    assert drawer.live["space"].figure is figure and figure.get_layout_engine() is None
    assert [axes.get_position().bounds for axes in figure.axes] != positions
    drawer.draw([("schedule_figure", (STEPS, RATES), {}, "space")])  # another function under the key: a new figure
    assert drawer.live["space"].figure is not figure
