"""End to end into a temporary MLflow store: train a noise filter, then main models that use it by a path
relative to their config and by a runs:/ URI, and one with pre-pooling. Checked with MLflow's own client."""

from __future__ import annotations

import os

import numpy as np
import pytest
import yaml

from gravtrain.data import FEATURE_NAMES, simulate_events
from gravtrain.evaluation import evaluate_model, predict_events
from gravtrain.training import train

pytestmark = pytest.mark.slow

DATA = {"toy": {"n_train_events": 40, "n_val_events": 10, "n_particles": [2, 4], "energy_range": [1.0, 30.0],
                "noise_hits": 300, "seed": 3}}
ARCHITECTURE = {"gravnet": [{"n": 8, "n_filters": 16, "n_propagate": 8}], "message_passing": [{"n": 16}],
                "dense_pre_gravnet": [{"n": 16}], "dense_post_message_passing": [],
                "dense_final": [{"n": 16}], "n_embedding": 8}


def write(path, general, epochs=1, learning_rate=1e-3):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "General": general, "Data": DATA, "Architecture": ARCHITECTURE,
        "Training": [{"epochs": epochs, "batch_size": 4000, "learning_rate": learning_rate}],
        "Plotting": {"physics_frequency": 1}}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("premodels")
    previous = os.getcwd()
    os.chdir(directory)
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    yield directory
    os.chdir(previous)


@pytest.fixture(scope="module")
def noise_filter(workdir):
    config = write(workdir / "filter.yaml", {"name": "filter", "model": "noise-filter", "seed": 2}, epochs=2,
                   learning_rate=3e-3)
    return train(config)


def client():
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=os.path.abspath("mlruns"))


def test_the_filter_beats_a_constant_score(noise_filter):
    metrics = noise_filter.metrics
    efficiency, rejection = metrics["physics/signal_efficiency"], metrics["physics/noise_rejection"]
    # A constant score gives efficiency + rejection = 1 and AUC 0.5.
    assert efficiency > 0.6 and rejection > 0.6 and efficiency + rejection > 1.5, metrics
    assert metrics["physics/auc"] > 0.85
    run = client().get_run(noise_filter.run_id)
    assert run.info.status == "FINISHED" and run.data.params["General.model"] == "noise-filter"
    artifacts = {item.path for item in client().list_artifacts(noise_filter.run_id, "evaluation")}
    assert {"evaluation/roc.png", "evaluation/shower_energy_kept.png"} <= artifacts
    from gravtrain.tracking.headline_metrics import NOISE_FILTER_HEADLINE, OBJECTIVE, SHOWER_HEADLINE

    logged = set(run.data.metrics)  # the names `runs list` and the UI show for a noise filter
    assert set(NOISE_FILTER_HEADLINE) | {OBJECTIVE} <= logged and not set(SHOWER_HEADLINE) & logged
    assert noise_filter.headline.startswith(f"at score >= {metrics['physics/threshold']:g} signal efficiency "
                                            f"{metrics['physics/signal_efficiency']:.3f}")


@pytest.mark.parametrize("how", ["relative path", "runs URI"])
def test_a_main_model_uses_the_filter_and_records_its_identity(how, noise_filter, workdir):
    if how == "relative path":  # the config lies in a subdirectory: the path is relative to it
        source = os.path.relpath(noise_filter.run_dir / "model.keras", workdir / "configs")
        config = write(workdir / "configs" / "main.yaml", {"name": "main", "pre-model-type": "noise-filter",
                                                          "pre-model-path": source})
    else:
        config = write(workdir / "main_uri.yaml", {"name": "main_uri", "pre-model-type": "noise-filter",
                                                   "pre-model-path": f"runs:/{noise_filter.run_id}/model"})
    result = train(config)
    run = client().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["pre_model.run_id"] == noise_filter.run_id
    assert run.data.tags["gravtrain.pre_model.run_id"] == noise_filter.run_id
    from gravtrain.model import load_model, weights_sha256

    filter_model = load_model(noise_filter.run_dir / "model.keras")
    assert run.data.params["pre_model.weights_sha256"] == weights_sha256(filter_model)
    assert run.data.tags["gravtrain.pre_model.weights_sha256"] == weights_sha256(filter_model)
    # evaluation scores every hit of the validation events, the dropped ones as noise
    val = simulate_events(10, n_particles=(2, 4), energy_range=(1.0, 30.0), noise_hits=300, seed=3, stream=1)
    predictions = predict_events(result.model, val)
    assert predictions["beta"].shape[0] == predictions["kept"].shape[0] == val.n_hits
    assert 0 < predictions["kept"].mean() < 1
    truth_objects = sum(len(np.unique(val.event(e)["t_idx"][val.event(e)["t_idx"] >= 0])) for e in range(val.n_events))
    from gravtrain.config import load_config

    assert evaluate_model(result.model, val, load_config(config).Evaluation, figures=False).metrics.n_truth == \
        truth_objects


def test_pre_pooling_reduces_by_its_factor_and_trains_on_every_hit(workdir):
    config = write(workdir / "pooled.yaml", {"name": "pooled", "pre-model-type": "pre-pooling",
                                             "pre-pooling-factor": 4.0})
    result = train(config, tracking=False)
    assert result.stage_end_reasons == ["epochs"]
    val = simulate_events(4, n_particles=(2, 4), energy_range=(1.0, 30.0), noise_hits=300, seed=3, stream=1)
    batch = val.gather(np.arange(val.n_events))
    inputs = {"features": batch["features"], "row_splits": batch["row_splits"].astype(np.int32)}
    import keras

    probe = keras.Model(result.model.inputs, result.model.get_layer("pre_pooling").output)
    pooled, pooled_splits, assignment, _ = (value.numpy() for value in probe(inputs))
    is_track = batch["features"][:, FEATURE_NAMES.index("is_track")] > 0.5
    for e in range(val.n_events):
        a, b = batch["row_splits"][e:e + 2]
        calorimeter, tracks = int((~is_track[a:b]).sum()), int(is_track[a:b].sum())
        pooled_rows = pooled_splits[e + 1] - pooled_splits[e]
        assert pooled_rows == pytest.approx(calorimeter / 4.0 + tracks, abs=1.0)  # ceil(n / 4) + tracks
    outputs = result.model(inputs)
    assert all(value.shape[0] == len(batch["features"]) for value in outputs.values())  # the loss sees every hit
