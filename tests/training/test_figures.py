"""The live plots are drawn off the training thread (a background thread hands them to a renderer process):
training does not wait for them, only the newest snapshot is drawn, ``close`` waits for it and ends the
process, and a drawing error reaches the training thread."""

from __future__ import annotations

import os
import threading
import time

import pytest

from gravtrain.data import FeatureStats, simulate_events
from gravtrain.model import build_model
from gravtrain.training.checkpoint import Progress
from gravtrain.training.figures import TrainingFigures
from gravtrain.training.recorder import MetricRecorder
from gravtrain.tracking import NullTracker
from tests.model.conftest import small_config


class GatedTracker(NullTracker):
    """Logs the names of the PNGs; each upload waits for ``gate``, so the test controls when drawing finishes."""

    run_id = "run"

    def __init__(self, fail: bool = False):
        self.gate = threading.Event()
        self.logged: list[str] = []
        self.fail = fail

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        self.gate.wait(timeout=60)
        if self.fail:
            raise OSError("disk full")
        assert data.startswith(b"\x89PNG")
        self.logged.append(artifact_file)


@pytest.fixture(scope="module")
def figures():
    events = simulate_events(6, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=20, seed=8)
    config = small_config()
    return TrainingFigures(config, build_model(config, FeatureStats.from_store(events)), events)


def refresh(figures, tracker, step):
    recorder = MetricRecorder(tracker, 1)
    for s in range(1, step + 1):
        recorder.record({"objective": 1.0 / s, "loss/attractive": 0.5 / s, "lr": 1e-3}, s)
    progress = Progress()
    progress.step = step
    figures.refresh(tracker, recorder, [(0, "first")], progress)


def test_refresh_returns_before_drawing_and_close_waits(figures):
    tracker = GatedTracker()
    refresh(figures, tracker, 3)  # drawing starts and blocks on the gate
    assert tracker.logged == []
    skipped = figures.skipped
    refresh(figures, tracker, 4)  # waits behind the one being drawn
    refresh(figures, tracker, 5)  # replaces step 4, which never gets drawn
    assert figures.skipped == skipped + 1
    deadline = time.monotonic() + 60
    while figures._renderer.pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert figures._renderer.pid not in (None, os.getpid())  # drawn in the renderer process
    tracker.gate.set()
    drawn = figures.drawn
    figures.close()
    assert figures.drawn == drawn + 2 and figures.cpu_seconds > 0
    names = tracker.logged
    assert names.count("plots/loss_terms.png") == 2 and names.count("plots/space_cluster.png") == 2
    assert names[-1] == "plots/space_cluster.png" and {"plots/schedule.png", "plots/space_gravnet_1.png"} <= set(names)
    assert figures._renderer.pid is None  # close ends the process


def test_a_drawing_error_reaches_the_training_thread(figures):
    tracker = GatedTracker(fail=True)
    tracker.gate.set()
    refresh(figures, tracker, 2)
    with pytest.raises(OSError, match="disk full"):
        figures.close()
    figures.close()  # reported once


def test_nothing_is_drawn_without_a_run(figures):
    tracker = GatedTracker()
    tracker.run_id = None
    refresh(figures, tracker, 2)
    figures.close()
    assert tracker.logged == []


def test_warm_up_starts_the_renderer_before_the_first_refresh(figures):
    figures.warm_up()
    assert figures._renderer.pid not in (None, os.getpid())
    figures.close()
    assert figures._renderer.pid is None
