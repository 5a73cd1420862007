"""Speed of the toy calorimeter simulator on one core: events/s and hits/s.

Usage: python benchmarks/simulation_speed.py [--events 1000] [--seed 1] [--out benchmarks/results/simulation_speed.json]

Simulates ``--events`` events at the default ``Data.toy`` settings (2-10 particles, 1-200 GeV, 200 noise
hits, tracks) in one process with BLAS/OpenMP threads pinned to one, and writes one JSON line to stdout
and to ``--out``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from gravtrain.data import simulate_events  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "simulation_speed.json"


def measure_simulation_speed(n_events: int, seed: int) -> dict:
    """Wall and CPU time of simulating ``n_events`` default toy events, with rates and event sizes."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    store = simulate_events(n_events, seed=seed)
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    sizes = store.event_sizes
    return {
        "benchmark": "simulation_speed",
        "events": n_events,
        "hits": store.n_hits,
        "hits_per_event_mean": float(sizes.mean()),
        "hits_per_event_p5_p50_p95": [float(v) for v in np.percentile(sizes, [5, 50, 95])],
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(n_events / wall, 1),
        "hits_per_s": round(store.n_hits / wall),
        "seed": seed,
        "numpy": np.__version__,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = measure_simulation_speed(args.events, args.seed)
    line = json.dumps(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")
    sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
