"""The live plots are drawn and logged on the training thread: every plot is logged when ``refresh`` returns,
under the same artifact names each time, from the whole run's curves with the stages marked."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.image import imread

from gravtrain.data import FeatureStats, simulate_events
from gravtrain.model import build_model
from gravtrain.training.checkpoint import Progress
from gravtrain.training.figures import TrainingFigures
from gravtrain.training.recorder import MetricRecorder
from gravtrain.tracking import NullTracker
from tests.model.conftest import small_config

LIVE_PLOTS = ["plots/loss_terms.png", "plots/schedule.png", "plots/space_gravnet_0.png", "plots/space_gravnet_1.png",
              "plots/space_cluster.png"]


class RecordingTracker(NullTracker):
    """Keeps the PNGs it is given by artifact name; ``fail`` makes every upload raise, as a full disk does."""

    run_id = "run"

    def __init__(self, fail: bool = False):
        self.logged: list[tuple[str, bytes]] = []
        self.fail = fail

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.logged.append((artifact_file, data))


@pytest.fixture(scope="module")
def figures():
    events = simulate_events(6, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=20, seed=8)
    config = small_config()
    assert len(config.Architecture.gravnet) == 2
    figures = TrainingFigures(build_model(config, FeatureStats.from_store(events)), events)
    figures.warm_up()
    return figures


def values_at(step: int) -> dict[str, float]:
    return {"objective": 1.0 / step, "loss/attractive": 0.5 / step, "lr": 1e-3 if step < 4 else 1e-4}


def recorder_until(step: int, history_until: int = 0) -> MetricRecorder:
    """A recorder that recorded steps up to ``step``; those up to ``history_until`` came from the store, as for a
    resumed run."""
    history = {name: (list(range(1, history_until + 1)), [values_at(s)[name] for s in range(1, history_until + 1)])
               for name in values_at(1)}
    recorder = MetricRecorder(NullTracker(), 1, history if history_until else None)
    for s in range(history_until + 1, step + 1):
        recorder.record(values_at(s), s)
    return recorder


def refresh(figures, tracker, step, marks=((0, "first"),)):
    progress = Progress()
    progress.step = step
    figures.refresh(tracker, recorder_until(step), list(marks), progress)


def test_refresh_logs_every_live_plot_before_it_returns(figures):
    tracker = RecordingTracker()
    refresh(figures, tracker, 3)
    assert [name for name, _ in tracker.logged] == LIVE_PLOTS
    for name, png in tracker.logged:
        assert png.startswith(b"\x89PNG"), name
        assert imread(io.BytesIO(png), format="png").std() > 0, f"{name} is blank"
    refresh(figures, tracker, 5)  # the same names again: MLflow replaces the earlier files
    assert [name for name, _ in tracker.logged] == LIVE_PLOTS * 2


def test_the_plots_show_the_whole_run_with_its_stage_marks(figures):
    # a resumed run: the store held steps 1 to 3, this process recorded 4 to 6
    plots = figures.figures(recorder_until(6, history_until=3), [(0, "warm-up"), (3, "main")], 6)
    assert list(plots) == LIVE_PLOTS
    (loss_axes,) = plots["plots/loss_terms.png"].axes
    curves = {line.get_label(): line.get_xdata() for line in loss_axes.lines if line.get_linestyle() == "-"}
    assert set(curves) == {"objective", "loss/attractive"}
    np.testing.assert_array_equal(curves["objective"], np.arange(1, 7))
    boundaries = [line.get_xdata()[0] for line in loss_axes.lines if line.get_linestyle() == "--"]
    assert boundaries == [0, 3]
    assert [text.get_text().strip() for text in loss_axes.texts] == ["warm-up", "main"]
    (schedule_axes,) = plots["plots/schedule.png"].axes
    assert [text.get_text() for text in schedule_axes.texts] == ["warm-up", "main"]
    assert "step 6" in plots["plots/space_cluster.png"].get_suptitle()
    assert plots["plots/space_gravnet_1.png"].axes[0].get_xlabel() == "s0"


def test_a_logging_error_reaches_the_training_thread(figures):
    with pytest.raises(OSError, match="disk full"):
        refresh(figures, RecordingTracker(fail=True), 2)


def test_nothing_is_drawn_without_a_run(figures):
    tracker = RecordingTracker()
    tracker.run_id = None
    refresh(figures, tracker, 2)
    assert tracker.logged == []
