"""What drawing the live plots takes from training: training steps timed while the figure renderer draws without
a pause, against steps while it is idle, in alternating windows of one process.

Comparing a tracked with an untracked run cannot resolve a few per cent on a shared VM (identical runs differ by
a quarter in wall time). Here both conditions share one process, one model and one stretch of time: windows of
``--steps-per-window`` training steps of the ``--config`` model alternate between "idle" and "busy" (a thread
keeps the renderer drawing the config's live plots, one refresh after the other), in the order idle, busy,
busy, idle, ... so that a drift that is linear in time cancels. A busy window starts once the renderer is
drawing, an idle one once its last drawing has ended. Each busy window is compared with the idle windows
around it.

Reports:

- ``step_seconds_idle`` / ``step_seconds_busy``: the median training step;
- ``slowdown_while_drawing``: median over busy windows of (mean step while busy / mean step of the neighbouring
  idle windows) - 1: how much slower training runs while the renderer draws non-stop (the worst case of a live
  run, whose renderer draws only after a refresh);
- ``renderer_cpu_share_while_busy``: renderer CPU seconds per wall second of the busy windows;
- ``renderer_cpu_seconds_per_refresh``: what redrawing the live plots costs (roughly: refreshes that straddle a
  window's edge are counted where they end);
- ``training_seconds_lost_per_renderer_cpu_second``: the extra training time of the busy windows over the
  renderer's CPU time in them. Times a run's ``plot_cpu_seconds`` (``tracking_overhead.py``) it estimates the
  wall time that run's plots took from its training.

Usage::

    python benchmarks/plot_contention.py [--config configs/toy.yaml] [--windows 24] [--steps-per-window 8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402

from gravtrain.config import load_config  # noqa: E402
from gravtrain.data import FeatureStats, load_event_sets  # noqa: E402
from gravtrain.data.batching import HitBudgetBatcher  # noqa: E402
from gravtrain.model import build_loss, build_model, make_optimizer  # noqa: E402
from gravtrain.plotting.renderer import FigureRenderer  # noqa: E402
from gravtrain.tracking import NullTracker  # noqa: E402
from gravtrain.training.figures import TrainingFigures  # noqa: E402
from gravtrain.training.recorder import MetricRecorder  # noqa: E402
from gravtrain.training.step import TrainingStep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "plot_contention.json"


class Drawing:
    """A thread that has the renderer draw ``jobs`` again and again while ``busy`` is set."""

    def __init__(self, renderer: FigureRenderer, jobs):
        self.renderer, self.jobs = renderer, jobs
        self.lock = threading.Lock()  # a drawing starts only while busy, decided under the lock
        self.busy, self.idle, self.drawing = threading.Event(), threading.Event(), threading.Event()
        self.idle.set()
        self.stop = False
        self.refreshes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            with self.lock:
                start = self.busy.is_set()
                if start:
                    self.idle.clear()
                    self.drawing.set()
            if not start:
                time.sleep(0.01)
                continue
            self.renderer.render(self.jobs)
            self.refreshes += 1
            self.drawing.clear()
            self.idle.set()

    def set_busy(self, busy: bool) -> None:
        """Switch, and return once the renderer is drawing (busy) or has finished its last drawing (idle)."""
        with self.lock:
            if busy:
                self.busy.set()
            else:
                self.busy.clear()
        (self.drawing if busy else self.idle).wait()


def live_plot_jobs(config, model, val_store, recorder, step: int) -> list:
    """The renderer jobs of one refresh of the config's live plots, as a training run would hand them over."""
    figures = TrainingFigures(config, model, val_store)
    return figures._jobs(figures._snapshot(recorder, [(0, "stage")], step))[1]


