"""Training end to end into a temporary MLflow store, checked with MLflow's own client: params, metrics,
artifacts, the model, the REST API of a real `mlflow server`, resume after SIGKILL, the NaN guard, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "General": {"name": "tiny", "seed": 5, "description-string": "end-to-end test"},
    "Data": {"toy": {"n_train_events": 24, "n_val_events": 6, "n_particles": [1, 3], "noise_hits": 20,
                     "energy_range": [2.0, 30.0]}},
    "Architecture": {"gravnet": [{"n": 6, "n_filters": 16, "n_propagate": 8}], "message_passing": [{"n": 8}],
                     "dense_pre_gravnet": [{"n": 16}], "dense_post_message_passing": [{"n": 16}],
                     "dense_final": [{"n": 16}], "n_embedding": 8},
    "Training": [{"name": "first", "epochs": 1, "batch_size": 3000, "learning_rate": 1e-3},
                 {"name": "second", "epochs": 1, "batch_size": 5000, "learning_rate": 1e-4,
                  "LossOptions": {"q_min": 0.5}, "recompute": True}],
    "Plotting": {"record_frequency": 1, "plot_frequency": 4},
}

pytestmark = pytest.mark.slow


def write_config(directory: Path, **changes) -> Path:
    config = json.loads(json.dumps(TINY))
    for path, value in changes.items():
        node = config
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def client_for(directory: Path):
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=(directory / "mlruns").resolve().as_uri())


def metric_steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def train_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "config_trainer.py"), str(config), *extra]


def train_in(directory: Path, config: Path, **options):
    """``gravtrain.train(config, **options)`` in this process, run from ``directory`` (where ``mlruns`` and
    ``checkpoints`` go)."""
    import gravtrain

    previous = Path.cwd()
    os.chdir(directory)
    try:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        return gravtrain.train(config, **options)
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run of TINY in a temporary directory, in this process (through ``gravtrain.train``)."""
    directory = tmp_path_factory.mktemp("run")
    config = write_config(directory)
    return directory, config, train_in(directory, config)


def test_every_config_key_is_a_param(trained):
    from gravtrain.config import load_config
    from gravtrain.tracking import flatten_params

    directory, config, result = trained
    run = client_for(directory).get_run(result.run_id)
    expected = flatten_params(load_config(config).to_dict())
    assert run.data.params == expected
    assert run.data.params["Training.0.learning_rate"] == "0.001"
    assert run.data.params["Training.1.learning_rate"] == "0.0001"
    assert run.data.params["Training.1.LossOptions.q_min"] == "0.5"
    assert run.data.params["Training.0.recompute"] == "false" and run.data.params["Training.1.recompute"] == "true"
    assert run.data.params["General.seed"] == "5"
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["mlflow.note.content"] == "end-to-end test"
    assert tags["gravtrain.stage"] == "second" and tags["gravtrain.stage_1.end_reason"] == "epochs"
    assert len(tags["gravtrain.config_sha256"]) == 64


def test_metrics_steps_and_the_learning_rate_switch(trained):
    directory, _, result = trained
    client = client_for(directory)
    stage_metric = {m.step: m.value for m in client.get_metric_history(result.run_id, "stage")}
    lr = {m.step: m.value for m in client.get_metric_history(result.run_id, "lr")}
    steps = sorted(lr)
    assert steps == list(range(1, len(steps) + 1))  # record_frequency 1: every step, once
    first_of_stage_two = min(step for step, stage in stage_metric.items() if stage == 2.0)
    assert all(lr[s] == pytest.approx(1e-3) for s in steps if s < first_of_stage_two)
    assert all(lr[s] == pytest.approx(1e-4) for s in steps if s >= first_of_stage_two)
    for key in ("objective", "loss/attractive", "loss/repulsive", "loss/beta", "loss/noise", "viscosity",
                "regularizer/gravnet_space_regularizer_0"):
        assert metric_steps(client, result.run_id, key) == steps, key
    assert metric_steps(client, result.run_id, "val/loss/total") == [1, 2]
    assert metric_steps(client, result.run_id, "epoch/hits_per_second") == [1, 2]
    physics = client.get_run(result.run_id).data.metrics
    assert {"physics/efficiency", "physics/fake_rate", "physics/response", "physics/efficiency_all",
            "physics/fake_rate_all", "physics/response_all", "physics/resolution_all"} <= set(physics)
    assert physics["physics/energy_threshold"] == 10.0
    # physics/* at each epoch end (Plotting.physics_frequency 1); the final evaluation adds no second value.
    assert metric_steps(client, result.run_id, "physics/efficiency") == [1, 2]
    assert metric_steps(client, result.run_id, "data/skipped_events") == [0, first_of_stage_two - 1]


