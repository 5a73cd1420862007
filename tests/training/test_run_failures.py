"""A training run that stops early, checked end to end: resume after SIGKILL, the NaN guard, full disks under
the checkpoints and the store, Ctrl-C; in each the run's status, its checkpoint and its metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import numpy as np
import pytest

from tests.training.tiny_runs import (
    client_for, metric_steps, run_checkpointed_at, train_command, wait_for, write_config,
)

pytestmark = pytest.mark.slow


def test_resume_after_sigkill_logs_every_step_once(tmp_path):
    config = write_config(tmp_path, **{"Training.0.epochs": 3, "Plotting.plot_frequency": 2,
                                       "Plotting.log_frequency": 2})
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(train_command(config), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    # kill once a mid-run checkpoint exists
    run_dir = wait_for(lambda: run_checkpointed_at(tmp_path / "checkpoints", 6), process, "a checkpoint at step 6")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    run_id = run_dir.name

    resumed = subprocess.run(train_command(config, "--resume", run_id), cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    # Output to a file (a batch job's log), not a terminal: lines, no progress bar redrawn with backspaces.
    assert "\b" not in resumed.stdout + resumed.stderr and "\r" not in resumed.stdout + resumed.stderr
    assert "epoch 4, batch 2/" in resumed.stderr and "objective" in resumed.stderr
    client = client_for(tmp_path)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # the end says how to open the run: the UI's command for this store and the run's page in the training view
    assert (f"`gravtrain ui` serves it at http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}"
            "?workflowType=machine_learning") in resumed.stderr
    for key in ("objective", "lr", "loss/attractive"):
        steps = metric_steps(client, run_id, key)
        assert steps == list(range(1, steps[-1] + 1)), (key, steps)  # contiguous and unique
    assert metric_steps(client, run_id, "val/loss/total") == [1, 2, 3, 4]  # 3 + 1 epochs
    final = json.loads((tmp_path / "checkpoints" / run_id / "stage-2-end" / "progress.json").read_text())
    assert final["epoch"] == 4 and final["finished"]
    stage = {m.step: m.value for m in client.get_metric_history(run_id, "stage")}
    # the plots' stage marks survive the restart: both stages, though the resumed process began in stage 1
    assert final["stage_first_steps"] == [0, min(step for step, value in stage.items() if value == 2.0) - 1]


def test_nan_guard_stops_with_failed_run_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import tensorflow as tf

    import gravtrain
    from gravtrain.training import NonFiniteLossError, latest_checkpoint
    from gravtrain.training import step as step_module

    original = step_module.regularizer_values
    calls = tf.Variable(0)

    def poisoned(model):  # from the 7th traced call on, one regulariser reads NaN
        values = dict(original(model))
        name = next(iter(values))
        calls.assign_add(1)
        values[name] = tf.where(calls > 6, tf.constant(np.nan, values[name].dtype), values[name])
        return values

    monkeypatch.setattr(step_module, "regularizer_values", poisoned)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = write_config(tmp_path, **{"Plotting.plot_frequency": 2})
    with pytest.raises(NonFiniteLossError, match="regularizer/gravnet_space_regularizer_0") as info:
        gravtrain.train(config)
    assert "last good checkpoint" in str(info.value)
    run_dir = next((tmp_path / "checkpoints").iterdir())
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None
    progress = json.loads((checkpoint / "progress.json").read_text())
    assert progress["step"] <= 6
    run = client_for(tmp_path).get_run(run_dir.name)
    assert run.info.status == "FAILED"
    assert run.data.tags["gravtrain.stop_reason"] == "non_finite"
    assert "NonFiniteLossError" in run.data.tags["gravtrain.error"]


def test_a_full_checkpoint_disk_is_one_line_exit_1_and_a_failed_run(tmp_path, monkeypatch, capsys):
    """The third checkpoint write meets a full disk (h5py's RuntimeError): the CLI says so in one line and
    exits 1, the run is FAILED with the error as a tag, and the checkpoint before it is intact."""
    import errno

    import keras

    from gravtrain.cli import main
    from gravtrain.training import latest_checkpoint

    original, writes = keras.Model.save_weights, []

    def save_weights(model, path, *args, **kwargs):
        writes.append(path)
        if len(writes) == 3:
            raise RuntimeError(f"Can't write data (file write failed: errno = {errno.ENOSPC}, error message = "
                               "'No space left on device')")
        return original(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", save_weights)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = write_config(tmp_path, **{"Plotting.plot_frequency": 2, "Plotting.physics_frequency": 0})
    assert main([str(config)]) == 1
    [message] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert "cannot write a checkpoint into" in message and "the disk is full: RuntimeError" in message
    assert "is intact" in message and "--resume" in message
    run_dir = next((tmp_path / "checkpoints").iterdir())
    assert not [path for path in run_dir.iterdir() if path.name.startswith(".partial")]
    assert latest_checkpoint(run_dir) is not None
    run = client_for(tmp_path).get_run(run_dir.name)
    assert run.info.status == "FAILED" and "CheckpointWriteError" in run.data.tags["gravtrain.error"]


def test_a_full_store_disk_stops_with_a_checkpoint_and_a_resume_loses_no_metric(tmp_path, monkeypatch, capsys):
    """From the third metric batch on, the store's disk is full: training stops at the next commit with one
    message (exit 1), a checkpoint and the metrics not written kept beside it, and the run is FAILED. With space
    again, the resume moves aside the files the crash damaged, writes the kept metrics first and goes on: every
    step of the objective is in the store once."""
    import errno

    from mlflow.store.tracking.file_store import FileStore

    from gravtrain.cli import main

    original, metric_batches = FileStore.log_batch, []

    def log_batch(store, run_id, metrics, params, tags):
        if metrics:
            metric_batches.append(len(metrics))
            if len(metric_batches) >= 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return original(store, run_id, metrics, params, tags)

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = write_config(tmp_path, **{"Plotting.plot_frequency": 3, "Plotting.physics_frequency": 0})
    with monkeypatch.context() as full:
        full.setattr(FileStore, "log_batch", log_batch)
        assert main([str(config)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    assert "the store's disk is full" in errors[0] and "--resume" in errors[0] and "kept beside it" in errors[0]
    run_dir = next((tmp_path / "checkpoints").iterdir())
    assert (run_dir / "unwritten-metrics.jsonl").is_file()
    client = client_for(tmp_path)
    assert client.get_run(run_dir.name).info.status == "FAILED"

    # The crash also cut a metric line short and left an empty metric file (as a real full disk does).
    metrics = next((tmp_path / "mlruns").glob(f"*/{run_dir.name}/metrics"))
    with open(metrics / "objective", "a") as objective:
        objective.write("1796199999999 0.")
    (metrics / "loss" / "noise").write_text("")
    capsys.readouterr()
    assert main([str(config), "--resume", run_dir.name]) == 0
    warnings = capsys.readouterr().err
    assert "an earlier crash damaged 2 file(s)" in warnings and "cut mid-write" in warnings
    assert not (run_dir / "unwritten-metrics.jsonl").exists()
    run = client.get_run(run_dir.name)
    assert run.info.status == "FINISHED"
    steps = metric_steps(client, run_dir.name, "objective")
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 4


def test_ctrl_c_writes_a_checkpoint_and_ends_the_run_killed(tmp_path):
    config = write_config(tmp_path, **{"Training.0.epochs": 50})
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(train_command(config), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list((tmp_path / "checkpoints").glob("*/latest")), process, "a first checkpoint")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    run_dir = next((tmp_path / "checkpoints").iterdir())
    run = client_for(tmp_path).get_run(run_dir.name)
    assert run.info.status == "KILLED"
    progress = json.loads((run_dir / (run_dir / "latest").read_text().strip() / "progress.json").read_text())
    assert progress["step"] >= 1 and not progress["finished"]