def measure(args) -> dict:
    config = load_config(args.config)
    keras.utils.set_random_seed(config.General.seed)
    train_store, val_store = load_event_sets(config.Data)
    model = build_model(config, FeatureStats.from_store(train_store))
    stage = config.Training[0]
    optimizer = make_optimizer(config.Optimizer, stage.learning_rate)
    optimizer.build(model.trainable_variables)
    step = TrainingStep(model, build_loss(config, 0), optimizer)
    step.compile()
    batcher = HitBudgetBatcher(train_store, stage.batch_size, seed=config.General.seed)
    recorder = MetricRecorder(NullTracker(), 1)

    def batches():
        epoch = 0
        while True:
            yield from batcher.dataset(epoch)
            epoch += 1

    stream, n_steps = batches(), 0

    def train(n: int) -> list[float]:
        nonlocal n_steps
        seconds = []
        for _ in range(n):
            batch = next(stream)
            start = time.perf_counter()
            values = {name: float(value) for name, value in step.train_step(batch).items()}
            seconds.append(time.perf_counter() - start)
            n_steps += 1
            recorder.record({**values, "lr": stage.learning_rate}, n_steps)
        return seconds

    train(args.steps_per_window)  # traces the step and fills the curves a little
    jobs = live_plot_jobs(config, model, val_store, recorder, n_steps)
    windows = []
    with FigureRenderer() as renderer:
        renderer.render(jobs)  # started, and the live figures made: every later drawing redraws them
        drawing = Drawing(renderer, jobs)
        for index in range(args.windows):
            busy = index % 4 in (1, 2)  # idle, busy, busy, idle, ...
            drawing.set_busy(busy)
            cpu_before, wall_before, refreshes_before = renderer.cpu_seconds, time.perf_counter(), drawing.refreshes
            seconds = train(args.steps_per_window)
            windows.append({"busy": busy, "step_seconds": seconds, "wall_seconds": time.perf_counter() - wall_before,
                            "renderer_cpu_seconds": renderer.cpu_seconds - cpu_before,
                            "refreshes": drawing.refreshes - refreshes_before})
        drawing.set_busy(False)
        drawing.stop = True
    return summarise(windows) | {"windows": windows}


def summarise(windows: list[dict]) -> dict:
    means = [statistics.fmean(w["step_seconds"]) for w in windows]
    ratios, lost, renderer_cpu, busy_wall = [], 0.0, 0.0, 0.0
    for index, window in enumerate(windows):
        if not window["busy"]:
            continue
        neighbours = [means[i] for i in (index - 1, index + 1, index - 2, index + 2)
                      if 0 <= i < len(windows) and not windows[i]["busy"]][:2]
        if not neighbours:
            continue
        idle_mean = statistics.fmean(neighbours)
        ratios.append(means[index] / idle_mean)
        lost += sum(window["step_seconds"]) - idle_mean * len(window["step_seconds"])
        renderer_cpu += window["renderer_cpu_seconds"]
        busy_wall += window["wall_seconds"]
    steps = {busy: [s for w in windows if w["busy"] == busy for s in w["step_seconds"]] for busy in (False, True)}
    return {
        "step_seconds_idle": statistics.median(steps[False]),
        "step_seconds_busy": statistics.median(steps[True]),
        "slowdown_while_drawing": statistics.median(ratios) - 1.0,
        "slowdown_while_drawing_range": [min(ratios) - 1.0, max(ratios) - 1.0],
        "renderer_cpu_share_while_busy": renderer_cpu / busy_wall,
        "renderer_cpu_seconds_per_refresh": sum(w["renderer_cpu_seconds"] for w in windows)
        / max(sum(w["refreshes"] for w in windows), 1),
        "training_seconds_lost_per_renderer_cpu_second": lost / renderer_cpu if renderer_cpu else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "toy.yaml")
    parser.add_argument("--windows", type=int, default=24, help="windows in all (a multiple of 4)")
    parser.add_argument("--steps-per-window", type=int, default=8)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = {"benchmark": "plot_contention", "config": str(args.config), "cpus": os.cpu_count(),
              "machine": platform.machine(), **measure(args)}
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
