"""The live training plots, refreshed as MLflow artifacts (the same file names each time, so they update):

- ``plots/loss_terms.png``: every recorded ``loss/<term>`` and the objective against the global step;
- ``plots/schedule.png``: the learning rate against the global step, with the stages;
- ``plots/space_gravnet_<i>.png`` and ``plots/space_cluster.png``: the GravNet spaces and the cluster space
  of one validation event (the busiest of the first 20), coloured by truth object, with β as marker size
  (behind a noise filter: the hits it kept; with pre-pooling: the cluster space only; a noise filter: none).

``refresh`` draws them on the calling (training) thread, with matplotlib's Agg renderer, and logs the PNGs
before it returns: training waits for the plots, and nothing runs beside it. A refresh costs about a second
on a 2-core machine; the training loop refreshes every ``Plotting.plot_frequency`` batches and at each epoch
end, and ``benchmarks/tracking_overhead.py`` reports the plots' share of the training time.

A resumed run draws the whole run: the curves the store already holds are part of the recorder's, and the
stages' first steps are kept in the checkpoint's ``Progress``.
"""

from __future__ import annotations

import io

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from gravtrain.data import EventStore, batch_element_spec
from gravtrain.evaluation import busiest_event
from gravtrain.model import HIT_INDEX, gravnet_space_outputs, model_kind
from gravtrain.plotting import coordinate_space_figure, loss_curves_figure, schedule_figure

#: zlib level of the PNGs: 1 (of 9; matplotlib's default is 6) encodes about three times faster for files about
#: a tenth larger.
PNG_COMPRESS_LEVEL = 1


class TrainingFigures:
    """The live plots of a run: ``refresh`` draws and logs them (module docstring)."""

    def __init__(self, model: keras.Model, val_store: EventStore):
        self.event_index = busiest_event(val_store)
        event = val_store.event(self.event_index)
        self.inputs = {"features": event["features"],
                       "row_splits": np.array([0, len(event["features"])], dtype=np.int32)}
        self.t_idx = event["t_idx"].reshape(-1)
        self._probe = None
        if model_kind(model) != "object-condensation":  # a noise filter has no spaces to draw
            return
        outputs = gravnet_space_outputs(model)  # none behind pre-pooling: pooled rows are not the event's hits
        outputs["cluster"] = model.output["ccoords"]
        outputs["beta"] = model.output["beta"]
        if HIT_INDEX in model.output:  # behind a noise filter: the spaces hold the kept hits
            outputs[HIT_INDEX] = model.output[HIT_INDEX]
        probe = keras.Model(model.inputs, outputs, name="space_probe")
        spec = batch_element_spec()
        self._probe = tf.function(lambda inputs: probe(inputs, training=False),
                                  input_signature=[{name: spec[name] for name in self.inputs}])

    def warm_up(self) -> None:
        """Trace the probe's forward pass before training starts (for a tracked run), so that the first refresh
        does not pay for it."""
        if self._probe is not None:
            self._probe(self.inputs)

    def refresh(self, tracker, recorder, stage_marks, progress) -> None:
        """Draw the live plots of the run so far and log them; ``stage_marks`` are (first step, name) of the
        stages entered so far. Nothing is drawn without a run to log to."""
        if tracker.run_id is None:
            return
        for artifact, figure in self.figures(recorder, stage_marks, progress.step).items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
            tracker.log_bytes(buffer.getvalue(), artifact)

    def figures(self, recorder, stage_marks, step: int) -> dict[str, Figure]:
        """The live plots by artifact name: the recorder's curves, and the probe's forward pass on the event."""
        stages = {"stage_boundaries": [first for first, _ in stage_marks],
                  "stage_names": [name for _, name in stage_marks]}
        figures = {}
        curves = {**recorder.curves_with_prefix("objective"), **recorder.curves_with_prefix("loss/")}
        if any(steps for steps, _ in curves.values()):
            figures["plots/loss_terms.png"] = loss_curves_figure(curves, **stages)
        lr_steps, lr_values = recorder.curves.get("lr", ([], []))
        if lr_steps:
            figures["plots/schedule.png"] = schedule_figure(np.asarray(lr_steps), np.asarray(lr_values), **stages)
        if self._probe is None:
            return figures
        spaces = {name: value.numpy() for name, value in self._probe(self.inputs).items()}
        beta = spaces.pop("beta").reshape(-1)
        t_idx = self.t_idx[spaces.pop(HIT_INDEX)] if HIT_INDEX in spaces else self.t_idx
        for name, coords in spaces.items():
            label = "cluster space" if name == "cluster" else f"{name} space"
            figures[f"plots/space_{name}.png"] = coordinate_space_figure(
                coords, t_idx, beta=beta, title=f"{label}, validation event {self.event_index}, step {step}",
                axis_label="c" if name == "cluster" else "s")
        return figures