def test_a_run_logs_every_headline_metric_of_its_kind(trained):
    """The names `runs list`, `runs compare` and the UI show first are the names a run really logs."""
    from gravtrain.tracking.headline_metrics import COMPARE_FIRST, NOISE_FILTER_HEADLINE, SHOWER_HEADLINE

    directory, _, result = trained
    logged = set(client_for(directory).get_run(result.run_id).data.metrics)
    assert set(SHOWER_HEADLINE + COMPARE_FIRST) <= logged, sorted(set(SHOWER_HEADLINE + COMPARE_FIRST) - logged)
    assert not set(NOISE_FILTER_HEADLINE) & logged  # a condensation model has no noise filter's headline
    # the end-of-training line (`gravtrain train`) comes from the result, with the logged figures
    assert result.headline == (f"above 10 GeV efficiency {result.metrics['physics/efficiency']:.3f}, fake rate "
                               f"{result.metrics['physics/fake_rate']:.3f}, response "
                               f"{result.metrics['physics/response']:.3f}")


def test_the_wall_time_by_part_adds_up_to_the_call(trained):
    from gravtrain.training.wall_clock import WALL_TIME_PARTS

    _, _, result = trained
    parts = result.wall_times
    assert tuple(parts) == WALL_TIME_PARTS
    assert all(parts[name] > 0 for name in ("events", "model", "run start", "steps", "validation", "physics",
                                            "commits", "final"))
    # everything but loading and checking the config, which takes milliseconds
    assert 0.9 * result.seconds < sum(parts.values()) <= result.seconds
    assert parts["steps"] < result.loop_seconds


def test_skipped_events_are_a_metric_and_a_warning_above_one_percent(tmp_path, caplog):
    from gravtrain.data import load_event_sets
    from gravtrain.config import load_config

    config = write_config(tmp_path, **{"Training.0.batch_size": 250, "Plotting.physics_frequency": 0})
    sizes = load_event_sets(load_config(config).Data)[0].event_sizes
    too_large = int((sizes > 250).sum())
    assert 0 < too_large < len(sizes)
    with caplog.at_level("WARNING", logger="gravtrain.training"):
        result = train_in(tmp_path, config, tracking=False)
    steps, counts = result.curves["data/skipped_events"]
    assert steps[0] == 0 and counts == [float(too_large), 0.0]  # stage first skips them, stage second none
    warning = next(r.getMessage() for r in caplog.records if "skips" in r.getMessage())
    assert f"stage first skips {too_large} of {len(sizes)} training events" in warning
    assert f"the largest has {int(sizes.max())} hits" in warning
    assert "physics/efficiency" in result.metrics  # physics_frequency 0: only the final evaluation
    assert "physics/efficiency" not in result.curves or result.curves["physics/efficiency"][0] == [2]


