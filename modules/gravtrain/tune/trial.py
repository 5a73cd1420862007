"""One trial of a sweep: sample a point, make its configs, train them through `gravtrain.train` (the same
path as `gravtrain train`), and tell the study the objective.

MLflow records, all in the base config's experiment:
- ``repeats: 1``: the trial's training run is a child of the sweep's parent run (tag ``mlflow.parentRunId``);
- ``repeats: N``: a trial run, child of the parent, holds the point and the objective's mean and spread, and
  each repeat's training run is a child of the trial run.
Every run of a trial carries the tags ``gravtrain.sweep`` (the study), ``gravtrain.trial`` (its number) and
``sweep.<key path>`` (each sampled value, as YAML).

The trial's objective is the mean over its repeats of the metric the sweep names. A trial fails, with its
reason in the study and in the log, when a sampled point is no valid config, training stops (a non-finite
loss), or the metric is missing or not finite; the sweep goes on with the next trial. With ``pruner: median``
the first repeat reports the metric after each epoch and stops when the pruner says so (the trial is PRUNED).
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from gravtrain.config import ConfigError
from gravtrain.config.validate import dotted
from gravtrain.tracking.run_tags import SWEEP_TAG, TRIAL_TAG
from gravtrain.tune.plan import SweepPlan
from gravtrain.tune.spaces import yaml_text
from gravtrain.tune.study import Heartbeat, requeue

logger = logging.getLogger(__name__)

PRUNED = "pruned"
RUN_ID = "gravtrain.run_id"
FAIL_REASON = "gravtrain.fail_reason"
REPEAT_VALUES = "gravtrain.repeat_values"


@dataclass(frozen=True)
class SweepContext:
    """What each trial needs besides the study: the plan, the study's name and the parent MLflow run."""

    plan: SweepPlan
    study_name: str
    parent_run_id: str | None

    @property
    def metric(self) -> str:
        return self.plan.sweep.header.objective.metric


def sampled_point(plan: SweepPlan, trial) -> dict[tuple, Any]:
    """The trial's value of each swept key (queued params are taken as they are)."""
    return {swept.path: swept.space.suggest(trial, swept.name) for swept in plan.keys}


def run_trial(context: SweepContext, study, trial, trainer: Callable) -> None:
    """Train the trial's repeats and tell the study how it ended (module docstring)."""
    from optuna.trial import TrialState

    plan = context.plan
    with Heartbeat(trial):
        point = sampled_point(plan, trial)
        described = ", ".join(f"{dotted(path)}={yaml_text(value)}" for path, value in point.items())
        logger.info("trial %d: %s", trial.number, described)
        tags = {SWEEP_TAG: context.study_name, TRIAL_TAG: str(trial.number)}
        tags.update({f"sweep.{dotted(path)}": yaml_text(value) for path, value in point.items()})
        try:
            state, value, reason = _train_repeats(context, trial, point, tags, trainer)
        except KeyboardInterrupt:  # Ctrl-C: the point goes back in the queue for --resume
            requeue(study, trial, trial.params)
            logger.warning("trial %d interrupted; `--resume` trains its point again", trial.number)
            raise
    if state == "complete":
        study.tell(trial, value)
        logger.info("trial %d: %s = %.6g", trial.number, context.metric, value)
    elif state == PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
        logger.info("trial %d pruned", trial.number)
    else:
        trial.set_user_attr(FAIL_REASON, reason[:1000])
        study.tell(trial, state=TrialState.FAIL)
        logger.warning("trial %d failed: %s", trial.number, reason)


def _train_repeats(context: SweepContext, trial, point, tags, trainer) -> tuple[str, float | None, str]:
    """("complete", mean, ""), ("pruned", None, ""), or ("failed", None, reason)."""
    plan, repeats = context.plan, context.plan.sweep.header.repeats
    try:
        configs = [plan.concrete_config(point, repeat) for repeat in range(repeats)]
    except ConfigError as exc:
        return "failed", None, f"the sampled point is no valid config: {exc}"
    group = _TrialGroup.open(context, trial, configs[0], tags) if repeats > 1 else None
    values: list[float] = []
    state, reason = "complete", ""
    try:
        for repeat, config in enumerate(configs):
            parent = group.run_id if group else context.parent_run_id
            run_tags = dict(tags, **{"gravtrain.repeat": str(repeat)})
            if parent:
                run_tags["mlflow.parentRunId"] = parent
            name = f"{context.study_name} trial {trial.number}" + (f" seed {config.General.seed}" if group else "")
            epoch_end = _pruning(trial, context) if repeat == 0 and plan.sweep.header.pruner != "none" else None
            try:
                result = trainer(config, run_name=name, tags=run_tags, epoch_end=epoch_end)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # a failed training fails the trial, not the sweep
                state, reason = "failed", f"repeat {repeat} (seed {config.General.seed}): {type(exc).__name__}: {exc}"
                break
            if repeat == 0 and result.run_id:
                trial.set_user_attr(RUN_ID, group.run_id if group else result.run_id)
            if PRUNED in result.stage_end_reasons:
                state = PRUNED
                break
            value = objective_value(result, context.metric)
            if value is None:
                state, reason = "failed", (f"repeat {repeat} (seed {config.General.seed}) logged no finite "
                                           f"{context.metric}")
                break
            values.append(value)
        if state == "complete":
            trial.set_user_attr(REPEAT_VALUES, values)
    finally:
        if group is not None:
            group.close(values, state)
    mean = statistics.fmean(values) if state == "complete" else None
    return state, mean, reason


def objective_value(result, metric: str) -> float | None:
    """The final value of ``metric`` of a training result (its last record), or None if absent or not finite."""
    value = result.metrics.get(metric)
    if value is None and metric in result.curves and result.curves[metric][1]:
        value = result.curves[metric][1][-1]
    if value is None or not math.isfinite(float(value)):
        return None
    return float(value)


def _pruning(trial, context: SweepContext):
    metric = context.metric

    def epoch_end(epoch: int, metrics) -> str | None:
        value = metrics.get(metric)
        if value is None or not math.isfinite(value):
            return None
        trial.report(float(value), epoch)
        return PRUNED if trial.should_prune() else None

    return epoch_end


class _TrialGroup:
    """The MLflow run of a trial with repeats: child of the parent run, parent of the repeats' runs."""

    def __init__(self, tracker, metric: str):
        self.tracker, self.metric = tracker, metric

    @property
    def run_id(self) -> str:
        return self.tracker.run_id

    @classmethod
    def open(cls, context: SweepContext, trial, config, tags) -> "_TrialGroup":
        from gravtrain.tracking import MlflowTracker, resolve_tracking_uri

        tracker = MlflowTracker.start(tracking_uri=resolve_tracking_uri(config.Tracking),
                                      experiment=config.Tracking.experiment or config.General.experiment,
                                      run_name=f"{context.study_name} trial {trial.number}")
        run_tags = dict(tags)
        if context.parent_run_id:
            run_tags["mlflow.parentRunId"] = context.parent_run_id
        tracker.set_tags(run_tags)
        return cls(tracker, context.metric)

    def close(self, values: list[float], state: str) -> None:
        """Log each repeat's objective (step = repeat), their mean under the metric's own name and their
        standard deviation, and end the run (FAILED if the trial failed)."""
        for repeat, value in enumerate(values):
            self.tracker.log_metrics({f"repeat/{self.metric}": value}, step=repeat)
        if values and state == "complete":
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            self.tracker.log_metrics({self.metric: statistics.fmean(values), f"{self.metric}_std": spread}, step=0)
        self.tracker.set_tags({"gravtrain.trial_state": state})
        self.tracker.end("FAILED" if state == "failed" else "FINISHED")
