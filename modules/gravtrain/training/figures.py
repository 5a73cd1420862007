"""The live training plots, refreshed as MLflow artifacts (the same file names each time, so they update):

- ``plots/loss_terms.png``: every recorded ``loss/<term>`` and the objective against the global step;
- ``plots/schedule.png``: the learning rate against the global step, with the stages;
- ``plots/space_gravnet_<i>.png`` and ``plots/space_cluster.png``: the GravNet spaces and the cluster space
  of one validation event (the busiest of the first 20), coloured by truth object, with β as marker size.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from gravtrain.config.schema import Config
from gravtrain.data import EventStore
from gravtrain.evaluation import busiest_event
from gravtrain.plotting import coordinate_space_figure, loss_curves_figure, schedule_figure

logger = logging.getLogger(__name__)


class TrainingFigures:
    """Draws the live plots of a run; ``refresh`` logs them to the tracker."""

    def __init__(self, config: Config, model: keras.Model, val_store: EventStore):
        self.config = config
        self.event_index = busiest_event(val_store)
        event = val_store.event(self.event_index)
        self.features = event["features"]
        self.t_idx = event["t_idx"].reshape(-1)
        outputs = {f"gravnet_{i}": model.get_layer(f"gravnet_{i}").output[1]
                   for i in range(len(config.Architecture.gravnet))}
        outputs["cluster"] = model.output["ccoords"]
        outputs["beta"] = model.output["beta"]
        self.probe = keras.Model(model.inputs, outputs, name="space_probe")

    def refresh(self, tracker, recorder, stage_marks, progress) -> None:
        """Draw and log every plot; ``stage_marks`` are (first step, name) of the stages entered so far.
        Nothing is drawn without a run to log to."""
        if tracker.run_id is None:
            return
        stage_boundaries = [step for step, _ in stage_marks]
        names = [name for _, name in stage_marks]
        curves = {**recorder.curves_with_prefix("objective"), **recorder.curves_with_prefix("loss/")}
        if any(steps for steps, _ in curves.values()):
            tracker.log_figure(loss_curves_figure(curves, stage_boundaries=stage_boundaries, stage_names=names),
                               "plots/loss_terms.png")
        lr_steps, lr_values = recorder.curves.get("lr", ([], []))
        if lr_steps:
            tracker.log_figure(schedule_figure(np.asarray(lr_steps), np.asarray(lr_values),
                                               stage_boundaries=stage_boundaries, stage_names=names),
                               "plots/schedule.png")
        inputs = {"features": self.features,
                  "row_splits": np.array([0, len(self.features)], dtype=np.int32)}
        spaces = {name: value.numpy() for name, value in self.probe(inputs, training=False).items()}
        beta = spaces.pop("beta").reshape(-1)
        for name, coords in spaces.items():
            label = "cluster space" if name == "cluster" else f"{name} space"
            title = f"{label}, validation event {self.event_index}, step {progress.step}"
            tracker.log_figure(coordinate_space_figure(coords, self.t_idx, beta=beta, title=title,
                                                       axis_label="c" if name == "cluster" else "s"),
                               f"plots/space_{name}.png")
