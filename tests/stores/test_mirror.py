"""The local mirror of a directory store (`gravtrain.stores.mirror`): what MLflow reads from it equals what it
reads from the source, artifacts are found at any path the store is read at, refreshes are incremental, and the
source is never written."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from gravtrain.stores.mirror import (SHARED_VIEW_TAG_PREFIX, VIEW_SHARE_KEY, MirrorError, StoreMirror,
                                      mirrored_store_uri, runs_table_view)
from gravtrain.tracking.run import EXPERIMENT_KIND_TAGS
from gravtrain.tracking.run_pack import PACK_FILE, write_run_pack
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV

KIND, CUSTOM = next(iter(EXPERIMENT_KIND_TAGS.items()))


@pytest.fixture(autouse=True)
def allow_file_store(monkeypatch):
    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "true")


def client_of(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=root.as_uri())


def add_run(root: Path, experiment: str, name: str, *, gravtrain: bool = True, end: bool = True,
            artifacts: dict[str, str] | None = None, scratch: Path | None = None, pack: bool = False,
            start_time: int | None = None) -> str:
    """A run like gravtrain's: params, metrics over steps (one with a '/' in its key), tags, artifacts; with
    ``pack``, ended with its pack as gravtrain's tracker ends it. ``start_time`` (ms): when it says it started
    (MLflow's default: now)."""
    from mlflow.entities import Metric, Param

    client = client_of(root)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    tags = {"gravtrain.stage": "warm-up", "gravtrain.config_sha256": "ab" * 32,
            "gravtrain.resolved_config_sha256": "cd" * 32} if gravtrain else {"other": "x"}
    run_id = client.create_run(experiment_id, start_time=start_time, run_name=name, tags=tags).info.run_id
    client.log_batch(run_id, params=[Param(f"Training.0.key_{i}", str(i)) for i in range(5)],
                     metrics=[Metric(key, 0.5 + step / 10, 1000 + step, step)
                              for key in ("physics/efficiency", "train/loss") for step in range(3)])
    for relative, text in (artifacts or {"model/model.keras": "weights", "evaluation/roc.png": "png",
                                         "config.yaml": "General: {}"}).items():
        local = (scratch or root.parent) / "scratch" / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(f"{text} of {name}")
        parent = str(Path(relative).parent)
        client.log_artifact(run_id, str(local), None if parent == "." else parent)
    if end:
        client.set_terminated(run_id)
        if pack:
            write_run_pack(root / experiment_id / run_id)
    return run_id


def age(root: Path, seconds: float = 60.0) -> None:
    """Date every file and folder below ``root`` ``seconds`` back, as a store written earlier is: a change made
    now then has a newer modification time whatever the file system's clock tick, with no sleep past it."""
    then = time.time_ns() - int(seconds * 1e9)
    for path in [root, *root.rglob("*")]:
        os.utime(path, ns=(then, then))


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``root`` with its bytes and modification time."""
    return {path.relative_to(root).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(root.rglob("*")) if path.is_file()}


def every_artifact(client, run_id: str, path: str | None = None) -> list[str]:
    files = []
    for item in client.list_artifacts(run_id, path):
        files += every_artifact(client, run_id, item.path) if item.is_dir else [item.path]
    return files


@pytest.fixture
def cluster_store(tmp_path) -> tuple[Path, list[str]]:
    """A store written at one path (the cluster's), then moved to another (where a laptop mounts it)."""
    written = tmp_path / "cluster" / "mlruns"
    runs = [add_run(written, "physics", f"run-{i}") for i in range(2)]
    mounted = tmp_path / "laptop" / "mnt" / "mlruns"
    mounted.parent.mkdir(parents=True)
    shutil.move(str(written), str(mounted))
    return mounted, runs


def test_mlflow_reads_the_same_runs_from_the_mirror_as_from_the_source(cluster_store, tmp_path):
    source, runs = cluster_store
    mirror = StoreMirror(source, tmp_path / "home")
    report = mirror.refresh()
    assert (report.runs, report.runs_added, report.experiments) == (2, 2, 2)  # the Default experiment too

    direct, mirrored = client_of(source), client_of(mirror.store)
    for run_id in runs:
        a, b = direct.get_run(run_id), mirrored.get_run(run_id)
        assert (a.data.params, a.data.metrics, a.info.status, a.info.run_name) == \
               (b.data.params, b.data.metrics, b.info.status, b.info.run_name)
        assert a.data.tags == b.data.tags
        assert [(m.step, m.value) for m in direct.get_metric_history(run_id, "physics/efficiency")] == \
               [(m.step, m.value) for m in mirrored.get_metric_history(run_id, "physics/efficiency")]
    assert {r.info.run_id for r in mirrored.search_runs([direct.get_experiment_by_name("physics").experiment_id])} \
        == set(runs)


def test_a_moved_store_serves_every_artifact_from_where_it_is_read(cluster_store, tmp_path):
    source, runs = cluster_store
    direct = client_of(source)
    assert "/cluster/mlruns/" in direct.get_run(runs[0]).info.artifact_uri  # where it was written
    assert every_artifact(direct, runs[0]) == []  # the plain store looks where it was written: nothing there

    mirror = StoreMirror(source, tmp_path / "home")
    report = mirror.refresh()
    assert report.relocated_from == str(tmp_path / "cluster" / "mlruns")
    mirrored = client_of(mirror.store)
    experiment = mirrored.get_experiment_by_name("physics")
    assert experiment.artifact_location == (source / experiment.experiment_id).as_uri()
    for run_id in runs:
        run = mirrored.get_run(run_id)
        assert run.info.artifact_uri == (source / experiment.experiment_id / run_id / "artifacts").as_uri()
        assert sorted(every_artifact(mirrored, run_id)) == ["config.yaml", "evaluation/roc.png", "model/model.keras"]
        name = run.info.run_name
        downloaded = Path(mirrored.download_artifacts(run_id, "model/model.keras", str(tmp_path / run_id)))
        assert downloaded.read_text() == f"weights of {name}"
    assert list(mirror.store.rglob("artifacts/*")) == []  # artifacts are read where they are, not copied


def test_the_source_store_is_never_written(cluster_store, tmp_path):
    source, _ = cluster_store
    before = snapshot(source)
    mirror = StoreMirror(source, tmp_path / "home")
    mirror.refresh()
    mirror.refresh(deep=True)
    list_uri = mirrored_store_uri(str(source), mirror_home=tmp_path / "home")
    assert list_uri == mirror.store.as_uri()
    assert snapshot(source) == before


def test_refreshes_read_only_what_changed(cluster_store, tmp_path):
    source, runs = cluster_store
    home = tmp_path / "home"
    first = StoreMirror(source, home).refresh()
    assert first.files_read >= 2 * (1 + 5 + 2 + 3)  # per run: meta.yaml, params, metrics, tags
    again = StoreMirror(source, home).refresh()  # a new process: the state is on disk
    assert (again.files_read, again.runs, again.changed) == (0, 2, False)

    added = add_run(source, "physics", "late", scratch=tmp_path)
    mirror = StoreMirror(source, home)
    report = mirror.refresh()
    assert (report.runs_added, report.runs_updated, report.runs) == (1, 0, 3)
    assert report.files_read < first.files_read
    assert client_of(mirror.store).get_run(added).info.run_name == "late"


def test_a_running_run_is_followed_and_an_ended_one_re_read_when_its_tags_or_status_change(cluster_store, tmp_path):
    source, runs = cluster_store
    client = client_of(source)
    live = add_run(source, "physics", "live", end=False, scratch=tmp_path)
    age(source)
    mirror = StoreMirror(source, tmp_path / "home")
    mirror.refresh()
    mirrored = client_of(mirror.store)
    assert mirrored.get_run(live).info.status == "RUNNING"

    client.log_metric(live, "physics/efficiency", 0.9, step=7)
    client.set_tag(runs[0], "note", "looked at")  # a new tag on an ended run
    report = mirror.refresh()
    assert report.runs_updated == 2
    assert mirrored.get_run(live).data.metrics["physics/efficiency"] == 0.9
    assert mirrored.get_run(runs[0]).data.tags["note"] == "looked at"

    client.set_terminated(live, "FAILED")
    mirror.refresh()
    assert mirrored.get_run(live).info.status == "FAILED"

    tag = next(source.glob(f"*/{runs[0]}/tags/note"))  # overwritten in place: the folder does not change
    mtime = tag.parent.stat().st_mtime_ns
    tag.write_text("looked at twice")
    os.utime(tag.parent, ns=(mtime, mtime))
    assert mirror.refresh().changed is False  # the quick check does not see it ...
    assert mirror.refresh(deep=True).runs_updated == 1  # ... the deep one does
    assert mirrored.get_run(runs[0]).data.tags["note"] == "looked at twice"


def test_runs_and_experiments_gone_from_the_source_leave_the_mirror(cluster_store, tmp_path):
    source, runs = cluster_store
    mirror = StoreMirror(source, tmp_path / "home")
    mirror.refresh()
    shutil.rmtree(next(source.glob(f"*/{runs[0]}")))
    report = mirror.refresh()
    assert (report.runs_removed, report.runs) == (1, 1)
    assert not list(mirror.store.glob(f"*/{runs[0]}"))
    experiment = next(source.glob(f"*/{runs[1]}")).parent.name
    shutil.rmtree(source / experiment)
    mirror.refresh()
    assert not (mirror.store / experiment).exists()


def test_a_run_without_its_meta_yaml_yet_waits_for_the_next_refresh(cluster_store, tmp_path):
    source, _ = cluster_store
    experiment = next(source.glob("*/*/meta.yaml")).parent.parent
    half = experiment / ("f" * 32)
    (half / "params").mkdir(parents=True)
    (half / "params" / "a").write_text("1")
    mirror = StoreMirror(source, tmp_path / "home")
    assert mirror.refresh().runs == 2
    assert not (mirror.store / experiment.name / half.name).exists()


def test_a_file_caught_mid_write_is_not_mirrored_until_it_is_whole(cluster_store, tmp_path):
    """MLflow rewrites a ``meta.yaml`` in place and appends a metric's lines; one file read half-written would
    fail the whole experiment's search on the mirror. A new run waits for the next refresh, a known run keeps
    its last whole copy; a damaged file older than the doctor's grace is mirrored as it is, for the doctor."""
    from gravtrain.stores.doctor import META_WRITE_SECONDS

    source, runs = cluster_store
    live = add_run(source, "physics", "live", end=False, scratch=tmp_path)  # its files are read at each refresh
    runs = [*runs, live]
    mirror = StoreMirror(source, tmp_path / "home")
    mirror.refresh()
    mirrored = client_of(mirror.store)
    experiment = mirrored.get_run(runs[0]).info.experiment_id
    new = add_run(source, "physics", "new", scratch=tmp_path)
    metas = {run: source / experiment / run / "meta.yaml" for run in (runs[0], new)}
    whole = {run: meta.read_text() for run, meta in metas.items()}
    metric = source / experiment / live / "metrics" / "train" / "loss"
    fresh = source / experiment / live / "metrics" / "fresh"
    metric.write_text(metric.read_text() + "1000 0.1")  # a line being appended
    fresh.write_text("")  # a metric's first line being written
    for path in [*metas.values(), metric, fresh]:  # caught mid-write, changed "now" whatever the clock says
        if path.name == "meta.yaml":
            path.write_text(path.read_text()[:40])
        os.utime(path, ns=(time.time_ns() + 3600 * 10**9,) * 2)

    assert mirror.refresh().runs_added == 0
    assert {r.info.run_id for r in mirrored.search_runs([experiment])} == set(runs)  # and no error
    assert mirrored.get_run(runs[0]).info.status == "FINISHED"
    assert [m.value for m in mirrored.get_metric_history(live, "train/loss")] == [0.5, 0.6, 0.7]
    assert "fresh" not in mirrored.get_run(live).data.metrics

    for run, meta in metas.items():  # the writes end
        meta.write_text(whole[run] + "\n")
    metric.write_text(metric.read_text() + " 3\n")
    fresh.write_text("1000 0.25 0\n")
    assert mirror.refresh().runs_added == 1
    assert {r.info.run_id for r in mirrored.search_runs([experiment])} == {*runs, new}
    assert [m.value for m in mirrored.get_metric_history(live, "train/loss")] == [0.5, 0.6, 0.7, 0.1]
    assert mirrored.get_run(live).data.metrics["fresh"] == 0.25

    metas[new].write_text("")  # damaged long ago: mirrored, so that the doctor's warning names it
    then = time.time_ns() - int(2 * META_WRITE_SECONDS * 1e9)
    os.utime(metas[new], ns=(then, then))
    mirror.refresh()
    assert (mirror.store / experiment / new / "meta.yaml").read_text() == ""


def test_gravtrain_experiments_open_on_the_runs_table_in_the_mirror_only(tmp_path):
    source = tmp_path / "mlruns"
    add_run(source, "old gravtrain", "a")  # made by the client, so without the kind tag, as older gravtrain did
    add_run(source, "not gravtrain", "b", gravtrain=False)
    client = client_of(source)
    genai = client.create_experiment("their own kind", tags={KIND: "genai_development"})
    client.create_run(genai, tags={"gravtrain.stage": "s"})
    before = snapshot(source)

    mirror = StoreMirror(source, tmp_path / "home")
    mirror.refresh()
    mirrored = client_of(mirror.store)
    assert mirrored.get_experiment_by_name("old gravtrain").tags.get(KIND) == CUSTOM
    assert KIND not in mirrored.get_experiment_by_name("not gravtrain").tags
    assert mirrored.get_experiment_by_name("their own kind").tags[KIND] == "genai_development"
    view = json.loads(mirrored.get_experiment_by_name("old gravtrain").tags[f"{SHARED_VIEW_TAG_PREFIX}{VIEW_SHARE_KEY}"])
    assert view["selectedColumns"][:2] == ["tags.`gravtrain.stage`", "metrics.`physics/efficiency`"]
    assert f"{SHARED_VIEW_TAG_PREFIX}{VIEW_SHARE_KEY}" not in mirrored.get_experiment_by_name("not gravtrain").tags
    assert mirror.newest_gravtrain_experiment() == genai  # its run was written last
    assert KIND not in client.get_experiment_by_name("old gravtrain").tags
    mirror.refresh(deep=True)
    assert mirrored.get_experiment_by_name("old gravtrain").tags.get(KIND) == CUSTOM
    assert snapshot(source) == before


def test_a_store_that_cannot_be_read_is_one_clear_error(tmp_path):
    with pytest.raises(MirrorError, match="cannot read the store .*is it mounted"):
        StoreMirror(tmp_path / "not-mounted", tmp_path / "home").refresh()


def test_a_damaged_state_file_rebuilds_the_mirror(cluster_store, tmp_path):
    source, runs = cluster_store
    home = tmp_path / "home"
    StoreMirror(source, home).refresh()
    (home / "state.json").write_text("{not json")
    report = StoreMirror(source, home).refresh()
    assert (report.runs_added, report.runs) == (2, 2)
    assert client_of(home / "store").get_run(runs[0]).info.run_name == "run-0"


def test_the_runs_table_view_shows_the_stage_and_the_headline_metrics_newest_first():
    view = json.loads(runs_table_view(["physics/efficiency", "val/objective"]))
    assert view == {"selectedColumns": ["tags.`gravtrain.stage`", "metrics.`physics/efficiency`",
                                        "metrics.`val/objective`", "attributes.`Source`"],
                    "orderByKey": "attributes.start_time", "orderByAsc": False}


def test_the_chart_view_opens_on_the_physics_with_a_chart_of_each_headline_metric_first():
    sections = ["data", "epoch", "loss", "Model metrics", "physics", "val", "val/loss", "zeta", "System metrics"]
    view = json.loads(runs_table_view(["physics/efficiency", "val/objective"], sections))
    names = [section["name"] for section in view["compareRunSections"]]
    # physics first, what training minimises next, the data bookkeeping last; a section gravtrain does not know
    # after those it knows, MLflow's system metrics at the very end; kept so by the UI (not sorted again)
    assert names == ["physics", "val", "val/loss", "Model metrics", "loss", "epoch", "data", "zeta",
                     "System metrics"]
    assert view["isAccordionReordered"] is True
    section_of = {section["uuid"]: section["name"] for section in view["compareRunSections"]}
    assert [(chart["metricKey"], chart["type"], section_of[chart["metricSectionId"]])
            for chart in view["compareRunCharts"]] == [("physics/efficiency", "LINE", "physics"),
                                                        ("val/objective", "LINE", "val")]
    assert view["selectedColumns"] == json.loads(runs_table_view(["physics/efficiency", "val/objective"]))[
        "selectedColumns"]


def test_two_processes_refreshing_one_mirror_keep_each_other_current(cluster_store, tmp_path):
    source, runs = cluster_store
    home = tmp_path / "home"
    ui, listing = StoreMirror(source, home), StoreMirror(source, home)  # gravtrain ui and gravtrain runs list
    ui.refresh()
    add_run(source, "physics", "late", scratch=tmp_path)
    assert listing.refresh().runs_added == 1
    again = ui.refresh()  # reads the state the other one saved: nothing to do
    assert (again.runs_added, again.files_read, again.runs) == (0, 0, 3)


def test_ended_runs_with_a_current_pack_are_read_in_two_files_each(tmp_path):
    source = tmp_path / "mlruns"
    runs = [add_run(source, "physics", f"run-{i}", pack=True) for i in range(3)]
    mirror = StoreMirror(source, tmp_path / "home")
    report = mirror.refresh()
    assert report.runs_added == 3
    assert report.files_read == 3 * 2 + 2  # meta.yaml and pack per run, the two experiments' meta.yaml
    direct, mirrored = client_of(source), client_of(mirror.store)
    for run_id in runs:
        a, b = direct.get_run(run_id), mirrored.get_run(run_id)
        assert (a.data.params, a.data.metrics, a.data.tags, a.info) == (b.data.params, b.data.metrics, b.data.tags,
                                                                         b.info)
    assert not list(mirror.store.rglob(PACK_FILE))  # MLflow's files, not the pack
    assert mirror.refresh(deep=True).files_read == 0  # the packed signatures are the files' own


def test_a_pack_that_no_longer_matches_its_run_is_not_used(tmp_path):
    source = tmp_path / "mlruns"
    tagged, resumed = (add_run(source, "physics", name, pack=True) for name in ("tagged", "resumed"))
    client = client_of(source)
    client.set_tag(tagged, "note", "set after the run ended")  # a tag file the pack does not have
    client.update_run(resumed, status="RUNNING")  # resumed: meta.yaml differs from the pack's
    client.log_metric(resumed, "physics/efficiency", 0.99, step=9)
    mirror = StoreMirror(source, tmp_path / "home")
    report = mirror.refresh()
    assert report.files_read > 2 * 2 + 2  # read file by file
    mirrored = client_of(mirror.store)
    assert mirrored.get_run(tagged).data.tags["note"] == "set after the run ended"
    assert mirrored.get_run(resumed).data.metrics["physics/efficiency"] == 0.99
    assert mirrored.get_run(resumed).info.status == "RUNNING"


def test_a_mirror_that_cannot_be_written_is_one_clear_error(cluster_store, tmp_path):
    source, _ = cluster_store
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with pytest.raises(MirrorError, match="cannot write the local mirror in .*--mirror.*--direct"):
        StoreMirror(source, blocked / "home").refresh()
    with pytest.raises(MirrorError, match="cannot write the local mirror"):
        StoreMirror(source, blocked / "home").prepare()


def test_the_background_refresher_waits_longer_after_a_slow_refresh():
    """The pause after a refresh is the interval, or BUSY_FACTOR times the refresh if longer (a clock of the test's)."""
    from gravtrain.stores.mirror import BUSY_FACTOR, MirrorRefresher, RefreshReport

    now = [100.0]

    class TimedMirror:
        source = "slow"
        takes = 0.2

        def refresh(self, deep=False):
            now[0] += self.takes
            return RefreshReport(self.takes, 1, 1, 0, 0, 0, 0, 1, None)

    mirror = TimedMirror()
    refresher = MirrorRefresher(mirror, interval=0.01, clock=lambda: now[0])
    refresher.refresh_once()
    assert refresher.pause == pytest.approx(0.2 * BUSY_FACTOR)
    mirror.takes = 0.001
    refresher.refresh_once()
    assert refresher.pause == 0.01 and refresher.refreshes == 2


def test_the_background_refresher_refreshes_until_stopped():
    from gravtrain.stores.mirror import MirrorRefresher, RefreshReport

    refreshed = threading.Event()

    class CountingMirror:
        source = "counting"

        def refresh(self, deep=False):
            refreshed.set()
            return RefreshReport(0.0, 1, 1, 0, 0, 0, 0, 1, None)

    refresher = MirrorRefresher(CountingMirror(), interval=0.01)
    refresher.start()
    assert refreshed.wait(timeout=30)
    refresher.stop(timeout=30)
    assert not refresher.is_alive() and refresher.refreshes >= 1


def test_a_refresh_that_finds_nothing_new_does_not_rewrite_the_state(cluster_store, tmp_path, monkeypatch):
    source, _ = cluster_store
    mirror = StoreMirror(source, tmp_path / "home")
    mirror.refresh()
    saves, save = [], StoreMirror._save_state
    monkeypatch.setattr(StoreMirror, "_save_state", lambda self: (saves.append(self), save(self))[1])
    assert mirror.refresh().changed is False
    assert saves == []
    add_run(source, "physics", "late", scratch=tmp_path)
    mirror.refresh()
    assert saves == [mirror]
    assert StoreMirror(source, tmp_path / "home").refresh().files_read == 0  # what it saved is complete
