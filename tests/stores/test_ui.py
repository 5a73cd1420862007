"""``gravtrain ui``: the server command line and environment, Ctrl-C handling, and one real server."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from gravtrain.stores import serve_ui, ui_command_line, ui_environment
from gravtrain.stores import ui as ui_module
from gravtrain.stores.ui import run_url, ui_url
from gravtrain.tracking import MlflowTracker
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV, TRACKING_URI_ENV
from tests.stores.output_watch import OutputWatch
from tests.training.tiny_runs import free_port


def test_command_line(clean_environment):
    store = (clean_environment / "mlruns").resolve().as_uri()
    assert ui_command_line() == [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                                 "--host", "127.0.0.1", "--port", "5000"]
    assert ui_command_line("sqlite:///mlflow.db", host="0.0.0.0", port=8080)[3:] == [
        "server", "--backend-store-uri", "sqlite:///mlflow.db", "--host", "0.0.0.0", "--port", "8080"]


def test_environment(clean_environment, monkeypatch):
    monkeypatch.setenv("GRAVTRAIN_TEST_MARKER", "kept")
    environment = ui_environment()
    assert environment[ALLOW_FILE_STORE_ENV] == "true" and environment["GRAVTRAIN_TEST_MARKER"] == "kept"
    assert ALLOW_FILE_STORE_ENV not in os.environ  # only the server's environment
    assert ALLOW_FILE_STORE_ENV not in ui_environment("sqlite:///mlflow.db")
    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "1")
    assert ui_environment()[ALLOW_FILE_STORE_ENV] == "1"


def test_url():
    assert ui_url("127.0.0.1", 5000) == "http://127.0.0.1:5000" and ui_url("::1", 80) == "http://[::1]:80"
    assert run_url("7", "ab12") == "http://127.0.0.1:5000/#/experiments/7/runs/ab12?workflowType=machine_learning"


#: How long a signal sent to this process may take to reach its handler.
SIGNAL_DEADLINE_SECONDS = 30


class FakeServer:
    """Stands in for the ``mlflow server`` process: ``wait`` raises Ctrl-C (or sends gravtrain ``signalled``)
    first when asked to; ``serving``: whether it answers on its port before exiting."""

    def __init__(self, interrupted: bool, code: int = 0, serving: bool = True, signalled: int | None = None):
        self.pid = 4242424
        self.interrupted = interrupted
        self.code = code
        self.serving = serving
        self.signalled = signalled
        self.signals: list = []
        self.done = not serving

    def wait(self, timeout=None):
        if self.signalled and not self.signals:
            os.kill(os.getpid(), self.signalled)
            # The handler raises out of this wait (a sleep a signal handler's exception interrupts); if it
            # does not within the deadline, the test fails here.
            time.sleep(SIGNAL_DEADLINE_SECONDS)
            raise AssertionError(f"signal {self.signalled} did not reach serve_ui's handler")
        if self.interrupted and not self.signals:
            raise KeyboardInterrupt
        self.done = True
        return self.code

    def poll(self):
        return self.code if self.done else None


@pytest.fixture
def fake_server(monkeypatch, clean_environment):
    started = {}
    (clean_environment / "mlruns").mkdir()  # the default store exists (a missing one is refused)

    def launch(server):
        def popen(command, env, start_new_session, stdout=None, stderr=None):
            started.update(command=command, env=env, stdout=stdout)
            return server

        monkeypatch.setattr(ui_module.subprocess, "Popen", popen)
        monkeypatch.setattr(ui_module, "_answers", lambda host, port: server.serving)
        monkeypatch.setattr(ui_module.os, "killpg", lambda pid, number: server.signals.append(number))
        monkeypatch.setattr(ui_module.os, "name", "posix")
        return started

    return launch


def test_ctrl_c_stops_the_server_and_returns_0(fake_server, caplog):
    server = FakeServer(interrupted=True)
    started = fake_server(server)
    with caplog.at_level("INFO", logger="gravtrain.stores.ui"):
        assert serve_ui(port=5123) == 0
    assert server.signals == [signal.SIGINT] and started["env"][ALLOW_FILE_STORE_ENV] == "true"
    assert "browse http://127.0.0.1:5123" in caplog.text


def test_the_servers_exit_code_is_returned(fake_server, caplog):
    fake_server(FakeServer(interrupted=False, code=1))
    assert serve_ui(port=5124) == 1
    assert "exit code 1" in caplog.text


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_server_too(fake_server, number):
    server = FakeServer(interrupted=False, signalled=number)
    fake_server(server)
    previous = signal.getsignal(number)
    assert serve_ui(port=5125) == 128 + number
    assert server.signals == [signal.SIGINT]  # the server's group is interrupted, as for Ctrl-C
    assert signal.getsignal(number) is previous


def test_a_signal_that_lands_while_a_line_is_logged_still_stops_the_server(fake_server, caplog):
    """A batch system's SIGTERM can arrive while gravtrain writes a log line. Logging swallows an ``Exception``
    raised in a handler's write, so the stop must not be one (as ``KeyboardInterrupt`` is not)."""
    server = FakeServer(interrupted=False)
    fake_server(server)

    class SignalledMidLine(logging.Handler):
        def emit(self, record):
            if "browse" in record.getMessage():
                try:
                    os.kill(os.getpid(), signal.SIGTERM)  # the stop handler raises at the next line run
                    self.format(record)
                except Exception:
                    self.handleError(record)  # what logging.StreamHandler.emit does with a failed write

    handler = SignalledMidLine()
    logger = logging.getLogger("gravtrain.stores.ui")
    logger.addHandler(handler)
    try:
        with caplog.at_level("INFO", logger="gravtrain.stores.ui"):
            assert serve_ui(port=5127) == 128 + signal.SIGTERM
    finally:
        logger.removeHandler(handler)
    assert server.signals == [signal.SIGINT]


