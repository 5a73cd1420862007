"""The live training plots, refreshed as MLflow artifacts (the same file names each time, so they update):

- ``plots/loss_terms.png``: every recorded ``loss/<term>`` and the objective against the global step;
- ``plots/schedule.png``: the learning rate against the global step, with the stages;
- ``plots/space_gravnet_<i>.png`` and ``plots/space_cluster.png``: the GravNet spaces and the cluster space
  of one validation event (the busiest of the first 20), coloured by truth object, with β as marker size.

Drawing costs about a CPU-second per refresh on a 2-core machine (each plot is drawn into its figure of the
last refresh, with its layout kept: about 60 % of new figures' cost), so it does not run in the
training loop: ``refresh`` takes a snapshot (copies of the curves, one forward pass of the probe model on the
event) and hands it to one background thread, which has the figures drawn by a low-priority child process
(`gravtrain.plotting.renderer.FigureRenderer`, so drawing never holds this process's interpreter lock) and
uploads the PNGs while training goes on. Only the newest snapshot waits: one that has not started when a newer
one arrives is replaced, so a slow store can delay the plots but never training, and never queues work.
``close`` waits for the last snapshot (the training loop calls it after the model is evaluated and logged, so
the last plots are drawn meanwhile) and ends the child; an error of the drawing thread is raised there.

A resumed run draws the whole run: the curves the store already holds are part of the recorder's, and the
stages' first steps are kept in the checkpoint's ``Progress``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from gravtrain.config.schema import Config
from gravtrain.data import EventStore, batch_element_spec
from gravtrain.evaluation import busiest_event
from gravtrain.plotting.renderer import FigureJob, FigureRenderer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Snapshot:
    """Everything one refresh draws, copied on the training thread."""

    step: int
    curves: dict[str, tuple[list[int], list[float]]]
    lr: tuple[list[int], list[float]]
    stage_boundaries: list[int]
    stage_names: list[str]
    spaces: dict[str, np.ndarray]
    beta: np.ndarray


class TrainingFigures:
    """Draws the live plots of a run on a background thread; ``refresh`` snapshots, ``close`` waits."""

    def __init__(self, config: Config, model: keras.Model, val_store: EventStore):
        self.config = config
        self.event_index = busiest_event(val_store)
        event = val_store.event(self.event_index)
        self.inputs = {"features": event["features"],
                       "row_splits": np.array([0, len(event["features"])], dtype=np.int32)}
        self.t_idx = event["t_idx"].reshape(-1)
        outputs = {f"gravnet_{i}": model.get_layer(f"gravnet_{i}").output[1]
                   for i in range(len(config.Architecture.gravnet))}
        outputs["cluster"] = model.output["ccoords"]
        outputs["beta"] = model.output["beta"]
        probe = keras.Model(model.inputs, outputs, name="space_probe")
        spec = batch_element_spec()
        self._probe = tf.function(lambda inputs: probe(inputs, training=False),
                                  input_signature=[{name: spec[name] for name in self.inputs}])
        self._condition = threading.Condition()
        self._pending: tuple[object, _Snapshot] | None = None
        self._busy = False
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None
        self._renderer = FigureRenderer()
        self.skipped = 0  # snapshots replaced by a newer one before they were drawn
        self.drawn = 0    # snapshots drawn and logged

    def warm_up(self) -> None:
        """Pay the one-time costs before training starts (for a tracked run): trace the probe's forward pass
        and start the renderer process."""
        self._probe(self.inputs)
        self._renderer.start()

    def refresh(self, tracker, recorder, stage_marks, progress) -> None:
        """Snapshot the plots' data and hand it to the drawing thread; ``stage_marks`` are (first step, name)
        of the stages entered so far. Nothing is drawn without a run to log to."""
        if tracker.run_id is None:
            return
        self._raise_error()
        snapshot = self._snapshot(recorder, stage_marks, progress.step)
        with self._condition:
            if self._pending is not None:
                self.skipped += 1
            self._pending = (tracker, snapshot)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="gravtrain-figures", daemon=True)
                self._worker.start()
            self._condition.notify_all()

    def _snapshot(self, recorder, stage_marks, step: int) -> _Snapshot:
        """What one refresh draws, copied now: the curves, and the probe's forward pass on the event."""
        spaces = {name: value.numpy() for name, value in self._probe(self.inputs).items()}
        curves = {**recorder.curves_with_prefix("objective"), **recorder.curves_with_prefix("loss/")}  # new lists
        lr_steps, lr_values = recorder.curves.get("lr", ([], []))
        return _Snapshot(step=step, curves=curves, lr=(list(lr_steps), list(lr_values)),
                         stage_boundaries=[first for first, _ in stage_marks],
                         stage_names=[name for _, name in stage_marks],
                         spaces={k: v for k, v in spaces.items() if k != "beta"}, beta=spaces["beta"].reshape(-1))

    def close(self, raise_error: bool = True) -> None:
        """Wait until the newest snapshot is drawn and logged; raise the drawing thread's error, if any (with
        ``raise_error``; training that already failed only logs it)."""
        with self._condition:
            while self._pending is not None or self._busy:
                if self._worker is None or not self._worker.is_alive():
                    break
                self._condition.wait(timeout=1.0)
        self._renderer.close()
        if self.drawn or self.skipped:
            logger.info("live plots: %d refreshes drawn (%d replaced by a newer one first), %.1f CPU-s in the renderer",
                        self.drawn, self.skipped, self.cpu_seconds)
        if raise_error:
            self._raise_error()

    @property
    def cpu_seconds(self) -> float:
        """CPU time the renderer process has spent drawing (and starting) so far."""
        return self._renderer.cpu_seconds

    # ------------------------------------------------------------------ drawing thread
    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _work(self) -> None:
        while True:
            with self._condition:
                while self._pending is None:
                    self._condition.wait()
                (tracker, snapshot), self._pending = self._pending, None
                self._busy = True
            try:
                self._draw(tracker, snapshot)
                self.drawn += 1
            except BaseException as error:  # handed to the training thread at its next refresh or close
                logger.warning("the live plots of step %d failed: %s", snapshot.step, error)
                self._error = error
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def _draw(self, tracker, snapshot: _Snapshot) -> None:
        artifacts, jobs = self._jobs(snapshot)
        for artifact, png in zip(artifacts, self._renderer.render(jobs)):
            tracker.log_bytes(png, artifact)

    def _jobs(self, snapshot: _Snapshot) -> tuple[list[str], list[FigureJob]]:
        """The artifact names and the figure jobs of one snapshot; each job is keyed by its artifact, so the renderer
        draws each plot into its figure of the last refresh (``gravtrain.plotting.renderer``, live figures)."""
        stages = {"stage_boundaries": snapshot.stage_boundaries, "stage_names": snapshot.stage_names}
        artifacts, jobs = [], []
        if any(steps for steps, _ in snapshot.curves.values()):
            artifacts.append("plots/loss_terms.png")
            jobs.append(FigureJob("loss_curves_figure", (snapshot.curves,), stages, artifacts[-1]))
        if snapshot.lr[0]:
            artifacts.append("plots/schedule.png")
            jobs.append(FigureJob("schedule_figure", (np.asarray(snapshot.lr[0]), np.asarray(snapshot.lr[1])), stages,
                                  artifacts[-1]))
        for name, coords in snapshot.spaces.items():
            label = "cluster space" if name == "cluster" else f"{name} space"
            artifacts.append(f"plots/space_{name}.png")
            jobs.append(FigureJob("coordinate_space_figure", (coords, self.t_idx), {
                "beta": snapshot.beta, "title": f"{label}, validation event {self.event_index}, step {snapshot.step}",
                "axis_label": "c" if name == "cluster" else "s"}, artifacts[-1]))
        return artifacts, jobs
