"""``gravtrain runs list``: one line per run, newest first, read through the store's mirror; ``--json``."""

from __future__ import annotations

import json

import pytest

from gravtrain.cli import main
from gravtrain.stores.run_list import RunSummary, list_runs, runs_table
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV
from tests.stores.test_mirror import add_run, client_of, snapshot


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "true")
    root = tmp_path / "mlruns"
    first = add_run(root, "physics", "first", start_time=1_760_000_000_000)
    second = add_run(root, "physics", "second", end=False, start_time=1_760_000_060_000)  # a minute later
    client_of(root).log_metric(second, "val/objective", 1.25)
    client_of(root).set_tag(second, "gravtrain.stage", "fine-tune")
    add_run(root, "other", "third", gravtrain=False)
    return root, first, second


def test_every_run_newest_first_with_its_stage_metrics_and_config_hash(store, tmp_path):
    root, first, second = store
    runs = list_runs(str(root), mirror_home=tmp_path / "mirror")
    assert [run.name for run in runs] == ["third", "second", "first"]
    by_name = {run.name: run for run in runs}
    assert by_name["second"].status == "RUNNING" and by_name["second"].end_ms is None
    assert by_name["second"].stage == "fine-tune" and by_name["first"].stage == "warm-up"
    assert by_name["first"].metrics == {"physics/efficiency": pytest.approx(0.7)}  # the latest step's value
    assert by_name["second"].metrics["val/objective"] == 1.25
    assert by_name["first"].config_sha256 == "cd" * 32 and by_name["third"].config_sha256 is None  # resolved
    assert by_name["first"].config_file_sha256 == "ab" * 32
    assert by_name["first"].experiment == "physics" and by_name["third"].experiment == "other"
    assert (tmp_path / "mirror" / "store").is_dir()  # read through the mirror


def test_the_table_has_one_line_per_run_and_only_the_metrics_some_run_has():
    runs = [RunSummary("a" * 32, "long-name", "e", "FINISHED", "stage 2", 1_700_000_000_000, 1_700_037_223_000,
                       {"physics/efficiency": 0.81234, "physics/fake_rate": 0.1}, "0123456789abcdef"),
            RunSummary("b" * 32, "", "e", "RUNNING", None, 1_700_000_000_000, None, {}, None)]
    lines = runs_table(runs, now_ms=1_700_000_060_000).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["name", "run", "status", "stage", "start", "duration", "eff", "fake", "config"]
    assert "long-name" in lines[1] and "aaaaaaaa" in lines[1] and "stage 2" in lines[1] and "10:20:23" in lines[1]
    assert "0.8123" in lines[1] and "0123456789" in lines[1] and "0123456789a" not in lines[1]
    assert lines[2].split()[:3] == ["-", "bbbbbbbb", "RUNNING"] and "0:01:00" in lines[2]
    assert runs_table([]) == "no runs in this store."


def test_a_sweeps_runs_show_their_sweep_and_trial():
    from gravtrain.stores.run_list import _sweep_of

    assert _sweep_of({"gravtrain.sweep": "capacity", "gravtrain.trial": "3"}) == "capacity #3"
    assert _sweep_of({"gravtrain.sweep": "capacity", "gravtrain.sweep_role": "parent"}) == "capacity"
    assert _sweep_of({"gravtrain.stage": "first"}) is None
    runs = [RunSummary("a" * 32, "capacity trial 3", "e", "FINISHED", "s", 1_700_000_000_000, None, {}, None,
                       sweep="capacity #3"),
            RunSummary("b" * 32, "plain", "e", "FINISHED", "s", 1_700_000_000_000, None, {}, None)]
    lines = runs_table(runs, now_ms=1_700_000_060_000).splitlines()
    assert lines[0].split()[:5] == ["name", "run", "status", "stage", "sweep"]
    assert "capacity #3" in lines[1] and lines[2].split()[4] == "-"


def test_gravtrain_runs_list_prints_the_table_or_json_and_leaves_the_store_alone(store, tmp_path, capsys):
    root, first, second = store
    before = snapshot(root)
    assert main(["runs", "list", str(root), "--mirror", str(tmp_path / "m")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("name") and len(table) == 4 and table[1].startswith("third")
    assert main(["runs", "list", str(root), "--json", "--direct"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [run["run_id"] for run in listed][1:] == [second, first]
    assert listed[2]["metrics"] == {"physics/efficiency": pytest.approx(0.7)} and listed[2]["duration_s"] >= 0
    experiment = client_of(root).get_run(first).info.experiment_id
    page = f"http://127.0.0.1:5123/#/experiments/{experiment}/runs/{first}?workflowType=machine_learning"
    assert main(["runs", "list", str(root), "--direct", "--links", "5123"]) == 0  # each run's page in the UI
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith("page in gravtrain ui") and table[3].endswith(page)
    assert main(["runs", "list", str(root), "--direct", "--json", "--links"]) == 0
    assert json.loads(capsys.readouterr().out)[2]["ui_page"] == page.replace("5123", "5000")
    assert snapshot(root) == before


def test_a_store_that_does_not_exist_is_exit_2_with_one_message(tmp_path, capsys):
    assert main(["runs", "list", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "nowhere does not exist; name the store you trained into." in error and "Traceback" not in error
