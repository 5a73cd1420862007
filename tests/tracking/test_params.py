"""Config flattening for MLflow: every key, dotted paths with list indices, lossless."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravtrain.config import load_config
from gravtrain.tracking.params import HASHED_MARKER, MLFLOW_PARAM_VALUE_LIMIT, flatten_params, unflatten_params


@pytest.fixture(params=["toy.yaml", "hgcal.yaml"])
def resolved(request, repo_root):
    return load_config(repo_root / "configs" / request.param).to_dict()


def test_flatten_is_lossless(resolved):
    assert unflatten_params(flatten_params(resolved)) == resolved


def test_paths_and_values_as_written(repo_root):
    params = flatten_params(load_config(repo_root / "configs" / "hgcal.yaml").to_dict())
    assert params["General.seed"] == "1234"
    assert params["Architecture.gravnet.0.n"] == "256"
    assert params["Training.1.learning_rate"] == "0.0001"
    assert params["Training.2.LossOptions.beta_push"] == "0.1"
    assert params["Training.1.BatchNormOptions.max_viscosity"] == "0.99999"
    assert params["DenseOptions.activation"] == "elu"
    assert params["BatchNormOptions.no_gaus"] == "true"
    assert params["General.pre-model-path"] == "null"
    assert params["Training.0.freeze"] == "[]" and params["Tracking.tags"] == "{}"
    # the same key name in two sections never collides
    assert params["LossOptions.beta_push"] == "0.0" and params["Optimizer.epsilon"] == "1e-07"


def test_default_name_is_the_general_name_param(repo_root, store, client):
    """A config without General.name is named after its file, and the run records that as General.name."""
    config = load_config(repo_root / "tests" / "config" / "field_style.yaml")
    params = flatten_params(config.to_dict())
    assert params["General.name"] == "field_style"
    from gravtrain.tracking import MlflowTracker

    with MlflowTracker.start(tracking_uri=store, experiment="e", run_name=config.General.name) as tracker:
        tracker.log_params(params)
    run = client.get_run(tracker.run_id)
    assert run.data.params["General.name"] == "field_style" and run.info.run_name == "field_style"


def test_strings_that_look_like_other_things_are_quoted():
    data = {"a": "2024", "b": "true", "c": "", "d": "plain", "e": "1e-3", "f": "null", "g": '"q"'}
    params = flatten_params(data)
    assert params["d"] == "plain" and params["a"] == '"2024"'
    assert unflatten_params(params) == data


def test_long_values_are_hashed_not_truncated():
    params = flatten_params({"a": "x" * (MLFLOW_PARAM_VALUE_LIMIT + 1), "b": "short"})
    assert params["a"].startswith("sha256:") and params["a"].endswith(HASHED_MARKER)
    assert len(params["a"]) < 250 and params["b"] == "short"


def test_limit_matches_mlflow():
    validation = pytest.importorskip("mlflow.utils.validation")
    assert validation.MAX_PARAM_VAL_LENGTH == MLFLOW_PARAM_VALUE_LIMIT


names = st.from_regex(r"[A-Za-z_][A-Za-z_\-]{0,8}", fullmatch=True)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
trees = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)),
                     max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(names, trees, min_size=1, max_size=4))
def test_round_trip_of_arbitrary_trees(data):
    assert unflatten_params(flatten_params(data)) == data
