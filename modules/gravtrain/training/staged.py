"""`StagedTrainer`: the stages of one training call (`gravtrain.training.loop.train` builds everything it needs).

Per stage: learning rate, batch size, batch-norm and loss overrides, freeze; then epochs of batches, each a
compiled train step, with records, plots, checkpoints and, at each epoch end, validation (and physics every
``Plotting.physics_frequency`` epochs); after the last stage, `StagedTrainer.finish` saves, logs and scores the
model.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np

from gravtrain.config.schema import Config
from gravtrain.data.batching import HitBudgetBatcher
from gravtrain.model import (
    apply_batch_norm_options, apply_freeze, batch_norm_layers, batch_norm_options, loss_options,
)
from gravtrain.tracking import StoreWriteError
from gravtrain.tracking.run_tags import STAGE_TAG
from gravtrain.training import checkpoint as ckpt
from gravtrain.training.figures import TrainingFigures
from gravtrain.training.outcome import EpochEnd, NonFiniteLossError, TrainingInterrupted
from gravtrain.training.progress_display import epoch_display
from gravtrain.training.recorder import EpochAverages, MetricRecorder
from gravtrain.training.run import RunContext
from gravtrain.training.step import TrainingStep
from gravtrain.training.wall_clock import WallClock

logger = logging.getLogger(__name__)

#: The progress bar shows the objective and this many of the loss's first terms.
PROGRESS_TERMS = 4
#: A stage that skips more than this share of its training events (larger than its batch size) warns.
SKIPPED_EVENTS_WARNING = 0.01


def _groups(batches, size: int):
    """Consecutive groups of ``size`` batches (tuples); a last group short of ``size`` is left out."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield tuple(group)
            group = []


class StagedTrainer:
    """The state of one training call; ``run_stages`` is the loop of the module docstring."""

    def __init__(self, config: Config, model, optimizer, loss, run: RunContext, progress: ckpt.Progress,
                 train_store, val_store, strategy=None, *, clock: WallClock | None = None):
        self.clock = clock or WallClock()
        self.config, self.model, self.optimizer, self.loss, self.run = config, model, optimizer, loss, run
        self.progress = progress
        self.train_store, self.val_store = train_store, val_store
        self.recorder = MetricRecorder(run.tracker, config.Plotting.record_frequency, run.history)
        self.figures = TrainingFigures(model, val_store)
        if run.tracker.run_id is not None:
            self.figures.warm_up()
        self.step = TrainingStep(model, loss, optimizer, strategy=strategy)
        self.interrupt = threading.Event()
        self.last_val: dict[str, float] = {}
        self.epoch_end: EpochEnd | None = None
        self.stop_reason: str | None = None  # set by epoch_end: no further epoch or stage
        self.final_headline = ""  # the final model's physics in one line, set by finish

    # ------------------------------------------------------------------ stages
    def run_stages(self) -> None:
        config, progress = self.config, self.progress
        while progress.stage < len(config.Training):
            index = progress.stage
            fresh_start = progress.stage_epoch == 0 and progress.batch_in_epoch == 0
            self._enter_stage(index, fresh_start)
            reason = self._run_stage(index)
            progress.stage_end_reasons.append(reason)
            name = config.stage_name(index)
            self.run.tracker.set_tags({f"gravtrain.stage_{index + 1}.end_reason": reason})
            logger.info("stage %s ended (%s) after epoch %d, step %d", name, reason, progress.epoch, progress.step)
            if index + 1 < len(config.Training) and self.stop_reason is None:
                progress.start_stage(index + 1)
            else:
                progress.stage, progress.finished = index + 1, True
            self._commit(keep_as=f"stage-{index + 1}-end")

    def _enter_stage(self, index: int, fresh_start: bool) -> None:
        config, stage = self.config, self.config.Training[index]
        name = config.stage_name(index)
        self.optimizer.learning_rate.assign(stage.learning_rate)
        apply_batch_norm_options(self.model, batch_norm_options(config, index),
                                 reset_viscosity=fresh_start and stage.BatchNormOptions.viscosity is not None)
        self.loss.set_options(**loss_options(config, index))
        frozen = apply_freeze(self.model, stage.freeze)
        self.step.compile(recompute=stage.recompute)
        self.run.tracker.set_tags({STAGE_TAG: name})
        if len(self.progress.stage_first_steps) == index:  # not when resumed inside the stage
            self.progress.stage_first_steps.append(self.progress.step)
        logger.info("stage %d/%d %s: %d epoch(s), batch_size %d hits, learning_rate %g%s", index + 1,
                    len(config.Training), name, stage.epochs, stage.batch_size, stage.learning_rate,
                    f", frozen: {', '.join(frozen)}" if frozen else "")

    def _run_stage(self, index: int) -> str:
        stage, progress = self.config.Training[index], self.progress
        batcher = HitBudgetBatcher(self.train_store, stage.batch_size, seed=self.config.General.seed, shuffle=True)
        self._report_skipped(index, batcher)
        while progress.stage_epoch < stage.epochs:
            stopped_below = self._train_epoch(index, batcher)
            self._end_epoch(index)
            if self.stop_reason is not None:
                return self.stop_reason
            if stopped_below:
                return "stop_below"
            early = stage.early_stopping
            if early is not None and progress.epochs_without_improvement >= early.patience:
                return "early_stopping"
        return "epochs"

    # ------------------------------------------------------------------ batches
    def _train_epoch(self, index: int, batcher: HitBudgetBatcher) -> bool:
        """Train the rest of the current epoch; True when stop_below ended the stage."""
        config, progress, stage = self.config, self.progress, self.config.Training[index]
        plan = batcher.plan(progress.epoch)
        per_step = self.step.replicas  # batches per step: one per device
        n_batches = plan.n_batches - plan.n_batches % per_step  # the rest, fewer than the devices, is left out
        averages = EpochAverages(progress.epoch_averages)
        title = f"epoch {progress.epoch + 1} (stage {config.stage_name(index)}, {progress.stage_epoch + 1}/" \
                f"{stage.epochs})"
        left_out = plan.n_batches - n_batches
        logger.info("%s%s", title, f": its last {left_out} batch(es) left out, fewer than the {per_step} a step on "
                                   f"{per_step} devices takes" if left_out else "")
        shown = list(self.loss.term_names[:PROGRESS_TERMS])
        display = epoch_display(n_batches, ["objective", *shown, "hits/s"], start=progress.batch_in_epoch,
                                log_frequency=config.Plotting.log_frequency, title=f"epoch {progress.epoch + 1}")
        tick = time.perf_counter()
        for batches in _groups(batcher.dataset(progress.epoch, start_batch=progress.batch_in_epoch), per_step):
            outputs = self.step.train_step(*batches)
            values = {name: float(value) for name, value in outputs.items()}
            if values["finite"] < 0.5:
                self._non_finite(values, index)
            now = time.perf_counter()
            progress.step += 1
            progress.batch_in_epoch += per_step
            values.update(self._state_values(index))
            averages.add(values, now - tick)
            tick = now
            self.recorder.add_batch(values, progress.step)
            display.update(progress.batch_in_epoch, [
                ("objective", values["objective"]), *((term, values[f"loss/{term}"]) for term in shown),
                ("hits/s", averages.hits_per_second)])
            progress.epoch_averages = averages.state()
            stopped_below = self._stop_below(stage, values["objective"])
            if progress.step % config.Plotting.plot_frequency == 0 and progress.batch_in_epoch < n_batches:
                self._commit(plots=True)
            if self.interrupt.is_set():
                self._interrupted()
            if stopped_below:
                return True
        return False

    def _report_skipped(self, index: int, batcher: HitBudgetBatcher) -> None:
        """Record the events this stage skips (larger than its batch size) and warn when they are over 1 %."""
        skipped, n_events = batcher.skipped_events, self.train_store.n_events
        self.recorder.record({"data/skipped_events": float(len(skipped)),
                              "data/skipped_hits": float(batcher.skipped_hits)}, step=self.progress.step)
        if not len(skipped):
            return
        largest = int(self.train_store.event_sizes[skipped].max())
        stage = self.config.Training[index]
        log = logger.warning if len(skipped) > SKIPPED_EVENTS_WARNING * n_events else logger.info
        log("stage %s skips %d of %d training events (%.1f %%) larger than its batch_size of %d hits; the largest "
            "has %d hits: set Training.%d.batch_size to at least %d to train on all of them",
            self.config.stage_name(index), len(skipped), n_events, 100.0 * len(skipped) / n_events,
            stage.batch_size, largest, index, largest)

    def _state_values(self, index: int) -> dict[str, float]:
        layers = batch_norm_layers(self.model)
        # .numpy(): float() of a variable mirrored on several devices fails (Keras converts its value, not it).
        viscosity = float(np.mean([layer.viscosity.numpy() for layer in layers])) if layers else float("nan")
        return {"lr": float(self.optimizer.learning_rate.numpy()), "stage": float(index + 1), "viscosity": viscosity}

    def _stop_below(self, stage, loss_value: float) -> bool:
        if stage.stop_below is None:
            return False
        a = stage.stop_below.smoothing
        previous = self.progress.smoothed_loss
        smoothed = loss_value if previous is None else a * previous + (1.0 - a) * loss_value
        self.progress.smoothed_loss = smoothed
        return smoothed < stage.stop_below.value

    # ------------------------------------------------------------------ epochs
    def _end_epoch(self, index: int) -> None:
        progress, stage = self.progress, self.config.Training[index]
        averages = EpochAverages(progress.epoch_averages)
        progress.epoch += 1
        progress.stage_epoch += 1
        progress.batch_in_epoch = 0
        progress.epoch_averages = {}
        every = self.config.Plotting.physics_frequency
        physics_due = bool(every) and progress.epoch % every == 0
        with self.clock.part("validation"):
            validation, predictions = self.validate(stage.batch_size, predictions=physics_due)
        self.last_val = validation
        epoch_metrics = {f"epoch/{name}": value for name, value in averages.means().items()}
        epoch_metrics.update({f"val/{name}": value for name, value in validation.items()})
        epoch_metrics["epoch/hits_per_second"] = averages.hits_per_second
        epoch_metrics["epoch/seconds"] = averages.seconds
        if physics_due:
            with self.clock.part("physics"):
                physics = self.physics(figures=False, predictions=predictions)
            epoch_metrics.update({f"physics/{name}": value for name, value in physics.metrics.to_dict().items()})
            logger.info("epoch %d: %s (validation events)", progress.epoch, physics.headline())
        self.recorder.record(epoch_metrics, step=progress.epoch)
        if self.epoch_end is not None:
            self.stop_reason = self.epoch_end(progress.epoch, epoch_metrics)
        logger.info("epoch %d: objective %.4g, validation loss %.4g, %.0f hits/s", progress.epoch,
                    epoch_metrics.get("epoch/objective", math.nan), validation.get("loss/total", math.nan),
                    averages.hits_per_second)
        early = stage.early_stopping
        if early is not None:
            val_loss = validation["loss/total"]
            if progress.best_val_loss is None or val_loss < progress.best_val_loss - early.min_delta:
                progress.best_val_loss, progress.epochs_without_improvement = val_loss, 0
            else:
                progress.epochs_without_improvement += 1
        self._commit(plots=True)
        if self.interrupt.is_set():
            self._interrupted()

    def validate(self, batch_size: int, *, predictions: bool = False) -> tuple[dict[str, float], dict | None]:
        """Mean over the validation batches of each loss term, in inference mode, and (``predictions``) the model's
        per-hit outputs from the same pass, in the events' order, for the physics metrics. The regularisers act
        in training only, so the validation ``objective`` equals ``loss/total``, which early stopping watches."""
        from gravtrain.evaluation import batch_predictions, concatenate_predictions

        budget = max(batch_size, int(self.val_store.event_sizes.max(initial=1)))
        batcher = HitBudgetBatcher(self.val_store, budget, shuffle=False)
        sums: dict[str, float] = {}
        parts = []
        n_batches = 0
        for batch in batcher.dataset(0):
            values, outputs = self.step.validate_step(batch)
            for name, value in values.items():
                if name != "hits":
                    sums[name] = sums.get(name, 0.0) + float(value)
            if predictions:
                parts.append(batch_predictions(outputs, int(batch["features"].shape[0])))
            n_batches += 1
        means = {name: total / max(n_batches, 1) for name, total in sums.items()}
        return means, (concatenate_predictions(parts) if predictions else None)

    # ------------------------------------------------------------------ commits and stops
    def _commit(self, *, plots: bool = False, keep_as: str | None = None) -> None:
        """Plots (optional), then every record so far into the store, then the checkpoint."""
        with self.clock.part("commits"):
            self._commit_now(plots=plots, keep_as=keep_as)

    def _commit_now(self, *, plots: bool, keep_as: str | None) -> None:
        store_error = None
        try:
            if plots:
                marks = [(step, self.config.stage_name(i)) for i, step in enumerate(self.progress.stage_first_steps)]
                self.figures.refresh(self.run.tracker, self.recorder, marks, self.progress)
            self.run.tracker.flush(wait=True)
        except StoreWriteError as exc:  # the checkpoint may be on another disk: write it, then stop
            store_error = exc
        try:
            ckpt.save_checkpoint(self.run.run_dir, self.model, self.optimizer, self.progress, keep_as=keep_as)
        except ckpt.CheckpointWriteError as exc:
            raise ckpt.CheckpointWriteError(f"{exc}, then resume with {self.run.resume_hint}.") from exc.__cause__
        if store_error is not None:
            kept = self.run.save_unwritten_metrics()
            beside = f", and the {kept} metric(s) not written are kept beside it" if kept else ""
            raise StoreWriteError(
                f"{store_error}. Training stopped at step {self.progress.step} with a checkpoint in "
                f"{self.run.run_dir}{beside}. Free space, run `gravtrain runs doctor --fix` on the store (the "
                f"failure may have left damaged files), then resume with {self.run.resume_hint}.") from store_error

    def _non_finite(self, values: dict[str, float], index: int) -> None:
        bad = sorted(name for name, value in values.items() if not math.isfinite(value))
        what = ", ".join(bad) if bad else "a gradient (every loss term was finite)"
        step = self.progress.step + 1
        latest = ckpt.latest_checkpoint(self.run.run_dir)
        self.run.tracker.set_tags({"gravtrain.stop_reason": "non_finite", "gravtrain.non_finite_terms": what,
                                   "gravtrain.non_finite_step": str(step)})
        self.run.tracker.flush(wait=True)
        raise NonFiniteLossError(
            f"non-finite {what} at step {step} (stage {self.config.stage_name(index)}, epoch "
            f"{self.progress.epoch + 1}); the weights were not updated with it. The last good checkpoint is "
            f"{latest if latest else '(none yet)'}. Lower the learning rate or check the data, then resume with "
            f"{self.run.resume_hint}.")

    def _interrupted(self) -> None:
        self._commit()
        raise TrainingInterrupted(f"interrupted at step {self.progress.step} (epoch {self.progress.epoch + 1}); "
                                  f"checkpoint written. Resume with {self.run.resume_hint}.")

    # ------------------------------------------------------------------ end
    def physics(self, *, figures: bool, predictions: dict | None = None):
        """The model's showers on the validation events, scored (``EvaluationResult``); from ``predictions`` (a
        validation pass's) when given, else from a pass of their own."""
        from gravtrain.evaluation import evaluate_model, score_predictions

        if predictions is not None:
            return score_predictions(predictions, self.val_store, self.config.Evaluation, figures=figures)
        return evaluate_model(self.model, self.val_store, self.config.Evaluation, figures=figures)

    def finish(self) -> dict[str, float]:
        """Save and log the model, evaluate it on the validation set, log the physics metrics and figures."""
        metrics = {f"val/{name}": value for name, value in self.last_val.items()}
        result = self.physics(figures=True)
        physics = {f"physics/{name}": value for name, value in result.metrics.to_dict().items()}
        self.recorder.record(physics, step=self.progress.epoch)  # a no-op if the last epoch recorded them
        metrics.update(physics)
        for name, figure in result.figures.items():
            self.run.tracker.log_figure(figure, f"evaluation/{name}.png")
        self.run.log_model(self.model)
        logger.info("validation events, final model:\n%s", result.summary())
        self.final_headline = result.headline()
        return metrics
