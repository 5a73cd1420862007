"""Browse runs: `serve_ui` runs ``mlflow server`` on a store until Ctrl-C.

The server runs as ``<this Python> -m mlflow server --backend-store-uri URI --host HOST --port PORT``, so it is
the MLflow gravtrain logs with, and, for a directory store such as ``mlruns``, with
``MLFLOW_ALLOW_FILE_STORE=true`` in its environment (unless you set it yourself), without which MLflow 3
refuses to open it (see `gravtrain.tracking.store`). It listens on the loopback interface by default; MLflow's
own security middleware then accepts local browsers only.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

from gravtrain.tracking.store import file_store_environment, is_file_store, local_directory, store_uri

logger = logging.getLogger(__name__)

#: Seconds the server has to stop after Ctrl-C before it is terminated, then killed.
STOP_GRACE_SECONDS = 10.0


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


def serve_ui(backend_store_uri: str = "mlruns", *, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run the MLflow UI on a store until it stops or Ctrl-C is pressed.

    Args:
        backend_store_uri: a store directory (default ``mlruns``, relative to the working directory) or a
            ``sqlite:///`` URI. An ``http(s)://`` store is a server already: it is refused with a message.
        host: the interface to listen on (``0.0.0.0`` opens it to other machines; MLflow then wants
            ``--allowed-hosts``).
        port: the port to listen on.

    Returns:
        The exit code: 0 after Ctrl-C, otherwise the server's own (2 for an ``http(s)://`` store).
    """
    uri = store_uri(backend_store_uri)
    if uri.startswith(("http://", "https://")):
        logger.error("%s is a tracking server already: open it in your browser.", uri)
        return 2
    directory = local_directory(uri)
    if directory is not None and not directory.is_dir():
        logger.warning("%s does not exist, so there are no runs to show: run this where you trained, or name "
                       "the store you trained into.", directory)
    command = ui_command_line(uri, host=host, port=port)
    try:
        process = subprocess.Popen(command, env=ui_environment(uri), start_new_session=os.name == "posix")
    except OSError as exc:
        logger.error("cannot start the MLflow server (%s): %s", " ".join(command), exc)
        return 1
    logger.debug("mlflow server started as process %d: %s", process.pid, " ".join(command))
    logger.info("MLflow UI for %s: browse %s (Ctrl-C stops it)", uri, ui_url(host, port))
    try:
        code = process.wait()
    except KeyboardInterrupt:
        logger.info("stopping the MLflow UI")
        _stop_server(process)
        return 0
    finally:
        if process.poll() is None:  # an exception other than Ctrl-C: do not leave the server behind
            _stop_server(process)
    if code != 0:
        logger.error("the MLflow server stopped with exit code %d; its messages are above (port %d in use? "
                     "choose another port).", code, port)
    return code


def _stop_server(process: subprocess.Popen) -> None:
    """Interrupt the server's process group, then terminate it, then kill it, until it has exited."""
    for step, seconds in (("interrupt", STOP_GRACE_SECONDS), ("terminate", 5.0), ("kill", 5.0)):
        _signal_server(process, step)
        try:
            process.wait(timeout=seconds)
            return
        except subprocess.TimeoutExpired:
            logger.warning("the MLflow server did not stop after the %s signal; escalating", step)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
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
