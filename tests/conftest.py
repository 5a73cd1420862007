"""Fixtures shared by every test room."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tests run on CPU only and quietly, whatever machine runs them.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Runs go to each test's own directory, never to a store the shell running pytest points at.
os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="session", autouse=True)
def tensorflow_without_graph_rewrites():
    """Tests in this process run TensorFlow's traced functions without its graph optimiser (Grappler). It rewrites
    each traced step for speed at its first call, about a third of a tiny training's time, which a test's few
    steps never repay; the values it computes are the same ops' values. The tests that start gravtrain in a
    process of its own (training from the command line, several devices, the learning curve, the benchmarks,
    sweeps with workers) run with it, as users do."""
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(autouse=True)
def tracking_uri_left_as_found():
    """A test leaves ``MLFLOW_TRACKING_URI`` as it found it. ``mlflow.set_tracking_uri`` also writes that variable
    (so that subprocesses inherit it), and a test that sets it and then "restores" the default leaves MLflow's
    default ``sqlite:///mlflow.db`` behind: every later test of the same worker, and every process it starts, then
    writes to a database in the working directory. The leak is put right, and the test that made it fails."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    after = os.environ.get("MLFLOW_TRACKING_URI")
    if after == before:
        return
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    pytest.fail(f"the test left MLFLOW_TRACKING_URI={after!r} (it was {before!r}); open a store with "
                "MlflowClient(tracking_uri=...) or monkeypatch.setenv instead of mlflow.set_tracking_uri")


@pytest.fixture(autouse=True)
def user_cache_directory(tmp_path_factory, monkeypatch) -> Path:
    """A cache directory of the test's own (``XDG_CACHE_HOME``), so that nothing a test runs (the store mirror
    of ``gravtrain ui`` and ``gravtrain runs list``) writes into the user's ``~/.cache``."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache
