"""Browse runs: `serve_ui` runs ``mlflow server`` on a store until Ctrl-C (or SIGTERM, SIGHUP).

A directory store is served through its local mirror (`gravtrain.stores.mirror`): the store is read once with
many requests in flight, then only its new or changed runs every ``refresh_seconds``, so a store mounted over
sshfs from a cluster browses as fast as a local one; artifacts are served from where the store really is, at
whatever path it is mounted; experiments of gravtrain open on their runs table. ``direct=True`` serves the store
itself, as plain ``mlflow server --backend-store-uri`` does.

The server runs as ``<this Python> -m mlflow server --backend-store-uri URI --host HOST --port PORT``, so it is
the MLflow gravtrain logs with, and, for a directory store such as ``mlruns``, with
``MLFLOW_ALLOW_FILE_STORE=true`` in its environment (unless you set it yourself), without which MLflow 3
refuses to open it (see `gravtrain.tracking.store`). It listens on the loopback interface by default; MLflow's
own security middleware then accepts local browsers only.

The address is printed only once the server answers on it; a port in use is refused before starting (MLflow's
server would log the error and exit 0), and a server that exits before answering is an error (exit code 1).
SIGINT, SIGTERM and SIGHUP to gravtrain stop the server's whole process group before gravtrain exits, so no
server is left holding the port.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from gravtrain.tracking.store import file_store_environment, is_file_store, local_directory, store_uri

#: Seconds between two refreshes of the mirror while the UI is open (at least; see `MirrorRefresher`).
REFRESH_SECONDS = 1.0

logger = logging.getLogger(__name__)

#: Seconds the server has to stop after Ctrl-C before it is terminated, then killed.
STOP_GRACE_SECONDS = 10.0
#: Seconds to wait for the server's first answer before saying that it is slow (it keeps being waited for).
READY_WARNING_SECONDS = 120.0
#: Signals that stop the UI like Ctrl-C does (besides SIGINT), where the platform has them.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class _Signalled(BaseException):
    """Raised in the main thread by the handler of a stop signal. Like ``KeyboardInterrupt``, not an
    ``Exception``: a signal that lands inside code catching ``Exception`` (logging's write of a line, MLflow's
    retries) must still stop the UI."""

    def __init__(self, number: int):
        super().__init__(number)
        self.number = number


def ui_command_line(backend_store_uri: str = "mlruns", *, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The command `serve_ui` runs; a store directory is given to MLflow as an absolute ``file://`` URI."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri(backend_store_uri),
            "--host", host, "--port", str(port)]


def ui_environment(backend_store_uri: str = "mlruns") -> dict[str, str]:
    """The server's environment: this process's, plus ``MLFLOW_ALLOW_FILE_STORE=true`` (unless already set)
    when the store is a directory."""
    environment = dict(os.environ)
    if is_file_store(backend_store_uri):
        for name, value in file_store_environment().items():
            environment.setdefault(name, value)
    return environment


def ui_url(host: str = "127.0.0.1", port: int = 5000) -> str:
    """The address to browse: ``http://host:port`` (an IPv6 host in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def experiments_url(host: str = "127.0.0.1", port: int = 5000) -> str:
    """The UI's experiment list in its model-training mode (MLflow 3 opens in its GenAI mode unless the address
    says ``workflowType=machine_learning``; older versions ignore it)."""
    return f"{ui_url(host, port)}/#/experiments?workflowType=machine_learning"


def run_url(experiment_id: str, run_id: str, host: str = "127.0.0.1", port: int = 5000) -> str:
    """A run's page in the UI's model-training mode (its overview, metrics and artifacts)."""
    return f"{ui_url(host, port)}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def runs_table_url(host: str, port: int, experiment_id: str) -> str:
    """The runs table of an experiment with the view the mirror gives gravtrain experiments
    (`gravtrain.stores.mirror.VIEW_SHARE_KEY`)."""
    from gravtrain.stores.mirror import VIEW_SHARE_KEY

    return (f"{ui_url(host, port)}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={VIEW_SHARE_KEY}")


def default_server_log(port: int) -> Path:
    """Where `gravtrain ui` writes the output of its MLflow server by default (one file per port, rewritten at each
    start): `gravtrain.stores.mirror.gravtrain_cache`'s ``ui/server-<port>.log``."""
    from gravtrain.stores.mirror import gravtrain_cache

    return gravtrain_cache() / "ui" / f"server-{port}.log"


