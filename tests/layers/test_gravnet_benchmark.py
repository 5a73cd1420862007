"""``benchmarks/gravnet_vs_pyg.py`` in its smoke size (1,000 hits, gravtrain alone, one process), so the
benchmark's code cannot rot; and its event generator and work count."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gravnet_vs_pyg.py"
SPEC = importlib.util.spec_from_file_location("gravnet_vs_pyg", SCRIPT)
bench = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = bench  # its dataclass looks its module up there
SPEC.loader.exec_module(bench)


def test_events_mix_dense_blobs_and_uniform_noise():
    config = bench.CONFIGS["B"]
    x = bench.make_event(4000, config)
    assert x.shape == (4000, 64) and x.dtype == np.float32
    space = x[:, : config.n_dimensions]
    assert np.all(np.abs(space) < 1.2)
    # Blob hits have a neighbour within 0.05, uniform noise in 4-D mostly does not.
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(space).query(space, k=2)
    close = np.mean(distance[:, 1] < 0.05)
    assert 0.7 <= close <= 0.85, close


def test_the_work_only_gravtrain_does_is_small():
    assert bench.work_difference(bench.CONFIGS["B"])["gravtrain_extra_fraction_of_gather"] < 0.03
    assert bench.work_difference(bench.CONFIGS["paper"])["gravtrain_extra_fraction_of_gather"] < 0.05


def test_the_smoke_run_measures_gravtrain_and_writes_json(tmp_path):
    out = tmp_path / "smoke.json"
    completed = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--layers", "gravtrain", "--out", str(out)],
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    [point] = results["points"]
    assert point["config"] == "B" and point["n_hits"] == 1000 and "pyg" not in point
    gravtrain = point["gravtrain"]
    assert 0 < gravtrain["knn_median_seconds"] and 0 < gravtrain["median_seconds"] < 60
    assert gravtrain["hits_per_second"] > 0 and gravtrain["rounds"] == 1
    assert results["configs"]["B"]["k"] == 64
    assert "B    1000 hits  gravtrain median" in completed.stdout
