"""Tune mode: sweeps of a base config, checked both ways before any compute and run on Optuna.

``tune(sweep_file)`` is what `gravtrain tune SWEEP.yaml` calls: sweep_file.py (the grammar), plan.py (the
checks against the base config and the concrete configs), dry_run.py (what the sweep may train), study.py
(the Optuna study and its slots), trial.py (one trial, through `gravtrain.train`), driver.py and worker.py
(processes), report.py (the results on the parent run).
"""

from gravtrain.tune.driver import TuneOutcome, check_sweep, tune
from gravtrain.tune.plan import SweepPlan, plan_sweep
from gravtrain.tune.study import StudyError
from gravtrain.tune.sweep_file import SweepFile, read_sweep_file

__all__ = ["StudyError", "SweepFile", "SweepPlan", "TuneOutcome", "check_sweep", "plan_sweep", "read_sweep_file",
           "tune"]
