"""Sweeps end to end, checked with MLflow's client and Optuna's storage: a real 2-trial sweep with two worker
processes, and the driver's bookkeeping (repeats, pruning, failures, resume after SIGKILL, two processes on one
storage) with the fast stand-in trainer of stand_in.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.training.tiny_runs import TINY, client_for, wait_for
from tests.tune.stand_in import (
    FAIL_AT_ENV, HOLD_ENV, INTERRUPT_AT_ENV, RENDEZVOUS_ENV, Rendezvous, stand_in_train, sweep_command,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def write_sweep(directory: Path, sweep: dict, epochs: int = 1) -> Path:
    base = yaml.safe_load(yaml.safe_dump(TINY))
    base["General"]["name"] = "tiny"
    base["Training"] = [{"name": "only", "epochs": epochs, "batch_size": 3000, "learning_rate": "sweep"}]
    base["Architecture"]["dense_final"] = [{"n": "sweep"}]
    base["Data"]["toy"].update(n_train_events=12, n_val_events=4)
    (directory / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    header = {"base": "base.yaml", "model": "tiny", "sampler": "random", "trials": 4, "seed": 3,
              "objective": {"metric": "val/objective"}}
    header.update(sweep)
    header.setdefault("parameters", {"Training.0.learning_rate": {"loguniform": [1.0e-4, 1.0e-2]},
                                     "Architecture.dense_final.0.n": {"choice": [8, 16]}})
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(header, sort_keys=False))
    return path


def tune_here(directory: Path, sweep: Path, **options):
    from gravtrain.tune import tune

    previous = Path.cwd()
    os.chdir(directory)
    try:
        return tune(sweep, trainer=stand_in_train, **options)
    finally:
        os.chdir(previous)


def study_of(directory: Path, name: str = "sweep"):
    import optuna

    from gravtrain.tune.study import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(str(directory / "mlruns-sweeps.journal")))


def finished_numbers(study) -> list[int]:
    from gravtrain.tune.study import counted_trials

    return [t.number for t in counted_trials(study) if t.state.is_finished()]


def runs_of(directory: Path):
    client = client_for(directory)
    experiment = client.get_experiment_by_name("gravtrain")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def test_a_random_sweep_with_two_workers_trains_for_real(tmp_path):
    from gravtrain.tracking import flatten_params
    from gravtrain.tune import plan_sweep

    sweep = write_sweep(tmp_path, {"trials": 2})
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(REPO / "config_trainer.py"), "tune", str(sweep), "--workers", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"2-trial sweep, 2 workers: {seconds:.0f} s")
    # Every line a worker wrote carries its prefix: its last line, and every line of its multi-line messages.
    for worker in (0, 1):
        assert f"[worker {worker}] no trial left; this worker ran 1" in done.stderr.splitlines()
    table = [line for line in done.stderr.splitlines() if "all energies" in line or "(std / mean of" in line]
    assert len(table) == 4 and all(line.startswith("[worker ") for line in table), table
    client, runs = runs_of(tmp_path)
    parents = [r for r in runs if r.data.tags.get("gravtrain.sweep_role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert sorted(int(r.data.tags["gravtrain.trial"]) for r in children) == [0, 1]
    plan = plan_sweep(sweep)
    for child in children:  # each child's params: exactly the flattened config of its point
        tags = child.data.tags
        point = {swept.path: yaml.safe_load(tags[f"sweep.{swept.name}"]) for swept in plan.keys}
        assert child.data.params == flatten_params(plan.concrete_config(point).to_dict())
        assert child.data.params["Training.0.batch_size"] == "3000" and "sweep" not in child.data.params.values()
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/sweep.yaml", "sweep/base.yaml", "sweep/dry_run.txt", "sweep/trials.csv", "sweep/summary.txt",
            "sweep/best_config.yaml", "sweep/history.png", "sweep/parallel_coordinates.png"} <= artifacts
    local = Path(client.download_artifacts(parent.info.run_id, "sweep", str(tmp_path / "report")))
    assert (local / "sweep.yaml").read_bytes() == sweep.read_bytes()
    assert (local / "base.yaml").read_bytes() == (tmp_path / "base.yaml").read_bytes()
    best = local / "best_config.yaml"
    assert "sweep" not in yaml.safe_load(best.read_text())["Training"][0].values()
    # The best config is a complete config that trains exactly the best trial: the same flattened params (what
    # `gravtrain train` logs), so training it again would repeat that trial.
    from gravtrain.config import load_config

    [best_child] = [r for r in children if r.info.run_id == parent.data.tags["gravtrain.best_run_id"]]
    assert flatten_params(load_config(best).to_dict()) == best_child.data.params


def test_repeats_train_each_point_with_distinct_seeds_and_the_objective_is_their_mean(tmp_path):
    sweep = write_sweep(tmp_path, {"trials": 2, "repeats": 2})
    outcome = tune_here(tmp_path, sweep)
    assert outcome.complete and outcome.census.complete == 2
    client, runs = runs_of(tmp_path)
    parent = next(r for r in runs if r.data.tags.get("gravtrain.sweep_role") == "parent")
    trial_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(trial_runs) == 2
    study = study_of(tmp_path)
    for trial_run in trial_runs:
        repeats = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == trial_run.info.run_id]
        assert len(repeats) == 2
        seeds = sorted(int(r.data.params["General.seed"]) for r in repeats)
        assert seeds == [5, 6]
        values = [r.data.metrics["val/objective"] for r in repeats]
        trial = study.trials[int(trial_run.data.tags["gravtrain.trial"])]
        assert trial.value == pytest.approx(sum(values) / 2)
        assert trial_run.data.metrics["val/objective"] == pytest.approx(trial.value)
        assert trial_run.data.metrics["val/objective_std"] > 0
    best = min(study.trials, key=lambda t: t.value)
    report = tune_here(tmp_path, sweep, report_only=True).report_text  # --report: the same study, read again
    assert report.startswith("2 of 2 trials finished: 2 complete") and f"best: trial {best.number}" in report
    assert f"+- {0.001 / 2 ** 0.5:.4g}" in report  # the spread of seeds 5 and 6: stdev of (x, x + 0.001)


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    sweep = write_sweep(tmp_path, {"sampler": "grid", "trials": None, "parameters": {
        "Training.0.learning_rate": {"choice": [1.0e-3, 1.0e-2]}, "Architecture.dense_final.0.n": {"choice": [8]}}})
    text = yaml.safe_load(sweep.read_text())
    del text["trials"]
    sweep.write_text(yaml.safe_dump(text, sort_keys=False))
    monkeypatch.setenv(FAIL_AT_ENV, "0.01")
    outcome = tune_here(tmp_path, sweep)
    study = study_of(tmp_path)
    states = {t.params["Training.0.learning_rate"]: t.state.name for t in study.trials}
    assert states == {0.001: "COMPLETE", 0.01: "FAIL"}
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    assert "FloatingPointError: non-finite loss" in failed.user_attrs["gravtrain.fail_reason"]
    assert "trial 1 failed" in outcome.report_text or "trial 0 failed" in outcome.report_text


def test_an_interrupted_trial_is_trained_again_by_the_resume(tmp_path, monkeypatch):
    sweep = write_sweep(tmp_path, {"sampler": "grid", "parameters": {
        "Training.0.learning_rate": {"choice": [1.0e-3, 1.0e-2, 1.0e-4]}, "Architecture.dense_final.0.n": {"choice": [8]}}})
    text = yaml.safe_load(sweep.read_text())
    del text["trials"]
    sweep.write_text(yaml.safe_dump(text, sort_keys=False))
    monkeypatch.setenv(INTERRUPT_AT_ENV, "0.01")
    with pytest.raises(KeyboardInterrupt):
        tune_here(tmp_path, sweep)
    study = study_of(tmp_path)
    assert [t.state.name for t in study.trials[:2]] == ["COMPLETE", "FAIL"]
    assert study.trials[1].user_attrs["gravtrain.set_aside"] == "requeued"
    outcome = tune_here(tmp_path, sweep, resume=True)
    assert outcome.complete and outcome.census.complete == 3
    study = study_of(tmp_path)
    trained = sorted(t.params["Training.0.learning_rate"] for t in study.trials if t.state.name == "COMPLETE")
    assert trained == [1.0e-4, 1.0e-3, 1.0e-2]


def test_a_sampled_point_that_is_no_valid_config_fails_its_trial_only(tmp_path):
    sweep = write_sweep(tmp_path, {"trials": 6, "parameters": {
        "Training.0.learning_rate": {"choice": [1.0e-3]},
        "BatchNormOptions.viscosity": {"uniform": [0.1, 0.99]},
        "BatchNormOptions.max_viscosity": {"uniform": [0.5, 0.999]}}})
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["Architecture"]["dense_final"] = [{"n": 8}]
    base["BatchNormOptions"] = {"viscosity": "sweep", "max_viscosity": "sweep"}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    outcome = tune_here(tmp_path, sweep)
    assert "some points of the space are no valid config" in outcome.dry_run_text
    study = study_of(tmp_path)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert outcome.complete and failed and len(failed) < 6
    for trial in failed:
        assert trial.params["BatchNormOptions.viscosity"] > trial.params["BatchNormOptions.max_viscosity"]
        assert "the sampled point is no valid config" in trial.user_attrs["gravtrain.fail_reason"]
        assert "is above max_viscosity" in trial.user_attrs["gravtrain.fail_reason"]


def test_the_median_pruner_stops_trials_that_trail(tmp_path):
    sweep = write_sweep(tmp_path, {"trials": 9, "pruner": "median", "parameters": {
        "Training.0.learning_rate": {"choice": [3.0e-3, 1.0e-4]}, "Architecture.dense_final.0.n": {"choice": [8]}}})
    tune_here(tmp_path, sweep)
    study = study_of(tmp_path)
    states = [(t.params["Training.0.learning_rate"], t.state.name) for t in study.trials]
    assert len(states) == 9
    # After five trials (the pruner's start-up), the worse learning rate trails the median: pruned.
    assert any(lr == 1.0e-4 and state == "PRUNED" for lr, state in states[5:])
    assert all(state == "COMPLETE" for lr, state in states if lr == 3.0e-3)


def test_a_sweep_killed_mid_way_resumes_to_exactly_its_trials(tmp_path):
    sweep = write_sweep(tmp_path, {"trials": 5})
    held = tmp_path / "held"
    env = dict(os.environ, **{HOLD_ENV: f"3:{held}"})  # killed in its third trial, which holds its whole point
    driver = subprocess.Popen(sweep_command(tmp_path, sweep), cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for(held.exists, driver, "the third trial's first epoch", timeout=240)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    study = study_of(tmp_path)
    running = [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert len(running) == 1 and len(finished_numbers(study)) == 2
    del env[HOLD_ENV]
    done = subprocess.run(sweep_command(tmp_path, sweep, "--resume"), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(tmp_path)
    numbers = finished_numbers(study)
    assert len(numbers) == 5 and len(set(numbers)) == 5
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    killed = study.trials[running[0]]  # its point was trained again, whole, under a new number
    again = [t for t in study.trials if t.user_attrs.get("gravtrain.requeue_of") == killed.number]
    assert killed.user_attrs["gravtrain.set_aside"] == "requeued"
    assert len(again) == 1 and again[0].state.name == "COMPLETE" and again[0].params == killed.params
    client, runs = runs_of(tmp_path)
    parent = next(r for r in runs if r.data.tags.get("gravtrain.sweep_role") == "parent")
    assert parent.info.status == "FINISHED"


def test_two_processes_on_one_storage_finish_one_study_without_duplicates(tmp_path):
    sweep = write_sweep(tmp_path, {"trials": 6})
    with Rendezvous(count=2) as rendezvous:  # each holds a trial before either trains
        env = dict(os.environ, **{RENDEZVOUS_ENV: rendezvous.path})
        first, second = (subprocess.Popen(sweep_command(tmp_path, sweep), cwd=tmp_path, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2))
        outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert rendezvous.arrived == 2
    assert first.returncode == 0 and second.returncode == 0, [err[-2000:] for _, err in outputs]
    study = study_of(tmp_path)
    numbers = finished_numbers(study)
    assert len(numbers) == 6 and len(set(numbers)) == 6
    hosts_pids = {t.user_attrs["gravtrain.pid"] for t in study.trials if t.state.name == "COMPLETE"}
    assert len(hosts_pids) == 2  # both processes trained
    client, runs = runs_of(tmp_path)
    parents = [r for r in runs if r.data.tags.get("gravtrain.sweep_role") == "parent"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(int(r.data.tags["gravtrain.trial"]) for r in children) == sorted(
        t.number for t in study.trials if t.state.name == "COMPLETE")
    # trial n's point depends only on (seed, n): the same points as one process would have drawn
    from gravtrain.tune.sampling import TrialSeededRandomSampler

    alone = TrialSeededRandomSampler(3)
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            distribution = trial.distributions["Training.0.learning_rate"]
            assert trial.params["Training.0.learning_rate"] == alone.sample_independent(
                study, trial, "Training.0.learning_rate", distribution)


def test_the_dry_run_prints_the_set_and_trains_nothing(tmp_path):
    sweep = write_sweep(tmp_path, {"sampler": "grid", "parameters": {
        "Training.0.learning_rate": {"choice": [1.0e-3, 1.0e-2]}, "Architecture.dense_final.0.n": {"choice": [8, 32]}}})
    text = yaml.safe_load(sweep.read_text())
    del text["trials"]
    sweep.write_text(yaml.safe_dump(text, sort_keys=False))
    done = subprocess.run([sys.executable, str(REPO / "config_trainer.py"), "tune", str(sweep), "--dry-run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "the 4 grid points" in out and "Training runs: 4 trials x 1 repeat = 4" in out
    assert "1. Training.0.learning_rate=0.001, Architecture.dense_final.0.n=8" in out
    small = int(out.split("Smallest model: ")[1].split(" ")[0].replace(",", ""))
    large = int(out.split("Largest model:  ")[1].split(" ")[0].replace(",", ""))
    assert small < large and "dense_final.0.n=32" in out.split("Largest model:")[1]
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlruns-sweeps.journal").exists()


def test_the_dry_run_sizes_a_swept_list_of_blocks_by_its_models(tmp_path):
    """A choice of lists (GravNet iterations) has no order of its own: the dry run builds each to find the
    smallest and largest model, and neither crashes on a list nor calls the last choice the largest."""
    from gravtrain.tune import tune

    sweep = write_sweep(tmp_path, {"parameters": {
        "Training.0.learning_rate": {"loguniform": [1.0e-4, 1.0e-2]},
        "Architecture.dense_final.0.n": {"choice": [8, 16]},
        "Architecture.gravnet": {"choice": [[{"n": 4}, {"n": 4}, {"n": 4}], [{"n": 4}], [{"n": 8}, {"n": 8}]]}}})
    base = yaml.safe_load((tmp_path / "base.yaml").read_text())
    base["Architecture"]["gravnet"] = "sweep"
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    text = tune(sweep, dry_run=True).dry_run_text
    smallest, largest = text.split("Smallest model:")[1].split("Largest model:")
    assert "(Architecture.dense_final.0.n=8, Architecture.gravnet=[{n: 4}])" in smallest
    assert "(Architecture.dense_final.0.n=16, Architecture.gravnet=[{n: 4}, {n: 4}, {n: 4}])" in largest
