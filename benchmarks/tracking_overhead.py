"""What MLflow tracking costs: the same training with tracking on and with ``--no-tracking``, as a ratio.

Each repeat runs ``gravtrain.train`` in a fresh process (so neither run warms the other), alternating the two
modes, on a small toy config (one stage, ``--epochs`` epochs, records every batch and plots every
``--plot-frequency`` batches, so tracking is exercised harder than in the shipped configs). Two times per run:

- ``loop_seconds``: the training epochs (batches, records, plots, checkpoints, validation): the part the target
  is about;
- ``call_seconds``: the whole ``train`` call, including the start (params, tags, config artifacts) and the end
  (evaluation figures and the MLflow Keras model, which only a tracked run logs).

Usage::

    python benchmarks/tracking_overhead.py [--repeats 2] [--epochs 3] [--out benchmarks/results/tracking_overhead.json]

Prints one JSON line per run and a summary line with the median overhead (tracked / untracked - 1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tracking_overhead.json"

CONFIG = {
    "General": {"name": "overhead", "seed": 1},
    "Data": {"toy": {"n_train_events": 120, "n_val_events": 20, "n_particles": [2, 5], "noise_hits": 50}},
    "Architecture": {"gravnet": [{"n": 16}, {"n": 16}], "message_passing": [{"n": 32}, {"n": 16}],
                     "dense_pre_gravnet": [{"n": 64}], "dense_post_message_passing": [{"n": 64}],
                     "dense_final": [{"n": 64}]},
    "Training": [{"epochs": 3, "batch_size": 20000, "learning_rate": 1e-3}],
    "Plotting": {"record_frequency": 1, "plot_frequency": 20},
}

CHILD = """
import json, sys, time
import gravtrain
start = time.perf_counter()
result = gravtrain.train(sys.argv[1], tracking=sys.argv[2] == "on")
print(json.dumps({"call_seconds": time.perf_counter() - start, "loop_seconds": result.loop_seconds}))
"""


def run_once(config_path: Path, tracking: bool, workdir: Path) -> dict:
    output = subprocess.run([sys.executable, "-c", CHILD, str(config_path), "on" if tracking else "off"],
                            cwd=workdir, capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--plot-frequency", type=int, default=20)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    config = json.loads(json.dumps(CONFIG))
    config["Training"][0]["epochs"] = args.epochs
    config["Plotting"]["plot_frequency"] = args.plot_frequency
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        config_path = workdir / "overhead.yaml"
        config_path.write_text(yaml.safe_dump(config))
        for repeat in range(args.repeats):
            for tracking in (True, False) if repeat % 2 == 0 else (False, True):
                row = {"repeat": repeat, "tracking": tracking, **run_once(config_path, tracking, workdir)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    summary = {}
    for key in ("loop_seconds", "call_seconds"):
        on = median([r[key] for r in rows if r["tracking"]])
        off = median([r[key] for r in rows if not r["tracking"]])
        summary[key] = {"tracked": on, "untracked": off, "overhead": on / off - 1.0}
    print(json.dumps({"summary": summary}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": rows, "summary": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