def test_a_server_that_exits_before_answering_is_an_error(fake_server, caplog):
    fake_server(FakeServer(interrupted=False, code=0, serving=False))  # as MLflow does when its port is taken
    with caplog.at_level("INFO", logger="gravtrain.stores.ui"):
        assert serve_ui(port=5126) == 1
    assert "stopped before serving http://127.0.0.1:5126" in caplog.text and "browse" not in caplog.text


def test_a_port_in_use_is_refused_before_starting(fake_server, caplog):
    started = fake_server(FakeServer(interrupted=False))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_ui(port=port) == 1
    assert started == {} and f"port {port} is in use" in caplog.text and "--port" in caplog.text


def test_a_damaged_store_is_served_with_a_warning_and_the_fix(fake_server, caplog, tmp_path):
    store = tmp_path / "mlruns"
    run = store / "1" / "0123abcd"
    run.mkdir(parents=True)
    (store / "1" / "meta.yaml").write_text(f"artifact_location: {(store / '1').as_uri()}\nexperiment_id: '1'\n"
                                           "lifecycle_stage: active\nname: e\n")
    (run / "meta.yaml").write_text("")  # cut short by a crash
    os.utime(run / "meta.yaml", (time.time() - 3600, time.time() - 3600))
    server = FakeServer(interrupted=True)
    fake_server(server)
    with caplog.at_level("INFO", logger="gravtrain.stores.ui"):
        assert serve_ui(str(store), port=5127) == 0  # served all the same
    assert "1 run(s) or experiment(s) of" in caplog.text and "(1/0123abcd)" in caplog.text
    assert f"gravtrain runs doctor {store} --fix" in caplog.text and "browse" in caplog.text


def test_an_http_store_is_refused(fake_server, caplog):
    started = fake_server(FakeServer(interrupted=False))
    assert serve_ui("http://127.0.0.1:5000") == 2
    assert started == {} and "tracking server already" in caplog.text


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.mark.slow
def test_serve_ui_runs_a_real_server_and_stops_on_ctrl_c(store, tmp_path):
    with MlflowTracker.start(tracking_uri=store, experiment="ui-check", run_name="r") as tracker:
        tracker.log_text("visible in the UI", "notes.txt")
    port = free_port()
    script = textwrap.dedent(f"""
        import faulthandler, logging, signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's view into a hang
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("gravtrain.stores.ui").setLevel(logging.DEBUG)
        from gravtrain.stores.ui import serve_ui
        sys.exit(serve_ui("mlruns", host="127.0.0.1", port={port}))
        """)
    environment = {k: v for k, v in os.environ.items() if k not in (ALLOW_FILE_STORE_ENV, TRACKING_URI_ENV)}
    wrapper = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watch = OutputWatch(wrapper)
    base = f"http://127.0.0.1:{port}"
    try:
        assert watch.wait_for("browse", timeout=60), watch.text[-3000:]  # printed once the server answers
        answer = post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        assert "ui-check" in [e["name"] for e in answer["experiments"]]
        artifact = f"{base}/get-artifact?path=notes.txt&run_uuid={tracker.run_id}"
        with urllib.request.urlopen(artifact, timeout=5) as response:
            assert response.read() == b"visible in the UI"

        wrapper.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = wrapper.wait(timeout=40)
        except subprocess.TimeoutExpired:
            wrapper.send_signal(signal.SIGUSR1)  # every thread's stack into the output
            watch.wait_for("most recent call first", timeout=10)
            pytest.fail("serve_ui still runs 40 s after Ctrl-C:\n" + watch.text[-6000:])
        output = watch.close()
        assert code == 0, output[-3000:]
        with pytest.raises(OSError):
            post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        assert f"browse {base}" in output
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
        _kill_server_left_behind(watch.close())