def test_artifacts_and_the_model_round_trip(trained):
    import mlflow.keras

    directory, config, result = trained
    client = client_for(directory)
    names = {a.path for folder in ("", "config", "plots", "evaluation", "model_info", "model")
             for a in client.list_artifacts(result.run_id, folder or None)}
    assert {"config/tiny.yaml", "config/resolved.yaml", "plots/loss_terms.png", "plots/schedule.png",
            "plots/space_cluster.png", "evaluation/efficiency_response.png", "model_info/summary.txt",
            "model/MLmodel"} <= names
    original = client.download_artifacts(result.run_id, "config/tiny.yaml", str(directory / "download"))
    assert Path(original).read_bytes() == config.read_bytes()
    mlmodel = yaml.safe_load(Path(client.download_artifacts(result.run_id, "model/MLmodel",
                                                             str(directory / "download"))).read_text())
    inputs = {spec["name"]: spec for spec in json.loads(mlmodel["signature"]["inputs"])}
    assert inputs["features"]["tensor-spec"]["shape"] == [-1, 10] and inputs["row_splits"]["tensor-spec"]["shape"] == [-1]

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    loaded = mlflow.keras.load_model(f"{(directory / 'mlruns').resolve().as_uri()}/"
                                     f"{client.get_run(result.run_id).info.experiment_id}/{result.run_id}/"
                                     "artifacts/model")
    from gravtrain.data import simulate_events

    events = simulate_events(2, n_particles=(1, 2), noise_hits=5, seed=3)
    batch = {"features": events.features, "row_splits": events.row_splits.astype(np.int32)}
    expected, actual = result.model(batch, training=False), loaded(batch, training=False)
    for name in expected:
        np.testing.assert_array_equal(expected[name].numpy(), actual[name].numpy(), err_msg=name)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300.0):
    """Poll ``condition`` until it returns a true value, and return that value; fail the test when ``process``
    ends or ``timeout`` seconds pass first. The state waited for is another process's (a file it writes, a port
    it serves), so there is no event to wait on: between polls, the wait for the process to end is the pause."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the process ended (exit code {process.returncode}) before {what}")


def read_json_url(url: str):
    """The JSON an HTTP GET of ``url`` returns, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def run_checkpointed_at(checkpoints: Path, step: int) -> Path | None:
    """The run directory whose latest checkpoint (``latest`` is replaced atomically) is at ``step`` or later."""
    for latest in checkpoints.glob("*/latest"):
        progress = json.loads((latest.parent / latest.read_text().strip() / "progress.json").read_text())
        if progress["step"] >= step:
            return latest.parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_mlflow_server_serves_the_params_over_rest(trained):
    from gravtrain.stores import ui_command_line, ui_environment

    directory, _, result = trained
    port = free_port()
    server = subprocess.Popen(ui_command_line(str(directory / "mlruns"), port=port), cwd=directory,
                              env=ui_environment(str(directory / "mlruns")), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={result.run_id}"
        payload = wait_for(lambda: read_json_url(url), server, "the MLflow server answering", timeout=120)
        params = {p["key"]: p["value"] for p in payload["run"]["data"]["params"]}
        assert params["Training.1.learning_rate"] == "0.0001"
        assert params["Architecture.gravnet.0.n"] == "6"
    finally:
        server.terminate()
        server.wait(timeout=30)


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


def test_the_same_seed_gives_the_same_loss_curve(tmp_path):
    """General.seed fixes the run on CPU: two trainings give bit-identical loss curves and weights; another
    seed gives another curve (so the comparison can fail)."""
    config = write_config(tmp_path)
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    first, second = (train_in(tmp_path / name, config, tracking=False) for name in ("a", "b"))
    # The other seed needs only its first steps: one stage, no physics evaluation.
    other = train_in(tmp_path / "c", write_config(tmp_path / "c", **{
        "General.seed": 6, "Training": TINY["Training"][:1], "Plotting.physics_frequency": 0}), tracking=False)

    compared = [name for name in first.curves if name == "objective" or name.startswith(("loss/", "val/"))
                or name in ("grad_norm", "viscosity")]
    assert "objective" in compared and "val/loss/total" in compared
    for name in compared:
        assert first.curves[name] == second.curves[name], name
    for a, b in zip(first.model.weights, second.model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert other.curves["objective"][1] != first.curves["objective"][1]


def test_adamw_trains_the_toy_config_for_one_epoch(tmp_path, monkeypatch):
    """``adamw``, the optimizer added by one registry entry and its schema choice, trains TINY's first stage (one
    epoch) with the ``weight_decay`` it is given, through the one training path."""
    import keras

    from gravtrain.model import training_parts

    built = []

    def make_optimizer(options, learning_rate):
        built.append(real_make_optimizer(options, learning_rate))
        return built[-1]

    real_make_optimizer = training_parts.make_optimizer
    monkeypatch.setattr(training_parts, "make_optimizer", make_optimizer)
    config = json.loads(json.dumps(TINY))
    config["Optimizer"] = {"name": "adamw", "weight_decay": 0.01}
    config["Training"] = config["Training"][:1]
    config["Plotting"] = {"record_frequency": 1, "plot_frequency": 1000, "physics_frequency": 0}  # few plots
    path = tmp_path / "adamw.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))

    result = train_in(tmp_path, path, tracking=False)

    [optimizer] = built
    assert type(optimizer) is keras.optimizers.AdamW and optimizer.weight_decay == 0.01
    steps, objective = result.curves["objective"]
    assert int(optimizer.iterations) == steps[-1] > 0
    assert result.stage_end_reasons == ["epochs"] and np.all(np.isfinite(objective))
