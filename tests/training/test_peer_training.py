"""``benchmarks/peer_training.py`` in its smoke size (12 events, one epoch), so the benchmark's code cannot rot:
gravtrain alone (the peer is not installed in CI), and the PyTorch peer too where torch, PyTorch Geometric,
torch-cluster and object-condensation are installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "peer_training.py"
#: What every epoch of every run reports.
EPOCH_KEYS = {"epoch", "stage", "learning_rate", "seconds", "hits_per_second", "train_loss", "efficiency",
              "fake_rate", "response", "resolution", "efficiency_all", "fake_rate_all"}

pytestmark = pytest.mark.slow


def smoke(tmp_path, stacks: str) -> tuple[dict, str]:
    out = tmp_path / "smoke.json"
    completed = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--stacks", stacks, "--out", str(out)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out.read_text()), completed.stdout


def check_run(run: dict, stack: str) -> None:
    assert run["stack"] == stack and run["seed"] == 42
    [epoch] = run["epochs"]
    assert EPOCH_KEYS <= set(epoch), EPOCH_KEYS - set(epoch)
    assert epoch["epoch"] == 1 and epoch["stage"] == "smoke" and epoch["learning_rate"] == pytest.approx(1e-3)
    assert epoch["seconds"] > 0 and epoch["hits_per_second"] > 0
    assert epoch["efficiency"] is None or 0 <= epoch["efficiency"] <= 1  # None: no object above the threshold


def test_the_smoke_run_trains_gravtrain_and_writes_json(tmp_path):
    results, stdout = smoke(tmp_path, "gravtrain")
    assert results["smoke"] and results["stacks"] == ["gravtrain"] and results["seeds"] == [42]
    [run] = results["runs"]
    check_run(run, "gravtrain")
    assert "gravtrain    42     1" in stdout


def test_the_smoke_run_trains_the_peer_where_it_is_installed(tmp_path):
    for module in ("torch", "torch_geometric", "torch_cluster", "object_condensation"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    results, stdout = smoke(tmp_path, "peer")  # (gravtrain's side: the test above)
    [run] = results["runs"]
    check_run(run, "peer")
    assert run["skipped_steps"] == 0
    assert results["peer_versions"]["object-condensation"] == "1.1.0"
    assert "     peer    42     1" in stdout
