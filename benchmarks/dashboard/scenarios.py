"""Scenarios: plain mlflow server and gravtrain ui on the mount, timed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import free_port
from dashboard.cluster_store import ClusterStore
from dashboard.processes import load_average, log, sshfs_process, stop_process
from dashboard.rest import Server, check_artifacts
from dashboard.rig import Bench
from dashboard.settings import EXPERIMENT_KIND, LISTING_CACHE_WAIT, NEW_RUN_TIMEOUT, REPO, UI_TIMEOUT


def plain_server(bench: Bench, store: ClusterStore, mountpoint: Path, args) -> dict:
    port = free_port()
    environment = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", mountpoint.as_uri(),
               "--host", "127.0.0.1", "--port", str(port)]
    expected = store.run_ids()
    result = {"command": " ".join(command), "runs": len(expected), "load_average_at_start": load_average()}
    server = Server(port)
    started = time.monotonic()
    process, log_path = bench.launch("plain-mlflow-server", command, environment)
    result["log"] = str(log_path)
    deadline = started + args.plain_timeout
    while not server.answers():
        if process.poll() is not None:
            result["error"] = f"the server exited with {process.returncode}"
            return result
        if time.monotonic() > deadline:
            result["error"] = "the server did not answer /health"
            return result
        time.sleep(0.25)
    result["answering_seconds"] = time.monotonic() - started
    log(f"plain mlflow server answers after {result['answering_seconds']:.1f} s; runs/search of "
        f"{len(expected)} runs ...")
    try:
        ids, seconds, _ = server.search_runs(store.experiment_id, timeout=max(deadline - time.monotonic(), 1))
        result["first_full_view_seconds"] = time.monotonic() - started
        result["first_search_seconds"] = seconds
        result["first_search_runs"] = len(ids)
        result["first_view_complete"] = set(expected) <= set(ids)
    except (OSError, ValueError) as exc:
        result.update(first_view_timed_out=True, first_view_error=repr(exc),
                      first_view_gave_up_after_seconds=time.monotonic() - started)
        log(f"plain runs/search failed or timed out after {time.monotonic() - started:.0f} s: {exc!r}")
        stop_process(process)
        return result
    log(f"first full view in {result['first_full_view_seconds']:.1f} s")
    if args.plain_full:
        plain_list_and_new_run(server, store, result, args)
    log(f"artifacts of {args.plain_artifact_runs} run(s) ...")
    result["artifacts"] = check_artifacts(server, store, expected[:args.plain_artifact_runs])
    result["artifacts"]["recorded_artifact_root_example"] = store.recorded_artifact_root(expected[0])
    result["exit_code"] = stop_process(process)
    return result


def plain_list_and_new_run(server: Server, store: ClusterStore, result: dict, args) -> None:
    """``--plain-full``: one more ``runs/search``, then a new run on the cluster side and one ``runs/search``
    started `LISTING_CACHE_WAIT` seconds after it was written (the run is removed again afterwards)."""
    try:
        ids, seconds, _ = server.search_runs(store.experiment_id, timeout=args.plain_timeout)
        result["list_warm_seconds"] = seconds
    except (OSError, ValueError) as exc:
        result.update(list_warm_timed_out=True, list_warm_error=repr(exc))
    log(f"list (warm) {result.get('list_warm_seconds', float('nan')):.1f} s; a new run on the cluster ...")
    created = {}
    with store.writing() as client:
        new_run = store.write_run(client, on_created=lambda run_id: created.setdefault("at", time.monotonic()))
    time.sleep(max(created["at"] + LISTING_CACHE_WAIT - time.monotonic(), 0))
    try:
        ids, seconds, _ = server.search_runs(store.experiment_id, timeout=args.plain_timeout)
        result.update(new_run_search_seconds=seconds, new_run_shown=new_run in ids,
                      new_run_seconds=time.monotonic() - created["at"])
    except (OSError, ValueError) as exc:
        result.update(new_run_timed_out=True, new_run_error=repr(exc))
    store.remove_run(new_run)  # the next scenarios see the same runs as this one did
    log(f"new run shown after {result.get('new_run_seconds', float('nan')):.1f} s (one runs/search started "
        f"{LISTING_CACHE_WAIT} s after it was written)")


class UiRun:
    """One ``gravtrain ui`` process, with its log lines stamped with the seconds since launch as they appear."""

    def __init__(self, bench: Bench, name: str, mountpoint: Path, mirror: Path, refresh: float = 1.0):
        self.port = free_port()
        self.command = [sys.executable, "-m", "gravtrain", "ui", str(mountpoint), "--port", str(self.port),
                        "--mirror", str(mirror), "--refresh", f"{refresh:g}"]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO / "modules")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
        environment.pop("MLFLOW_ALLOW_FILE_STORE", None)  # gravtrain ui sets it for its server itself
        self.server = Server(self.port)
        self.started = time.monotonic()
        self.process, self.log_path = bench.launch(name, self.command, environment)
        self.lines: list[tuple[float, str]] = []
        self._offset = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def poll_log(self) -> None:
        with open(self.log_path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        now = self.elapsed()
        self.lines += [(now, line) for line in complete.decode(errors="replace").splitlines()]

    def line_with(self, pattern: str) -> tuple[float, re.Match] | None:
        for seconds, line in self.lines:
            match = re.search(pattern, line)
            if match:
                return seconds, match
        return None

    def first_full_view(self, expected: list[str]) -> dict:
        """Seconds until the browse line is logged and runs/search returns the runs the UI opens on: all of
        them up to 100 (one page), else the first page full, and then (``all_runs_seconds``) every page."""
        answering = browse = None
        page = min(len(expected), 100)
        while self.elapsed() < UI_TIMEOUT:
            if self.process.poll() is not None:
                self.poll_log()
                return {"error": f"gravtrain ui exited with {self.process.returncode}",
                        "log_tail": [line for _, line in self.lines[-15:]]}
            self.poll_log()
            if answering is None and self.server.answers():
                answering = self.elapsed()
            if browse is None and self.line_with(r"browse http"):
                browse = self.elapsed()
            if browse is not None:
                with contextlib.suppress(OSError, ValueError):
                    ids, _, pages = self.server.search_runs(self.experiment_id, first_page_only=True)
                    if len(set(ids) & set(expected)) >= page:
                        result = {"first_full_view_seconds": self.elapsed(), "server_answering_seconds": answering,
                                  "browse_line_seconds": browse}
                        if len(expected) > page:
                            ids, _, pages = self.server.search_runs(self.experiment_id)
                            result.update(all_runs_seconds=self.elapsed(), all_runs_shown=set(expected) <= set(ids),
                                          pages=pages)
                        self.poll_log()
                        return {**result, **self.log_figures()}
            time.sleep(0.1)
        return {"error": f"no full view within {UI_TIMEOUT:.0f} s", "server_answering_seconds": answering,
                "browse_line_seconds": browse}

    def log_figures(self) -> dict:
        figures = {}
        mirrored = self.line_with(r"mirrored (.*) in ([\d.]+) s")
        if mirrored:
            figures.update(mirror_seconds=float(mirrored[1].group(2)), mirror_line_seconds=mirrored[0],
                           mirror_report=mirrored[1].group(1))
        ready = self.line_with(r"ready in ([\d.]+) s")
        if ready:
            figures["ready_seconds_logged"] = float(ready[1].group(1))
        return figures

    def list_times(self, repeats: int = 5) -> dict:
        """runs/search, median of ``repeats``: the first page (what the UI shows on opening; the target) and,
        where there is more than one page, every page."""
        first = [self.server.search_runs(self.experiment_id, first_page_only=True)[1] for _ in range(repeats)]
        result = {"list_seconds_median": statistics.median(first), "list_seconds": first}
        _, _, pages = self.server.search_runs(self.experiment_id)
        if pages > 1:
            every = [self.server.search_runs(self.experiment_id)[1] for _ in range(repeats)]
            result.update(list_all_pages_seconds_median=statistics.median(every), list_all_pages_seconds=every,
                          pages=pages)
        return result

    def new_run(self, store: ClusterStore) -> dict:
        """Write a run on the cluster side; seconds from its meta.yaml until runs/search returns it."""
        created: dict = {}
        ready = threading.Event()

        def write():
            with store.writing() as client:
                store.write_run(client, on_created=lambda run_id: (created.update(at=time.monotonic(), id=run_id),
                                                                    ready.set()))
            created["written"] = time.monotonic()

        writer = threading.Thread(target=write)
        writer.start()
        ready.wait(60)
        polls = 0
        result = {"run_id": created.get("id")}
        while time.monotonic() - created["at"] < NEW_RUN_TIMEOUT:
            polls += 1
            with contextlib.suppress(OSError, ValueError):
                if created["id"] in self.server.search_runs(self.experiment_id, first_page_only=True)[0]:
                    result.update(new_run_seconds=time.monotonic() - created["at"], polls=polls)
                    break
            time.sleep(0.1)
        else:
            result["error"] = f"not shown within {NEW_RUN_TIMEOUT:.0f} s"
        writer.join()
        result["run_written_seconds"] = created["written"] - created["at"]
        self.poll_log()
        return result

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = stop_process(self.process)
        self.poll_log()
        return {"exit_code": code, "server_left_answering": self.server.answers()}


def ui_scenario(bench: Bench, name: str, store: ClusterStore, mountpoint: Path, mirror: Path, *,
                new_run: bool, artifacts: bool, experiment_kind: bool, idle_refresh: bool = False) -> dict:
    expected = store.run_ids()
    result = {"runs": len(expected), "load_average_at_start": load_average()}
    ui = UiRun(bench, name, mountpoint, mirror)
    ui.experiment_id = store.experiment_id
    result["command"] = " ".join(ui.command)
    result["log"] = str(ui.log_path)
    try:
        result.update(ui.first_full_view(expected))
        if "error" in result:
            log(f"{name}: {result['error']}")
            return result
        log(f"{name}: first full view of {len(expected)} runs in {result['first_full_view_seconds']:.1f} s "
            f"(mirror {result.get('mirror_seconds', float('nan')):.1f} s)")
        result.update(ui.list_times())
        if new_run:
            result["new_run"] = ui.new_run(store)
            log(f"{name}: new run shown after {result['new_run'].get('new_run_seconds', float('nan')):.2f} s")
        if artifacts:
            result["artifacts"] = check_artifacts(ui.server, store, store.run_ids())
            log(f"{name}: artifacts {result['artifacts']['files_identical']}/{result['artifacts']['files_expected']}"
                f" identical in {result['artifacts']['seconds']:.1f} s")
        if experiment_kind:
            tags = ui.server.experiment_tags(store.experiment_id)
            result["experiment_kind"] = tags.get(EXPERIMENT_KIND[0])
            result["experiment_kind_ok"] = tags.get(EXPERIMENT_KIND[0]) == EXPERIMENT_KIND[1]
    finally:
        result["stop"] = ui.stop()
        if idle_refresh and "first_full_view_seconds" in result:
            result["idle_refresh"] = idle_refresh_seconds(mountpoint, mirror)
        result["log_lines"] = [f"{seconds:7.2f}s {line}" for seconds, line in ui.lines
                               if '"GET /' not in line and '"POST /' not in line and "Warning" not in line
                               and "from starlette" not in line][:40]
    return result


def idle_refresh_seconds(mountpoint: Path, mirror: Path, repeats: int = 3) -> dict:
    """What each background refresh of an up-to-date mirror costs (the UI stopped): `StoreMirror.refresh`
    with nothing new, ``repeats`` times, wall and CPU seconds of this process."""
    if str(REPO / "modules") not in sys.path:
        sys.path.insert(0, str(REPO / "modules"))
    from gravtrain.stores.mirror import StoreMirror

    walls, cpus = [], []
    for _ in range(repeats):
        time.sleep(LISTING_CACHE_WAIT)  # as a refresh 1 s after the last one finds it: listings expired
        before = time.process_time()
        report = StoreMirror(mountpoint, mirror).refresh()
        walls.append(report.seconds)
        cpus.append(time.process_time() - before)
    state = mirror / "state.json"
    return {"seconds_median": statistics.median(walls), "seconds": walls, "cpu_seconds": cpus,
            "runs": report.runs, "files_read": report.files_read, "directories_listed": report.directories_listed,
            "state_json_bytes": state.stat().st_size if state.exists() else None}


def server_start_table(bench: Bench, store: Path) -> list[dict]:
    """Seconds until ``mlflow server`` answers /health on a local store: MLflow's default of 4 uvicorn workers
    (what ``gravtrain ui`` starts) against one."""
    rows = []
    for workers in (None, 1):
        port = free_port()
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store.as_uri(),
                   "--host", "127.0.0.1", "--port", str(port)] + (["--workers", str(workers)] if workers else [])
        started = time.monotonic()
        process, _ = bench.launch(f"server-start-{workers or 'default'}", command,
                                  {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"})
        server = Server(port)
        while not server.answers() and process.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.1)
        rows.append({"workers": workers or "default (4)", "answering_seconds": time.monotonic() - started,
                     "load_average": load_average()})
        stop_process(process)
        log(f"mlflow server, workers {rows[-1]['workers']}: answers after {rows[-1]['answering_seconds']:.1f} s")
    return rows


def workers_table(mountpoint: Path, root: Path, workers: list[int]) -> list[dict]:
    """A cold `StoreMirror.refresh` per number of workers, with the most threads the sshfs process had meanwhile
    (each of its FUSE threads waits on one SFTP reply: they bound the requests in flight)."""
    if str(REPO / "modules") not in sys.path:
        sys.path.insert(0, str(REPO / "modules"))
    from gravtrain.stores.mirror import StoreMirror

    rows = []
    pid = sshfs_process(mountpoint)
    for count in workers:
        time.sleep(2 * LISTING_CACHE_WAIT)  # past sshfs's listing cache, so each starts cold
        peak, done = [0], threading.Event()

        def sample():
            while not done.is_set():
                with contextlib.suppress(OSError):
                    peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/task")))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        if pid:
            sampler.start()
        report = StoreMirror(mountpoint, root / f"mirror-workers-{count}", workers=count).refresh()
        done.set()
        rows.append({"workers": count, "seconds": report.seconds, "runs": report.runs,
                     "files_read": report.files_read, "directories_listed": report.directories_listed,
                     "sshfs_threads_max": peak[0] if pid else None})
        log(f"StoreMirror workers={count}: {report.describe()}; sshfs had up to {peak[0]} threads")
    return rows
