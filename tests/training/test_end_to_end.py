"""Training end to end into a temporary MLflow store, checked with MLflow's own client: params, metrics,
artifacts, the model, the REST API of a real `mlflow server`, the same seed's same curve, another optimizer."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.training.tiny_runs import (
    TINY, client_for, free_port, metric_steps, read_json_url, train_in, wait_for, write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One training run of TINY in a temporary directory, in this process (through ``gravtrain.train``), its
    second stage recomputing the GravNet iterations in the backward pass."""
    directory = tmp_path_factory.mktemp("run")
    config = write_config(directory, **{"Training.1.recompute": True})
    return directory, config, train_in(directory, config)


def test_every_config_key_is_a_param(trained):
    from gravtrain.config import load_config, resolved_yaml
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
    resolved = resolved_yaml(load_config(config)).encode()
    assert tags["gravtrain.resolved_config_sha256"] == hashlib.sha256(resolved).hexdigest()


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
    from gravtrain.tracking.headline_metrics import (
        CHART_SECTIONS, COMPARE_FIRST, NOISE_FILTER_HEADLINE, SHOWER_HEADLINE, chart_section,
    )

    directory, _, result = trained
    logged = set(client_for(directory).get_run(result.run_id).data.metrics)
    assert set(SHOWER_HEADLINE + COMPARE_FIRST) <= logged, sorted(set(SHOWER_HEADLINE + COMPARE_FIRST) - logged)
    assert not set(NOISE_FILTER_HEADLINE) & logged  # a condensation model has no noise filter's headline
    # every chart section the run's metrics fall in has its place in the UI's chart view
    assert {chart_section(name) for name in logged} <= set(CHART_SECTIONS)
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
    # tagged as MLflow's own log_model tags a run, so the UI lists it under the run's "Logged models"
    [logged] = json.loads(client.get_run(result.run_id).data.tags["mlflow.log-model.history"])
    assert (logged["run_id"], logged["artifact_path"]) == (result.run_id, "model") and "keras" in logged["flavors"]
    original = client.download_artifacts(result.run_id, "config/tiny.yaml", str(directory / "download"))
    assert Path(original).read_bytes() == config.read_bytes()
    mlmodel = yaml.safe_load(Path(client.download_artifacts(result.run_id, "model/MLmodel",
                                                             str(directory / "download"))).read_text())
    assert (mlmodel["run_id"], mlmodel["artifact_path"]) == (result.run_id, "model")
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