def _kill_server_left_behind(log: str) -> None:
    """Kill the server's process group (its id is in serve_ui's debug line) if the test left it running."""
    for line in log.splitlines():
        if "mlflow server started as process" in line:
            pid = int(line.split("process ", 1)[1].split(":", 1)[0])
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.slow
def test_a_signal_to_gravtrain_ui_leaves_no_server_behind(store, tmp_path, user_cache_directory):
    """``gravtrain ui`` killed politely (a batch system's SIGTERM; SIGHUP takes the same path, see the fake-server
    test): the server goes with it and the port is free again. Without ``-v`` it says a few lines of its own, the
    server's go to a log file it names, and the signal gives one closing line."""
    number = signal.SIGTERM
    port = free_port()
    (tmp_path / "mlruns").mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in (ALLOW_FILE_STORE_ENV, TRACKING_URI_ENV)}
    wrapper = subprocess.Popen([sys.executable, "-m", "gravtrain", "ui", "--port", str(port)], cwd=tmp_path,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    watch = OutputWatch(wrapper)
    base = f"http://127.0.0.1:{port}"
    server_log = user_cache_directory / "gravtrain" / "ui" / f"server-{port}.log"
    try:
        assert watch.wait_for("browse", timeout=60), watch.text[-3000:]
        before = watch.text.splitlines()
        assert len(before) <= 8, before
        assert any(line.startswith(f"the MLflow server's own messages go to {server_log} ") for line in before)
        wrapper.send_signal(number)  # to gravtrain only, not to the server's own process group
        assert wrapper.wait(timeout=40) == 128 + number, watch.close()[-3000:]
        assert watch.close().splitlines()[len(before):] == [f"stopping the MLflow UI (signal {number})"]
        assert "Uvicorn running" in server_log.read_text() or "Started server process" in server_log.read_text()
        with pytest.raises(OSError):
            post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})
        # Free again: nothing listens there (connections of the stopped server may linger in TIME_WAIT, which
        # a new server may bind over, as port_problem checks).
        assert ui_module.port_problem("127.0.0.1", port) is None
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
        _kill_server_left_behind(watch.close())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.mark.slow
def test_gravtrain_ui_on_a_moved_store_serves_every_artifact_follows_new_runs_and_writes_nothing(tmp_path,
                                                                                                  monkeypatch):
    """The laptop's view of a cluster's store: written at one path, read at another, followed while it grows."""
    from tests.stores.test_mirror import add_run, snapshot

    monkeypatch.setenv(ALLOW_FILE_STORE_ENV, "true")
    written = tmp_path / "cluster" / "mlruns"
    runs = [add_run(written, "physics", f"run-{i}") for i in range(2)]
    source = tmp_path / "mnt" / "mlruns"
    source.parent.mkdir()
    os.rename(written, source)
    before = snapshot(source)

    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in (ALLOW_FILE_STORE_ENV, TRACKING_URI_ENV)}
    wrapper = subprocess.Popen([sys.executable, "-m", "gravtrain", "-v", "ui", str(source), "--port", str(port),
                                "--refresh", "0.5"], cwd=tmp_path, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    watch = OutputWatch(wrapper)
    base = f"http://127.0.0.1:{port}"
    try:
        # the runs table's link comes last, after the address
        assert watch.wait_for("viewStateShareKey=gravtrain", timeout=90), watch.text[-3000:]
        text = watch.text
        assert text.index("starting the MLflow server; reading") < text.index("mirrored 2 run(s)") < text.index("browse")
        assert f"written at {tmp_path / 'cluster' / 'mlruns'} and is read at {source}" in text
        experiments = post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})["experiments"]
        physics = next(e for e in experiments if e["name"] == "physics")
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in physics["tags"]
        assert "mlflow.sharedViewState.gravtrain" in {tag["key"] for tag in physics["tags"]}
        assert f"browse {base}/#/experiments?workflowType=machine_learning" in text
        assert f"{base}/#/experiments/{physics['experiment_id']}/runs?workflowType=machine_learning&" \
               "viewStateShareKey=gravtrain" in text

        for run_id in runs:  # every artifact of every run, listed and downloaded
            def listed(path=""):
                query = f"run_uuid={run_id}" + (f"&path={path}" if path else "")
                files = json.loads(get(f"{base}/ajax-api/2.0/mlflow/artifacts/list?{query}")).get("files", [])
                return [name for item in files for name in (listed(item["path"]) if item["is_dir"] else [item["path"]])]

            paths = sorted(listed())
            assert paths == ["config.yaml", "evaluation/roc.png", "model/model.keras"]
            name = post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [physics["experiment_id"]],
                                                               "filter": f"attributes.run_id = '{run_id}'"})
            run_name = name["runs"][0]["info"]["run_name"]
            for path in paths:
                assert get(f"{base}/get-artifact?path={path}&run_uuid={run_id}").decode().endswith(f"of {run_name}")

        late = add_run(source, "physics", "late", scratch=tmp_path)  # the cluster's training adds a run
        before = snapshot(source)
        assert watch.wait_for("mirror refreshed: 3 run(s)", timeout=30), watch.text[-3000:]
        found = post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [physics["experiment_id"]]})
        assert late in [run["info"]["run_id"] for run in found.get("runs", [])]

        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=40) == 128 + signal.SIGTERM, watch.close()[-3000:]
        assert snapshot(source) == before  # the store gravtrain ui read is byte for byte as it was
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
        _kill_server_left_behind(watch.close())
