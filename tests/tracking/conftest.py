"""A fresh ``mlruns`` store in a temporary working directory, and MLflow's own client on it to check records."""

from __future__ import annotations

import pytest

from gravtrain.config.schema import Tracking
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV, TRACKING_URI_ENV, resolve_tracking_uri


@pytest.fixture
def clean_environment(tmp_path, monkeypatch):
    """Work in ``tmp_path`` with neither MLflow variable set (both restored after the test)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TRACKING_URI_ENV, raising=False)
    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "unset")  # recorded, so the teardown restores the original
    monkeypatch.delenv(ALLOW_FILE_STORE_ENV)
    return tmp_path


@pytest.fixture
def store(clean_environment) -> str:
    """The default store (``mlruns`` in the working directory) as gravtrain resolves it."""
    return resolve_tracking_uri(Tracking())


@pytest.fixture
def client(store):
    from mlflow import MlflowClient

    from gravtrain.tracking import configure_mlflow

    configure_mlflow(store)
    return MlflowClient(tracking_uri=store)
