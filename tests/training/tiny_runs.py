"""A tiny training config and what the end-to-end tests do with its runs: write it, train it here or in a
process, read its store with MLflow's own client, wait for another process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

#: Two stages that share one trace of the train step (the second changes options only: variables). A stage with
#: ``recompute: true`` would trace it again (about 6 s more per run); the run that checks it sets it.
TINY = {
    "General": {"name": "tiny", "seed": 5, "description-string": "end-to-end test"},
    "Data": {"toy": {"n_train_events": 24, "n_val_events": 6, "n_particles": [1, 3], "noise_hits": 20,
                     "energy_range": [2.0, 30.0]}},
    "Architecture": {"gravnet": [{"n": 6, "n_filters": 16, "n_propagate": 8}], "message_passing": [{"n": 8}],
                     "dense_pre_gravnet": [{"n": 16}], "dense_post_message_passing": [{"n": 16}],
                     "dense_final": [{"n": 16}], "n_embedding": 8},
    "Training": [{"name": "first", "epochs": 1, "batch_size": 3000, "learning_rate": 1e-3},
                 {"name": "second", "epochs": 1, "batch_size": 5000, "learning_rate": 1e-4,
                  "LossOptions": {"q_min": 0.5}}],
    "Plotting": {"record_frequency": 1, "plot_frequency": 4},
}

def write_config(directory: Path, **changes) -> Path:
    config = json.loads(json.dumps(TINY))
    for path, value in changes.items():
        node = config
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def client_for(directory: Path):
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=(directory / "mlruns").resolve().as_uri())


def metric_steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def train_command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "config_trainer.py"), str(config), *extra]


def train_in(directory: Path, config: Path, **options):
    """``gravtrain.train(config, **options)`` in this process, run from ``directory`` (where ``mlruns`` and
    ``checkpoints`` go)."""
    import gravtrain

    previous = Path.cwd()
    os.chdir(directory)
    try:
        return gravtrain.train(config, **options)
    finally:
        os.chdir(previous)


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300.0):
    """Poll ``condition`` until it returns a true value, and return that value; fail the test when ``process``
    ends or ``timeout`` seconds pass first. The state waited for is another process's (a file it writes, a port
    it serves), so there is no event to wait on: between polls, the wait for the process to end is the pause."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        try:
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the process ended (exit code {process.returncode}) before {what}")


def read_json_url(url: str):
    """The JSON an HTTP GET of ``url`` returns, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


def run_checkpointed_at(checkpoints: Path, step: int) -> Path | None:
    """The run directory whose latest checkpoint (``latest`` is replaced atomically) is at ``step`` or later."""
    for latest in checkpoints.glob("*/latest"):
        progress = json.loads((latest.parent / latest.read_text().strip() / "progress.json").read_text())
        if progress["step"] >= step:
            return latest.parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