def serve_ui(backend_store_uri: str = "mlruns", *, host: str = "127.0.0.1", port: int = 5000,
             direct: bool = False, mirror_home: str | os.PathLike | None = None,
             refresh_seconds: float = REFRESH_SECONDS, server_log: str | os.PathLike | None = None) -> int:
    """Run the MLflow UI on a store until it stops or Ctrl-C is pressed.

    Args:
        backend_store_uri: a store directory (default ``mlruns``, relative to the working directory) or a
            ``sqlite:///`` URI. An ``http(s)://`` store is a server already: it is refused with a message.
        host: the interface to listen on (``0.0.0.0`` opens it to other machines; MLflow then wants
            ``--allowed-hosts``).
        port: the port to listen on.
        direct: serve a directory store itself rather than its mirror.
        mirror_home: where the mirror lives (default: `gravtrain.stores.mirror.default_mirror_home`).
        refresh_seconds: seconds between two refreshes of the mirror.
        server_log: a file for the MLflow server's own output (its start-up lines, its request log, MLflow's
            warnings), named in one line; None leaves it on this process's terminal.

    Returns:
        The exit code: 0 after Ctrl-C, 128 + the signal after SIGTERM or SIGHUP, 1 when the server cannot
        listen on the port or exits before answering, 2 for an ``http(s)://`` store or a store directory that
        does not exist or cannot be read, else the server's own.
    """
    uri = store_uri(backend_store_uri)
    if uri.startswith(("http://", "https://")):
        logger.error("%s is a tracking server already: open it in your browser.", uri)
        return 2
    directory = local_directory(uri)
    if directory is not None and not directory.is_dir():
        logger.error("%s does not exist, so there are no runs to show: run this where you trained, or name the "
                     "store you trained into (or its mount).", directory)
        return 2
    problem = port_problem(host, port)
    if problem:
        logger.error("cannot serve the MLflow UI on %s: %s", ui_url(host, port), problem)
        return 1
    mirror = refresher = None
    if directory is not None and not direct:
        from gravtrain.stores.mirror import MirrorError, MirrorRefresher, StoreMirror

        mirror = StoreMirror(directory, mirror_home)
        try:
            mirror.prepare()
        except MirrorError as exc:
            logger.error("%s", exc)
            return 2
        uri = store_uri(str(mirror.store))
        refresher = MirrorRefresher(mirror, refresh_seconds)
    elif directory is not None:
        _warn_about_damage(directory)
    command = ui_command_line(uri, host=host, port=port)
    log_file = None
    try:
        if server_log is not None:
            Path(server_log).parent.mkdir(parents=True, exist_ok=True)
            log_file = open(server_log, "w")
        process = subprocess.Popen(command, env=ui_environment(uri), start_new_session=os.name == "posix",
                                   stdout=log_file, stderr=subprocess.STDOUT if log_file else None)
    except OSError as exc:
        logger.error("cannot start the MLflow server (%s): %s", " ".join(command), exc)
        return 1
    finally:
        if log_file is not None:
            log_file.close()  # the server holds a descriptor of its own
    logger.debug("mlflow server started as process %d: %s", process.pid, " ".join(command))
    messages = f"its messages are in {server_log}" if server_log is not None else "its messages are above"
    if server_log is not None:
        logger.info("the MLflow server's own messages go to %s (`gravtrain -v ui` shows them here)", server_log)
    previous = _install_stop_handlers()
    started = time.monotonic()
    try:
        if mirror is not None:  # read while the server starts: one waits on the network, the other on the CPU
            logger.info("starting the MLflow server; reading %s into its local mirror %s ...", directory,
                        mirror.store)
            if not _first_mirror(mirror, directory):
                return 2
            refresher.start()
        else:
            logger.info("starting the MLflow server ...")
        if not _wait_until_serving(process, host, port):
            code = process.wait()
            logger.error("the MLflow server stopped before serving %s (exit code %d); %s.", ui_url(host, port),
                         code, messages)
            return code or 1
        logger.info("MLflow UI for %s (ready in %.1f s%s): browse %s (Ctrl-C stops it)",
                    directory or uri, time.monotonic() - started,
                    f"; the mirror is refreshed every {refresh_seconds:g} s" if refresher else "",
                    experiments_url(host, port))
        experiment = mirror.newest_gravtrain_experiment() if mirror is not None else None
        if experiment is not None:
            logger.info("the runs of the newest gravtrain experiment, with the stage and physics metrics as "
                        "columns: %s", runs_table_url(host, port, experiment))
        code = process.wait()
    except KeyboardInterrupt:
        logger.info("stopping the MLflow UI")
        _stop_server(process)
        return 0
    except _Signalled as stop:
        logger.info("stopping the MLflow UI (signal %d)", stop.number)
        _stop_server(process)
        return 128 + stop.number
    finally:
        _restore_handlers(previous)
        if refresher is not None:
            refresher.stop(timeout=STOP_GRACE_SECONDS)
        if process.poll() is None:  # any other exception: do not leave the server behind
            _stop_server(process)
    if code != 0:
        logger.error("the MLflow server stopped with exit code %d; %s.", code, messages)
    return code


