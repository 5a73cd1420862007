"""Training on several devices (``General.devices``), checked on two logical CPU devices.

The checks run in one process of their own (``tests/training/multi_device_checks.py``: the devices must exist
before TensorFlow starts), which prints one JSON line of results. One process for all three, as one test, so
TensorFlow and its two devices start once (a process costs 10 to 20 s of the suite before its first check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run_checks(directory: Path) -> dict:
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "modules"), str(REPO)]))
    completed = subprocess.run([sys.executable, "-m", "tests.training.multi_device_checks", str(directory)],
                               capture_output=True, text=True, timeout=900, cwd=REPO, env=environment)
    assert completed.returncode == 0, completed.stderr[-4000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_two_devices_step_as_the_mean_of_one_for_every_family_and_train_end_to_end(tmp_path):
    results = run_checks(tmp_path)
    assert set(results) == {"oracle", "families", "end_to_end"}
    a_step_on_two_devices_is_the_mean_of_the_single_device_steps(results["oracle"])
    the_other_model_families_step_on_two_devices_as_on_one(results["families"])
    training_on_two_devices_end_to_end(results["end_to_end"])


def a_step_on_two_devices_is_the_mean_of_the_single_device_steps(result: dict) -> None:
    # With SGD, two devices, each with its batch, must give exactly the mean of two single-device steps from the
    # same weights and state: weights, batch-norm statistics, regularisers' records, the objective; with and
    # without recomputation, dropout and kernel regularisers on. Every device's copy agrees, one trace each.
    assert result.pop("traces") == {"False": 1, "True": 2}
    # Then a non-finite value on one device: no copy applies the step, and the state is restored on every device
    # (with the step already traced: one check process less).
    assert result.pop("nan_guard") == {"finite": 0.0, "difference": 0.0, "agree": True, "traces": 2}
    assert len(result) == 6
    for step, found in result.items():
        assert found["difference"] < 1e-12, step
        assert found["moved"] > 1e-3, step  # the step did change the weights
        assert found["objective"][0] == pytest.approx(found["objective"][1], rel=1e-12), step
        assert found["hits"][0] == found["hits"][1], step
        assert found["agree"], step


def the_other_model_families_step_on_two_devices_as_on_one(result: dict) -> None:
    assert set(result) == {"noise filter", "pre-pooling", "behind a noise filter"}
    for family, found in result.items():
        assert found["traces"] == {"False": 1}, family
        step = found["plain 0"]
        assert step["difference"] < 1e-12 and step["moved"] > 1e-3 and step["agree"], family
        # (the noise filter's cross-entropy is summed in float32)
        assert step["objective"][0] == pytest.approx(step["objective"][1], rel=1e-6), family
        assert step["hits"][0] == step["hits"][1], family


def training_on_two_devices_end_to_end(result: dict) -> None:
    assert result["status"] == "FINISHED" and result["devices_param"] == "2"
    assert result["stage_end_reasons"] == ["epochs", "epochs"] and result["epochs"] == [1, 2, 3]
    assert result["agree"] and result["restored_agree"]
    assert result["checkpoint_difference"] == 0.0 and result["checkpoint_step"] > 0
    assert result["reload_difference"] == 0.0  # the logged model, loaded back on one device
    assert result["efficiency"] is not None
    assert "General.devices: is 3, but TensorFlow sees 0 GPU(s)" in result["refused"]
