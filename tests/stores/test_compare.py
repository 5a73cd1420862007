"""``gravtrain runs compare``: the config keys that differ between runs and their metrics with deltas to the
first run, computed on plain data, read from a real MLflow file store, and through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from gravtrain.cli import main
from gravtrain.stores.compare import RunRecord, compare_runs, read_runs, resolve_run_reference
from gravtrain.tracking.errors import TrackingError

BASE_PARAMS = {"General.name": "toy", "General.seed": "42", "Training.0.learning_rate": "0.001",
               "Training.2.epochs": "3", "Training.10.epochs": "1", "Architecture.gravnet.0.n": "8"}
BASE_METRICS = {"physics/efficiency": 0.7821, "physics/fake_rate": 0.0412, "physics/response": 0.981,
                "val/objective": 1.234, "val/loss/total": 1.25, "epoch/seconds": 132.4, "aaa/first": 1.0}
# Three runs: the reference, one with another learning rate and better metrics, one with another seed that
# lacks a param and a metric. The first two share the ID prefix "abc123".
RUN_IDS = ("abc1230000000000000000000000000a", "abc1239999999999999999999999999b", "def4560000000000000000000000000c")
RUNS = (
    RunRecord(RUN_IDS[0], "toy", BASE_PARAMS, BASE_METRICS),
    RunRecord(RUN_IDS[1], "toy-lr", {**BASE_PARAMS, "Training.0.learning_rate": "0.0003"},
              {**BASE_METRICS, "physics/efficiency": 0.8123, "val/objective": 1.184}),
    RunRecord(RUN_IDS[2], "toy-seed",
              {key: value for key, value in {**BASE_PARAMS, "General.seed": "7"}.items()
               if key != "Architecture.gravnet.0.n"},
              {key: value for key, value in BASE_METRICS.items() if key != "physics/response"}),
)


# ------------------------------------------------------------------------------------------- plain data
def test_only_the_differing_keys_are_listed_and_the_equal_ones_counted():
    comparison = compare_runs(RUNS)
    assert comparison.differing_params == {
        "Architecture.gravnet.0.n": ("8", "8", None),
        "General.seed": ("42", "42", "7"),
        "Training.0.learning_rate": ("0.001", "0.0003", "0.001"),
    }
    assert comparison.equal_param_count == 3
    table = comparison.table()
    assert "3 keys differ; 3 keys equal (--all shows them)" in table
    assert "General.name" not in table and "Training.10.epochs" not in table
    missing = next(line for line in table.splitlines() if line.startswith("Architecture.gravnet.0.n"))
    assert missing.split() == ["Architecture.gravnet.0.n", "8", "8", "-"]


def test_all_shows_every_key_in_natural_order():
    table = compare_runs(RUNS).table(all_params=True)
    keys = [line.split()[0] for line in table.splitlines() if line.startswith(("General.", "Training.", "Arch"))]
    assert keys == ["Architecture.gravnet.0.n", "General.name", "General.seed", "Training.0.learning_rate",
                    "Training.2.epochs", "Training.10.epochs"]
    assert "(--all shows them)" not in table


def test_metric_deltas_are_relative_to_the_first_run():
    comparison = compare_runs(RUNS)
    assert comparison.metric_deltas("physics/efficiency") == (None, pytest.approx(0.0302), 0.0)
    assert comparison.metric_deltas("physics/response") == (None, 0.0, None)  # the third run lacks it
    lines = {line.split()[0]: line for line in comparison.table().splitlines() if "/" in line.split(" ")[0]}
    assert lines["physics/efficiency"].split("  ")[0] == "physics/efficiency"
    assert "0.7821" in lines["physics/efficiency"] and "0.8123 (+0.0302)" in lines["physics/efficiency"]
    assert "1.184 (-0.05)" in lines["val/objective"]
    assert lines["physics/response"].rstrip().endswith("-")


def test_headline_metrics_come_first_then_the_rest_alphabetically():
    assert list(compare_runs(RUNS).metrics) == ["physics/efficiency", "physics/fake_rate", "physics/response",
                                                "val/objective", "val/loss/total", "aaa/first", "epoch/seconds"]


def test_columns_are_headed_by_run_name_and_short_id():
    heading, ids = compare_runs(RUNS).table().splitlines()[3:5]
    assert heading.split() == ["key", "toy", "toy-lr", "toy-seed"]
    assert ids.split() == ["abc12300", "abc12399", "def45600"]


def test_a_metric_the_reference_lacks_or_that_is_not_finite_has_no_delta():
    reference = RunRecord("a" * 32, "a", {}, {"loss": float("nan")})
    other = RunRecord("b" * 32, "b", {}, {"loss": 2.0, "extra": 3.0})
    comparison = compare_runs([reference, other])
    assert comparison.metric_deltas("loss") == (None, None)
    assert comparison.metric_deltas("extra") == (None, None)
    assert comparison.to_dict()["metrics"] == {"extra": [None, 3.0], "loss": [None, 2.0]}
    json.dumps(comparison.to_dict(), allow_nan=False)  # strict JSON


def test_the_dictionary_has_runs_params_and_metrics():
    data = compare_runs(RUNS).to_dict()
    assert [run["run_id"] for run in data["runs"]] == list(RUN_IDS)
    assert data["params"]["Architecture.gravnet.0.n"] == ["8", "8", None]
    assert data["params_equal"] == 3 and "General.name" not in data["params"]
    assert data["metrics"]["physics/efficiency"] == [0.7821, 0.8123, 0.7821]
    assert "General.name" in compare_runs(RUNS).to_dict(all_params=True)["params"]


def test_fewer_than_two_runs_is_refused():
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs(RUNS[:1])


# ----------------------------------------------------------------------------------------- run references
KNOWN = {run.run_id: run.name for run in RUNS}


@pytest.mark.parametrize("reference, run_id", [("abc1230", RUN_IDS[0]), ("DEF456", RUN_IDS[2]),
                                               (RUN_IDS[1], RUN_IDS[1])])
def test_a_run_is_named_by_its_id_or_a_unique_prefix(reference, run_id):
    assert resolve_run_reference(reference, KNOWN, "mlruns") == run_id


def test_an_ambiguous_prefix_names_the_candidates():
    with pytest.raises(TrackingError, match="'abc123' is ambiguous: it matches 2 runs") as error:
        resolve_run_reference("abc123", KNOWN, "mlruns")
    assert f"{RUN_IDS[0]} (toy)" in str(error.value) and f"{RUN_IDS[1]} (toy-lr)" in str(error.value)


@pytest.mark.parametrize("reference, message", [("abc12", "is not a run ID"), ("toy-lr", "is not a run ID"),
                                                ("123456", "no run of mlruns has an ID starting with '123456'")])
def test_a_short_malformed_or_unknown_reference_is_refused(reference, message):
    with pytest.raises(TrackingError, match=message):
        resolve_run_reference(reference, KNOWN, "mlruns")


# ----------------------------------------------------------------------------------------- a real store
@pytest.fixture
def runs_in_store(client, monkeypatch):
    """`RUNS` logged into the test's ``mlruns`` store with their own IDs; each metric has an older value first,
    so the comparison must take the latest."""
    experiment_id = client.create_experiment("toy")
    for run in RUNS:
        with monkeypatch.context() as patch:
            patch.setattr(uuid, "uuid4", lambda run_id=run.run_id: uuid.UUID(run_id))
            created = client.create_run(experiment_id, run_name=run.name)
        assert created.info.run_id == run.run_id, "MLflow no longer takes run IDs from uuid.uuid4"
        for key, value in run.params.items():
            client.log_param(run.run_id, key, value)
        for key, value in run.metrics.items():
            client.log_metric(run.run_id, key, value - 1.0, step=0)
            client.log_metric(run.run_id, key, value, step=1)
        client.set_terminated(run.run_id)
    return RUNS


def test_runs_are_read_from_the_store_by_prefix_in_the_order_given(runs_in_store, store):
    records = read_runs(store, ["def456", RUN_IDS[0], "ABC1239"])
    assert [record.run_id for record in records] == [RUN_IDS[2], RUN_IDS[0], RUN_IDS[1]]
    assert [record.name for record in records] == ["toy-seed", "toy", "toy-lr"]
    assert records[1].params == BASE_PARAMS and records[1].metrics == BASE_METRICS  # the latest values


def test_the_command_prints_the_table(runs_in_store, capsys):
    assert main(["runs", "compare", "abc1230", "abc1239", "def456"]) == 0  # the default store: mlruns here
    out = capsys.readouterr().out
    assert out.startswith("3 runs; metric deltas are relative to the first, toy (abc12300).")
    assert "3 keys differ; 3 keys equal" in out and "0.8123 (+0.0302)" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line}
    assert rows["Training.0.learning_rate"] == ["Training.0.learning_rate", "0.001", "0.0003", "0.001"]


def test_the_command_prints_json(runs_in_store, store, capsys):
    assert main(["runs", "compare", "--store", store, "abc1230", "abc1239", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [run["name"] for run in data["runs"]] == ["toy", "toy-lr"]
    assert data["params"] == {"Training.0.learning_rate": ["0.001", "0.0003"]} and data["params_equal"] == 5
    assert data["metrics"]["physics/efficiency"] == [0.7821, 0.8123]


@pytest.mark.parametrize("args, fragment", [
    (["abc123", "def456"], f"'abc123' is ambiguous: it matches 2 runs: {RUN_IDS[0]} (toy), {RUN_IDS[1]} (toy-lr)"),
    (["abc1230", "fff000"], "no run of mlruns has an ID starting with 'fff000'"),
    (["abc1230", "f" * 32], f"no run {'f' * 32} in mlruns"),
    (["abc1230", RUN_IDS[0]], f"'abc1230' and '{RUN_IDS[0]}' both name run {RUN_IDS[0]}"),
    (["abc1230", "def456", "--store", "elsewhere"], "elsewhere does not exist"),
])
def test_a_run_that_cannot_be_named_exits_2_with_one_message(runs_in_store, capsys, args, fragment):
    assert main(["runs", "compare", *args]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err and "Traceback" not in captured.err and captured.out == ""


def test_one_run_is_a_usage_error(clean_environment, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["runs", "compare", "abc1230"])
    assert exit_.value.code == 2 and "required: RUN_B" in capsys.readouterr().err


def test_importing_the_comparison_leaves_mlflow_unloaded():
    code = "import sys, gravtrain.stores.compare; assert 'mlflow' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

