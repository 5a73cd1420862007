"""The results of a sweep, on its parent run: the best trial (its mean over repeats, their spread, its point and
MLflow run), a CSV table of every trial, each swept key's importance (Optuna's), the optimisation history and
parallel coordinates (PNG), and the best point as a ready-to-train config (``sweep/best_config.yaml``, no
``sweep`` left in it).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Any

from gravtrain.config import resolved_yaml
from gravtrain.tune.plan import SweepPlan
from gravtrain.tune.spaces import yaml_text
from gravtrain.tune.study import SET_ASIDE, counted_trials
from gravtrain.tune.trial import FAIL_REASON, REPEAT_VALUES, RUN_ID

logger = logging.getLogger(__name__)


@dataclass
class TrialRow:
    number: int
    state: str
    value: float | None
    spread: float | None
    point: dict[str, Any]
    run_id: str
    reason: str


@dataclass
class SweepReport:
    metric: str
    maximize: bool
    keys: list[str]
    rows: list[TrialRow]
    n_trials: int
    set_aside: int
    best: TrialRow | None = None
    best_config_yaml: str | None = None
    importance: dict[str, float] | None = None
    importance_note: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def csv_text(self) -> str:
        stream = io.StringIO()
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["trial", "state", self.metric, "spread", *self.keys, "mlflow_run_id", "reason"])
        for row in self.rows:
            writer.writerow([row.number, row.state, "" if row.value is None else repr(row.value),
                             "" if row.spread is None else repr(row.spread),
                             *(yaml_text(row.point.get(k)) for k in self.keys), row.run_id, row.reason])
        return stream.getvalue()

    def summary(self) -> str:
        states = {state: sum(r.state == state for r in self.rows) for state in ("COMPLETE", "PRUNED", "FAIL",
                                                                                  "RUNNING", "WAITING")}
        finished = states["COMPLETE"] + states["PRUNED"] + states["FAIL"]
        lines = [f"{finished} of {self.n_trials} trials finished: {states['COMPLETE']} complete, "
                 f"{states['PRUNED']} pruned, {states['FAIL']} failed"
                 + (f"; {states['RUNNING']} running" if states["RUNNING"] else "")
                 + (f"; {self.set_aside} set aside (re-queued, unstarted or surplus)" if self.set_aside else "")]
        if self.best is None:
            lines.append("no trial completed yet.")
        else:
            spread = f" +- {self.best.spread:.4g}" if self.best.spread else ""
            lines.append(f"best: trial {self.best.number}, {self.metric} = {self.best.value:.6g}{spread} "
                         f"(MLflow run {self.best.run_id or '-'})")
            lines += [f"  {k} = {yaml_text(self.best.point[k])}" for k in self.keys]
        if self.importance:
            lines.append("importance (Optuna's PED-ANOVA): " +
                         ", ".join(f"{k} {v:.2f}" for k, v in self.importance.items())
                         + (f" ({self.importance_note})" if self.importance_note else ""))
        elif self.importance_note:
            lines.append(f"importance: {self.importance_note}")
        for row in self.rows:
            if row.state == "FAIL" and row.reason:
                lines.append(f"trial {row.number} failed: {row.reason}")
        return "\n".join(lines) + "\n"


def sweep_report(plan: SweepPlan, study, *, figures: bool = True) -> SweepReport:
    """The report of the study as it stands (finished trials, and those still running or queued)."""
    header = plan.sweep.header
    keys = [swept.name for swept in plan.keys]
    by_name = {swept.name: swept for swept in plan.keys}
    rows = []
    for trial in counted_trials(study):
        repeats = trial.user_attrs.get(REPEAT_VALUES) or []
        point = {k: by_name[k].space.from_sampled(v) for k, v in trial.params.items() if k in by_name}
        rows.append(TrialRow(
            number=trial.number, state=trial.state.name, value=trial.value,
            spread=statistics.stdev(repeats) if len(repeats) > 1 else None, point=point,
            run_id=str(trial.user_attrs.get(RUN_ID, "")), reason=str(trial.user_attrs.get(FAIL_REASON, ""))))
    set_aside = sum(SET_ASIDE in t.user_attrs for t in study.get_trials(deepcopy=False))
    report = SweepReport(metric=header.objective.metric, maximize=header.objective.maximize, keys=keys, rows=rows,
                         n_trials=plan.sweep.n_trials, set_aside=set_aside)
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None and math.isfinite(r.value)]
    if complete:
        report.best = (max if report.maximize else min)(complete, key=lambda r: r.value)
        config = plan.concrete_config({by_name[k].path: v for k, v in report.best.point.items()})
        report.best_config_yaml = (f"# The best point of sweep '{header.name}' (trial {report.best.number}, "
                                   f"{report.metric} = {report.best.value:.6g}), every key resolved.\n"
                                   + resolved_yaml(config))
    report.importance, report.importance_note = _importance(study, len(complete))
    if figures and complete:
        from gravtrain.plotting.sweeps import optimisation_history_figure, parallel_coordinates_figure

        report.figures["history"] = optimisation_history_figure(
            [r.number for r in complete], [r.value for r in complete], metric=report.metric,
            maximize=report.maximize, spreads=[r.spread or 0.0 for r in complete])
        report.figures["parallel_coordinates"] = parallel_coordinates_figure(
            [r.point for r in complete], [r.value for r in complete], keys=keys, metric=report.metric)
    return report


def _importance(study, n_complete: int) -> tuple[dict[str, float] | None, str]:
    if n_complete < 3:
        return None, f"needs at least 3 completed trials ({n_complete} so far)"
    import warnings

    import optuna

    with warnings.catch_warnings(record=True) as caught:  # Optuna's caveats go into the report, not stderr
        warnings.simplefilter("always")
        try:
            importance = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError) as exc:  # e.g. every trial at the same point
            return None, f"not computed: {exc}"
    caveats = dict.fromkeys(importance_caveat(str(w.message)) for w in caught)  # in order, once each
    return {k: float(v) for k, v in importance.items()}, "; ".join(caveats)


#: Optuna's importance warnings, as the report says them: (pattern of Optuna's message, the report's words).
IMPORTANCE_CAVEATS = (
    (re.compile(r"Target and region quantiles select the same set of trials|number of trials is too small"),
     "too few completed trials to tell the keys apart, so every key gets the same importance; run more trials"),
    (re.compile(r"regimes for parameter `(?P<key>[^`]+)` have less than (?P<n>\d+) trials"),
     "some values of {key} have fewer than {n} trials, so its importance is rough"),
)


def importance_caveat(message: str) -> str:
    """A warning Optuna gave while computing importances, in the report's words (an unknown one as Optuna's,
    named as such)."""
    for pattern, words in IMPORTANCE_CAVEATS:
        found = pattern.search(message)
        if found:
            return words.format(**found.groupdict())
    return f"Optuna: {message}"


def log_report(tracker, report: SweepReport) -> None:
    """Write the report to the parent run: artifacts under ``sweep/``, the best value as metrics, tags."""
    tracker.log_text(report.summary(), "sweep/summary.txt")
    tracker.log_text(report.csv_text(), "sweep/trials.csv")
    if report.importance is not None:
        tracker.log_dict(report.importance, "sweep/importance.json")
    for name, figure in report.figures.items():
        tracker.log_figure(figure, f"sweep/{name}.png")
    finished = sum(r.state in ("COMPLETE", "PRUNED", "FAIL") for r in report.rows)
    if report.best is not None:
        tracker.log_text(report.best_config_yaml, "sweep/best_config.yaml")
        metrics = {f"best/{report.metric}": report.best.value}
        if report.best.spread is not None:
            metrics[f"best/{report.metric}_std"] = report.best.spread
        tracker.log_metrics(metrics, step=finished)  # the step: how many trials had finished
        tracker.set_tags({"gravtrain.best_trial": str(report.best.number),
                          "gravtrain.best_run_id": report.best.run_id or "-"})
    tracker.log_metrics({"sweep/finished_trials": finished}, step=finished)