def _first_mirror(mirror, directory) -> bool:
    """The first refresh of the mirror, reported (how many runs, how long, where the artifacts are read);
    False, with the error logged, when the store cannot be read."""
    from gravtrain.stores.mirror import MirrorError

    try:
        report = mirror.refresh()
    except MirrorError as exc:
        logger.error("%s", exc)
        return False
    logger.info("mirrored %s", report.describe())
    if report.relocated_from:
        logger.info("the store was written at %s and is read at %s: its artifacts are served from there",
                    report.relocated_from, directory)
    _warn_about_damage(mirror.store, named=directory)
    return True


def _warn_about_damage(directory, *, named=None) -> None:
    """The doctor's checks: warn (never refuse) when runs are damaged, with the command that repairs them.

    ``directory`` is examined (the mirror, a local copy, when there is one); ``named`` is the store the
    messages name (default: ``directory``).
    """
    from gravtrain.stores.doctor import examine_store

    report = examine_store(directory, read_metrics=False)  # sizes only: quick on a store mounted over sshfs
    directory = named or directory
    if report.damages:
        logger.warning("%d run(s) or experiment(s) of %s are damaged (%s); MLflow cannot list the experiments "
                       "holding them. `gravtrain runs doctor %s --fix` moves the damage aside (nothing is deleted).",
                       len(report.damaged_runs), directory, ", ".join(report.damaged_runs[:3])
                       + (" ..." if len(report.damaged_runs) > 3 else ""), directory)


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, not an address of this machine, no permission), or
    None. Checked by binding a socket to it, closed at once."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"the host {host!r} is unknown ({exc.strerror})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if os.name == "posix":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is fine
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} is in use (another server, perhaps an earlier `gravtrain ui`); choose " \
                       "another with --port"
            if exc.errno == errno.EACCES:
                return f"port {port} needs privileges; choose one above 1023 with --port"
            if exc.errno == errno.EADDRNOTAVAIL:
                return f"{host} is not an address of this machine; use 127.0.0.1 or 0.0.0.0 with --host"
            return f"cannot listen there ({exc.strerror})"
    return None


def _wait_until_serving(process, host: str, port: int) -> bool:
    """True once the server answers HTTP on ``host:port``; False if it exits first."""
    started, warned = time.monotonic(), False
    while process.poll() is None:
        if _answers(host, port):
            return True
        if not warned and time.monotonic() - started > READY_WARNING_SECONDS:
            logger.warning("the MLflow server has not answered on %s after %.0f s; still waiting (Ctrl-C stops "
                           "it)", ui_url(host, port), READY_WARNING_SECONDS)
            warned = True
        time.sleep(0.25)
    return False


def _answers(host: str, port: int) -> bool:
    """Whether an HTTP server answers ``GET /health`` on ``host:port`` (any HTTP status counts)."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with urllib.request.urlopen(f"{ui_url(local, port)}/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def _install_stop_handlers() -> dict:
    """Make SIGTERM and SIGHUP raise `_Signalled` in the main thread; returns the handlers they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(number, frame):
        raise _Signalled(number)

    return {number: signal.signal(number, stop) for number in STOP_SIGNALS}


def _restore_handlers(previous: dict) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


def _stop_server(process: subprocess.Popen) -> None:
    """Interrupt the server's process group, then terminate it, then kill it, until it has exited."""
    for step, seconds in (("interrupt", STOP_GRACE_SECONDS), ("terminate", 5.0), ("kill", 5.0)):
        _signal_server(process, step)
        try:
            process.wait(timeout=seconds)
            return
        except subprocess.TimeoutExpired:
            logger.warning("the MLflow server did not stop after the %s signal; escalating", step)
        except (KeyboardInterrupt, _Signalled):  # a second Ctrl-C or signal: stop waiting politely
            continue
    logger.error("the MLflow server (process %d) would not stop", process.pid)


def _signal_server(process: subprocess.Popen, step: str) -> None:
    if os.name != "posix":
        (process.kill if step == "kill" else process.terminate)()
        return
    number = {"interrupt": signal.SIGINT, "terminate": signal.SIGTERM, "kill": signal.SIGKILL}[step]
    try:
        os.killpg(process.pid, number)  # the server's own session: it and its uvicorn workers
    except ProcessLookupError:
        pass
