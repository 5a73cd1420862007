"""``gravtrain runs doctor``: a store damaged in each way a crash or a full disk damages it is found, and after
``--fix`` MLflow's own search lists every undamaged run again; nothing is deleted; a live run is left alone."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gravtrain.stores.doctor import QUARANTINE_DIR, examine_store, meta_problem, repair
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV

REPO = Path(__file__).resolve().parents[2]
LATER = time.time() + 3600  # "now" for the doctor: every run of these stores is an hour old


@pytest.fixture
def store(tmp_path, monkeypatch):
    """Two experiments, four finished runs in the first and two in the second, a metric ``physics/n_truth``."""
    from mlflow import MlflowClient

    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "true")
    root = tmp_path / "mlruns"
    client = MlflowClient(tracking_uri=root.as_uri())
    runs = {}
    for experiment, count in (("first", 4), ("second", 2)):
        experiment_id = client.create_experiment(experiment)
        for index in range(count):
            run = client.create_run(experiment_id)
            client.log_param(run.info.run_id, "p", "1")
            for step in range(3):
                client.log_metric(run.info.run_id, "physics/n_truth", float(step), step=step)
            client.set_terminated(run.info.run_id)
            runs[f"{experiment}{index}"] = (experiment_id, run.info.run_id)
    return root, client, runs


def run_dir(root: Path, runs: dict, name: str) -> Path:
    experiment_id, run_id = runs[name]
    return root / experiment_id / run_id


def search_all(root: Path) -> list[str]:
    """The run IDs MLflow lists over every active experiment of the store (as the UI's list does)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=root.as_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=50_000)
    return sorted(run.info.run_id for run in runs)


def mlflow_reads(client, experiment_id: str) -> bool:
    """Whether MLflow lists the experiment and searches its runs without an error."""
    try:
        client.search_runs([experiment_id])
        return experiment_id in {e.experiment_id for e in client.search_experiments()}
    except Exception:  # whatever MLflow raises for a damaged file: a KeyError, a TypeError, a YAML error
        return False


@pytest.mark.parametrize("of_run", [True, False], ids=["run", "experiment"])
def test_a_meta_yaml_is_reported_damaged_exactly_when_mlflow_cannot_read_it(store, of_run):
    """Each key taken out, and the file cut after each line (as a write cut short leaves it): the doctor's
    verdict agrees with MLflow's own file store."""
    import yaml

    root, client, runs = store
    experiment_id, run_id = runs["first0"]
    meta = root / experiment_id / (f"{run_id}/meta.yaml" if of_run else "meta.yaml")
    written = meta.read_text()
    info = yaml.safe_load(written)
    lines = written.splitlines(keepends=True)
    variants = [yaml.safe_dump({k: v for k, v in info.items() if k != key}) for key in info]
    variants += ["".join(lines[:n]) for n in range(len(lines) + 1)]
    for text in variants:
        meta.write_text(text)
        assert (meta_problem(text.encode(), of_run=of_run) is None) == mlflow_reads(client, experiment_id), text


def damage_every_way(root: Path, runs: dict) -> None:
    (run_dir(root, runs, "first0") / "meta.yaml").write_text("")  # empty run info
    (run_dir(root, runs, "first1") / "meta.yaml").write_text("artifact_uri: file:///x\nend_ti")  # cut
    (run_dir(root, runs, "first2") / "metrics" / "physics" / "n_truth").write_text("")  # full disk
    with open(run_dir(root, runs, "second0") / "metrics" / "physics" / "n_truth", "a") as metric:
        metric.write("1796199999999 3.")  # a line cut mid-write: MLflow would read it as step 0
    (root / runs["second1"][0] / "meta.yaml").write_text("")  # the second experiment's info


def test_each_damage_breaks_mlflow_until_the_doctor_fixes_it(store, caplog):
    root, client, runs = store
    damage_every_way(root, runs)
    with pytest.raises(Exception):
        search_all(root)

    report = examine_store(root, now=LATER)
    assert report.runs_examined == 6 and report.live == []
    found = {(damage.run, damage.path.name, damage.problem.split(" (")[0]) for damage in report.damages}
    assert found == {
        (runs["first0"][1], "meta.yaml", "meta.yaml is empty"),
        (runs["first1"][1], "meta.yaml", "meta.yaml is not valid YAML"),
        (runs["first2"][1], "n_truth", "metric file is empty"),
        (runs["second0"][1], "n_truth", "metric 'physics/n_truth': line(s) 4 cut mid-write"),
        (None, "meta.yaml", "meta.yaml is empty"),
    }

    repair(report, stamp="fixed")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        listed = search_all(root)
    assert "Malformed" not in caplog.text  # the quarantine is not taken for an experiment
    kept = [runs[name][1] for name in ("first2", "first3", "second0", "second1")]
    assert listed == sorted(kept)  # every run but the two whose info was lost
    history = client.get_metric_history(runs["second0"][1], "physics/n_truth")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert f"recovered-{runs['second1'][0]}" in [e.name for e in client.search_experiments()]

    quarantine = root / QUARANTINE_DIR / "fixed"
    for name in ("first0", "first1"):  # whole runs, with their params and metrics
        assert (quarantine / runs[name][0] / runs[name][1] / "params" / "p").read_text() == "1"
    assert (quarantine / runs["second0"][0] / runs["second0"][1] / "metrics/physics/n_truth").read_text().endswith(
        "3.")
    assert (quarantine / runs["second1"][0] / "meta.yaml").is_file()
    assert examine_store(root, now=LATER).damages == []


def test_a_run_being_written_is_left_alone(store):
    root, client, runs = store
    live = run_dir(root, runs, "first3")
    client.update_run(runs["first3"][1], status="RUNNING")
    (live / "metrics" / "physics" / "n_truth").write_text("")
    report = examine_store(root)  # now: its files changed a moment ago
    assert report.damages == [] and report.live == [f"{runs['first3'][0]}/{runs['first3'][1]}"]
    repair(report)
    assert (live / "metrics" / "physics" / "n_truth").exists() and not (root / QUARANTINE_DIR).exists()
    assert len(examine_store(root, now=LATER).damages) == 1  # an hour later it is not being written


def doctor(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gravtrain", "runs", "doctor", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_command_reports_then_fixes(store):
    root, _, runs = store
    (run_dir(root, runs, "first2") / "metrics" / "physics" / "n_truth").write_text("")
    report = doctor(str(root), cwd=root.parent)
    assert report.returncode == 1 and "1 damaged file(s)" in report.stdout
    assert "runs doctor" in report.stderr and "--fix" in report.stderr and "Traceback" not in report.stderr
    fixed = doctor(str(root), "--fix", cwd=root.parent)
    assert fixed.returncode == 0 and "Moved aside into" in fixed.stdout and "nothing deleted" in fixed.stdout
    assert doctor("mlruns", cwd=root.parent).returncode == 0  # the default store: mlruns here
    missing = doctor(str(root / "absent"), cwd=root.parent)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_resuming_a_run_whose_info_was_lost_is_one_message(store):
    from gravtrain.training.run import ResumeError, _repair_resumed_run

    root, _, runs = store
    (run_dir(root, runs, "first0") / "meta.yaml").write_text("")
    with pytest.raises(ResumeError, match="cannot be resumed: its .*meta.yaml is empty.*runs doctor .* --fix"):
        _repair_resumed_run(root.as_uri(), runs["first0"][1])
    assert (run_dir(root, runs, "first0") / "meta.yaml").exists()  # reported, not moved


def test_a_run_directory_just_created_is_not_taken_for_damage(store):
    root, _, runs = store
    newborn = root / runs["first0"][0] / "0123456789abcdef"
    newborn.mkdir()  # MLflow creates the directory, then writes its meta.yaml
    report = examine_store(root)
    assert report.damages == [] and report.live == [f"{runs['first0'][0]}/0123456789abcdef"]
    assert [damage.problem for damage in examine_store(root, now=LATER).damages] == ["meta.yaml is missing"]


def test_the_quick_check_finds_what_breaks_search_without_reading_metric_lines(store):
    root, _, runs = store
    damage_every_way(root, runs)
    quick = examine_store(root, now=LATER, read_metrics=False)
    full = examine_store(root, now=LATER)
    assert {d.path for d in quick.damages} == {d.path for d in full.damages} - {
        run_dir(root, runs, "second0") / "metrics" / "physics" / "n_truth"}  # the cut line: not search-breaking


def test_a_repaired_run_loses_its_pack_to_the_quarantine(store):
    """The pack summarises the run as it ended; once the doctor changed the run's files it no longer does."""
    from gravtrain.tracking.run_pack import PACK_FILE, write_run_pack

    root, _, runs = store
    for name in ("first2", "first3"):
        write_run_pack(run_dir(root, runs, name))
    metric = run_dir(root, runs, "first2") / "metrics" / "physics" / "n_truth"
    with open(metric, "a") as handle:
        handle.write("1796199999999 3.")  # a line cut mid-write
    report = repair(examine_store(root, now=LATER), stamp="s")
    assert not (run_dir(root, runs, "first2") / PACK_FILE).exists()
    assert (report.quarantine / runs["first2"][0] / runs["first2"][1] / PACK_FILE).is_file()  # moved, not deleted
    assert (run_dir(root, runs, "first3") / PACK_FILE).is_file()  # an undamaged run keeps its own
