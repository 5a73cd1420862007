"""The run tracker, checked with MLflow's own client: batching, resume, metrics, artifacts, statuses."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from gravtrain.tracking import MlflowTracker, NullTracker, StoreWriteError, Tracker, TrackingError
from gravtrain.tracking.metric_writer import BackgroundMetricWriter
from gravtrain.tracking.run import ERROR_TAG
from gravtrain.tracking.run_params import MLFLOW_TAG_VALUE_LIMIT


@pytest.fixture
def start(store):
    def start(**options):
        options = {"experiment": "exp", "run_name": "run", **options}
        return MlflowTracker.start(tracking_uri=store, **options)

    return start


@pytest.fixture
def batch_calls(monkeypatch):
    """Every ``MlflowClient.log_batch`` call as (thread name, params, tags, metrics); per-key calls fail."""
    from mlflow import MlflowClient

    calls = []
    original = MlflowClient.log_batch

    def spy(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        calls.append((threading.current_thread().name, list(params), list(tags), list(metrics)))
        return original(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    def per_key(*args, **kwargs):
        raise AssertionError("one MLflow call per key")

    monkeypatch.setattr(MlflowClient, "log_batch", spy)
    for name in ("log_param", "set_tag", "log_metric"):
        monkeypatch.setattr(MlflowClient, name, per_key)
    return calls


def test_new_run_name_experiment_description(start, client):
    import mlflow

    with start(description="first try") as tracker:
        assert isinstance(tracker, Tracker)
        assert mlflow.active_run() is None  # no global fluent state
    run = client.get_run(tracker.run_id)
    assert run.info.run_name == "run" and client.get_experiment(run.info.experiment_id).name == "exp"
    assert run.data.tags["mlflow.note.content"] == "first try"
    assert tracker.artifact_uri == run.info.artifact_uri and tracker.experiment_id == run.info.experiment_id
    # MLflow's UI opens an experiment of this kind on its runs table, not as a GenAI project
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_params_and_tags_are_batched(start, client, batch_calls):
    params = {f"Section.key_{i}": str(i) for i in range(250)}
    tags = {f"tag.{i}": "x" for i in range(120)}
    with start() as tracker:
        batch_calls.clear()
        tracker.log_params(params)
        tracker.set_tags(tags)
    assert [len(p) for _, p, _, _ in batch_calls if p] == [100, 100, 50]
    assert [len(t) for _, _, t, _ in batch_calls if t] == [100, 20]
    run = client.get_run(tracker.run_id)
    assert run.data.params == params and all(run.data.tags[key] == "x" for key in tags)


def test_resume_reopens_the_same_run_and_checks_params(start, client):
    first = start()
    first.log_params({"a": "1", "b": "x"})
    first.log_metrics({"loss": 3.0}, step=9)
    first.log_metrics({"loss": 2.0}, step=10)
    first.log_metrics({"lr": 0.1}, step=1)
    first.end("KILLED")
    assert client.get_run(first.run_id).info.status == "KILLED"

    resumed = start(resume_run_id=first.run_id, run_name="ignored")
    assert resumed.run_id == first.run_id and client.get_run(first.run_id).info.status == "RUNNING"
    assert resumed.experiment_id == first.experiment_id is not None
    resumed.log_params({"a": "1", "b": "x", "c": "new"})  # the same values again: fine
    with pytest.raises(TrackingError, match=r"a: stored '1', now '2'"):
        resumed.log_params({"a": "2", "c": "new"})
    assert resumed.last_steps() == {"loss": 10, "lr": 1}
    assert resumed.metric_histories() == {"loss": ([9, 10], [3.0, 2.0]), "lr": ([1], [0.1])}
    resumed.end("FINISHED")
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"a": "1", "b": "x", "c": "new"}
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_resume_of_an_unknown_run_says_so(start):
    with pytest.raises(TrackingError, match="cannot resume run '0123abc': the store .* has no such run") as caught:
        start(resume_run_id="0123abc")
    assert isinstance(caught.value, ValueError)


def test_metrics_are_written_in_the_background_after_flush(start, client, batch_calls):
    tracker = start(metrics_buffer_size=4, metrics_flush_seconds=None)
    before = int(time.time() * 1000)
    for step in range(5):
        tracker.log_metrics({"loss": 1.0 / (step + 1), "lr": np.float32(0.5)}, step=step)
    tracker.log_metrics({"loss": math.nan}, step=5)
    tracker.flush(wait=True)
    after = int(time.time() * 1000)
    metric_calls = [(thread, metrics) for thread, _, _, metrics in batch_calls if metrics]
    assert metric_calls and all(thread != threading.current_thread().name for thread, _ in metric_calls)
    history = client.get_metric_history(tracker.run_id, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3, 4, 5]
    assert math.isnan(history[-1].value) and all(before <= m.timestamp <= after for m in history)
    assert tracker.existing_metric_steps("lr") == [0, 1, 2, 3, 4]
    assert tracker.last_step("loss") == 5 and tracker.last_step("missing") is None
    tracker.end("FINISHED")
    with pytest.raises(TrackingError, match="after the run ended"):
        tracker.log_metrics({"loss": 1.0}, step=6)


def test_end_writes_metrics_still_buffered(start, client):
    with start() as tracker:
        tracker.log_metrics({"acc": 0.9}, step=7)
    assert [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, "acc")] == [(7, 0.9)]


def test_metric_writer_sends_at_most_1000_per_batch_in_order():
    written = []
    writer = BackgroundMetricWriter(written.append, buffer_size=2500, flush_seconds=None)
    writer.add(list(range(2400)))
    assert written == []  # below the buffer size: nothing sent yet
    writer.add(list(range(2400, 2500)))
    writer.flush(wait=True)
    assert [len(batch) for batch in written] == [1000, 1000, 500]
    assert [item for batch in written for item in batch] == list(range(2500))
    writer.close()


def test_metric_writer_reports_a_failed_write_at_the_next_waiting_flush():
    def fail(batch):
        raise ConnectionError("store unreachable")

    writer = BackgroundMetricWriter(fail, buffer_size=1, flush_seconds=None)
    writer.add([1, 2])  # training is not interrupted
    with pytest.raises(StoreWriteError, match="2 metrics not written, ConnectionError: store unreachable"):
        writer.flush(wait=True)
    writer.flush(wait=True)  # reported once
    assert writer.take_unwritten() == [1, 2] and writer.take_unwritten() == []  # kept for the caller, once
    writer.close()


def test_a_full_disk_is_named_as_such():
    import errno

    from mlflow.exceptions import MlflowException

    def full(batch):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise MlflowException(str(exc)) from exc

    writer = BackgroundMetricWriter(full, buffer_size=1, flush_seconds=None)
    writer.add([1])
    with pytest.raises(StoreWriteError, match="1 metrics not written, the store's disk is full"):
        writer.flush(wait=True)
    writer.close()


def test_artifacts(start, client, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    local = tmp_path / "local"
    (local / "sub").mkdir(parents=True)
    (local / "a.txt").write_text("A")
    (local / "sub" / "b.txt").write_text("B")
    blob = bytes(range(256))

    with start() as tracker:
        tracker.log_text("héllo\n", "notes/readme.txt")
        tracker.log_bytes(blob, "config/original.yaml")
        tracker.log_file(local / "a.txt")
        tracker.log_artifacts(local, "dir")
        tracker.log_dict({"mean": np.float32(1.5), "shape": (2, 3), "values": np.arange(3)}, "stats/s.json")
        tracker.log_dict({"b": 1, "a": [1, 2]}, "stats/s.yaml")
        for line in ([0, 1], [1, 0]):
            figure = Figure()
            figure.add_subplot().plot(line)
            tracker.log_figure(figure, "plots/loss.png")
    run_id = tracker.run_id

    def paths(path=None):
        return sorted(a.path for a in client.list_artifacts(run_id, path))

    def read(path):
        target = tmp_path / "downloads" / path.replace("/", "_")
        target.mkdir(parents=True)
        return Path(client.download_artifacts(run_id, path, str(target))).read_bytes()

    assert paths() == ["a.txt", "config", "dir", "notes", "plots", "stats"]
    assert paths("dir") == ["dir/a.txt", "dir/sub"] and paths("plots") == ["plots/loss.png"]
    assert read("notes/readme.txt").decode("utf-8") == "héllo\n" and read("config/original.yaml") == blob
    assert json.loads(read("stats/s.json")) == {"mean": 1.5, "shape": [2, 3], "values": [0, 1, 2]}
    assert b"a:" in read("stats/s.yaml")
    expected = io.BytesIO()
    figure.savefig(expected, format="png")
    assert read("plots/loss.png") == expected.getvalue()  # the second figure replaced the first


@pytest.mark.parametrize("raised, status", [(None, "FINISHED"), (RuntimeError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_context_manager_sets_the_status(start, client, raised, status):
    tracker = start()
    if raised is None:
        with tracker:
            pass
    else:
        with pytest.raises(raised):
            with tracker:
                raise raised("boom")
    run = client.get_run(tracker.run_id)
    assert run.info.status == status
    assert run.data.tags.get(ERROR_TAG) == ("RuntimeError: boom" if status == "FAILED" else None)


def test_error_tag_is_truncated_to_mlflows_limit(start, client):
    with pytest.raises(ValueError):
        with start() as tracker:
            raise ValueError("x" * 20000)
    tag = client.get_run(tracker.run_id).data.tags[ERROR_TAG]
    assert len(tag) == MLFLOW_TAG_VALUE_LIMIT and tag.startswith("ValueError: xxx")


def test_end_checks_the_status_and_runs_once(start, client):
    tracker = start()
    with pytest.raises(ValueError, match="FINISHED, FAILED, KILLED"):
        tracker.end("DONE")
    tracker.end("FAILED")
    tracker.end("FINISHED")
    assert client.get_run(tracker.run_id).info.status == "FAILED"


def test_null_tracker_does_nothing():
    tracker = NullTracker()
    assert isinstance(tracker, Tracker) and tracker.run_id is None and tracker.artifact_uri is None
    with tracker:
        tracker.log_params({"a": "1"})
        tracker.set_tags({"t": "v"})
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.flush(wait=True)
        tracker.log_text("x", "x.txt")
        tracker.log_bytes(b"x", "x.bin")
        tracker.log_dict({}, "x.json")
        tracker.log_figure(object(), "x.png")
        tracker.log_file("missing")
        tracker.log_artifacts("missing")
    assert tracker.existing_metric_steps("loss") == [] and tracker.last_step("loss") is None
    assert tracker.last_steps() == {} and tracker.metric_histories() == {}
    with pytest.raises(KeyError):
        with tracker:
            raise KeyError("passes through")


def test_a_full_disk_at_the_end_says_truthfully_that_the_run_is_marked_failed(start, client, monkeypatch, caplog):
    """The store takes the status but not the last metrics nor the error tag: the log says the run is FAILED
    and why each record is missing, not that marking it failed; the metrics are kept for the caller."""
    import errno

    from mlflow.store.tracking.file_store import FileStore

    def full(store, run_id, metrics, params, tags):
        raise OSError(errno.ENOSPC, "No space left on device")

    tracker = start(metrics_flush_seconds=None)
    tracker.log_metrics({"loss": 1.0}, step=1)
    monkeypatch.setattr(FileStore, "log_batch", full)
    with pytest.raises(RuntimeError):
        with tracker:
            raise RuntimeError("boom")
    assert client.get_run(tracker.run_id).info.status == "FAILED"
    assert "could not mark" not in caplog.text
    assert f"MLflow run {tracker.run_id} is marked FAILED, but 1 metric batch(es) could not be written" in caplog.text
    assert "could not record the error as the tag gravtrain.error" in caplog.text and "disk is full" in caplog.text
    assert [(key, value, step) for key, value, _, step in tracker.unwritten_metrics()] == [("loss", 1.0, 1)]


@pytest.mark.parametrize("ending", ["FINISHED", "FAILED"])
def test_a_run_of_a_directory_store_ends_with_its_pack(start, client, store, ending):
    from gravtrain.tracking.run_pack import PACK_FILE, read_run_pack
    from gravtrain.tracking.store import local_directory

    try:
        with start() as tracker:
            tracker.log_params({"Training.0.learning_rate": "0.001"})
            tracker.log_metrics({"physics/efficiency": 0.8}, step=1)
            if ending == "FAILED":
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    run = client.get_run(tracker.run_id)
    assert run.info.status == ending
    run_dir = local_directory(store) / run.info.experiment_id / tracker.run_id
    pack = read_run_pack((run_dir / PACK_FILE).read_bytes())
    assert pack["meta.yaml"][0] == (run_dir / "meta.yaml").read_bytes()  # written after the final status
    assert pack["params/Training.0.learning_rate"][0] == b"0.001"
    assert pack["metrics/physics/efficiency"][0] == (run_dir / "metrics/physics/efficiency").read_bytes()
    assert set(pack) == {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")
                         if p.is_file() and p.name != PACK_FILE and "artifacts" not in p.parts}


def test_the_status_codes_are_mlflows_and_a_run_reports_its_status(start, store):
    from mlflow.entities import RunStatus

    from gravtrain.tracking import run_status
    from gravtrain.tracking.tracker import ENDED_STATUS_CODES, RUN_STATUSES, STATUS_CODES

    assert STATUS_CODES == {RunStatus.to_string(code): code for code in RunStatus.all_status()}
    assert set(ENDED_STATUS_CODES.values()) == set(RUN_STATUSES)
    tracker = start()
    assert run_status(store, tracker.run_id) == "RUNNING"
    tracker.end("KILLED")
    assert run_status(store, tracker.run_id) == "KILLED"
