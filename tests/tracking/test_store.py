"""The tracking store: default directory, the environment variable, other URIs, and MLflow's file-store switch."""

from __future__ import annotations

import os

import pytest

from gravtrain.config.schema import Tracking
from gravtrain.tracking import MlflowTracker, TrackingError, configure_mlflow, resolve_tracking_uri
from gravtrain.tracking.store import (
    ALLOW_FILE_STORE_ENV, TRACKING_URI_ENV, is_file_store, local_directory, named_store,
)


def test_default_store_is_mlruns_in_the_working_directory(clean_environment):
    uri = resolve_tracking_uri(Tracking())
    assert uri == (clean_environment / "mlruns").resolve().as_uri()
    assert uri.startswith("file://") and is_file_store(uri)
    assert local_directory(uri) == (clean_environment / "mlruns").resolve()


def test_environment_variable_wins_over_the_config(clean_environment, monkeypatch):
    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:///from-env.db")
    assert resolve_tracking_uri(Tracking(tracking_uri="from-config")) == "sqlite:///from-env.db"
    monkeypatch.setenv(TRACKING_URI_ENV, "env-runs")
    assert resolve_tracking_uri(Tracking(tracking_uri="from-config")) == (clean_environment / "env-runs").resolve().as_uri()


@pytest.mark.parametrize("uri", ["sqlite:///runs/mlflow.db", "sqlite:////abs/mlflow.db", "http://127.0.0.1:5000",
                                 "https://mlflow.example.org", "file:///data/mlruns"])
def test_uris_with_a_scheme_are_kept(clean_environment, uri):
    assert resolve_tracking_uri(Tracking(tracking_uri=uri)) == uri
    assert is_file_store(uri) == uri.startswith("file:")


def test_configure_allows_the_file_store_for_this_process(store):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match=ALLOW_FILE_STORE_ENV):  # what MLflow 3 does on its own
        MlflowClient(tracking_uri=store).search_experiments()
    configure_mlflow(store)
    assert os.environ[ALLOW_FILE_STORE_ENV] == "true"
    assert [e.name for e in MlflowClient(tracking_uri=store).search_experiments()] == ["Default"]


def test_configure_keeps_a_value_the_user_set(store, monkeypatch):
    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "false")
    configure_mlflow(store)
    assert os.environ[ALLOW_FILE_STORE_ENV] == "false"
    with pytest.raises(TrackingError, match=f"{ALLOW_FILE_STORE_ENV} is set to 'false'"):
        MlflowTracker.start(tracking_uri=store, experiment="e", run_name="r")


def test_configure_leaves_other_stores_alone_and_makes_the_sqlite_directory(clean_environment):
    configure_mlflow("sqlite:///nested/dir/mlflow.db")
    configure_mlflow("http://127.0.0.1:5000")
    assert ALLOW_FILE_STORE_ENV not in os.environ
    assert (clean_environment / "nested" / "dir").is_dir()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow")  # SQLAlchemy, inside MLflow
def test_sqlite_store_end_to_end(clean_environment, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.setenv(TRACKING_URI_ENV, "sqlite:///db/mlflow.db")
    uri = resolve_tracking_uri(Tracking())
    with MlflowTracker.start(tracking_uri=uri, experiment="sql", run_name="r") as tracker:
        tracker.log_params({"a": "1"})
        tracker.log_metrics({"loss": 0.5}, step=3)
        tracker.log_text("hello", "notes.txt")
    assert (clean_environment / "db" / "mlflow.db").is_file()
    assert ALLOW_FILE_STORE_ENV not in os.environ
    run = MlflowClient(tracking_uri=uri).get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"a": "1"} and run.data.metrics == {"loss": 0.5}
    assert [a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(tracker.run_id)] == ["notes.txt"]


def test_limits_match_mlflow():
    from mlflow.utils import validation

    from gravtrain.tracking.metric_writer import MLFLOW_METRICS_PER_BATCH
    from gravtrain.tracking.run_params import MLFLOW_TAG_VALUE_LIMIT
    from gravtrain.tracking.store_writes import MLFLOW_PARAMS_TAGS_PER_BATCH

    assert validation.MAX_PARAMS_TAGS_PER_BATCH == MLFLOW_PARAMS_TAGS_PER_BATCH
    assert validation.MAX_METRICS_PER_BATCH == MLFLOW_METRICS_PER_BATCH
    assert validation.MAX_TAG_VAL_LENGTH == MLFLOW_TAG_VALUE_LIMIT


def test_a_reading_command_opens_the_store_it_names_else_the_environments_else_the_default(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert named_store(None) == Tracking().tracking_uri == "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///runs.db")
    assert named_store(None) == "sqlite:///runs.db"
    assert named_store("/mnt/cluster/mlruns") == "/mnt/cluster/mlruns"
