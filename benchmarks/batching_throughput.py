"""Throughput of hit-budget batching through tf.data: hits/s and batches/s, iterating whole epochs.

Usage: python benchmarks/batching_throughput.py [--events 1000] [--batch-size 40000] [--epochs 3]
                                                [--out benchmarks/results/batching_throughput.json]

Simulates ``--events`` default toy events (not timed), then times iterating ``--epochs`` epochs of
``HitBudgetBatcher.dataset`` in eager mode, touching each batch with a traced ``tf.function`` (a reduction per
array) so every tensor is really produced. Reports the first epoch separately (it includes tracing and the
tf.data warm-up). Writes one JSON line to stdout and to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from gravtrain.data import simulate_events  # noqa: E402
from gravtrain.data.batching import HitBudgetBatcher, batch_element_spec  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "batching_throughput.json"


@tf.function(input_signature=[batch_element_spec()])
def touch_batch(batch):
    """Sum of every array of the batch, so the pipeline cannot skip producing any of them."""
    return tf.add_n([tf.reduce_sum(tf.cast(value, tf.float32)) for value in batch.values()])


def measure_batching_throughput(n_events: int, batch_size: int, n_epochs: int, seed: int) -> dict:
    store = simulate_events(n_events, seed=seed)
    batcher = HitBudgetBatcher(store, batch_size=batch_size, seed=seed)
    epoch_seconds, epoch_hits, epoch_batches = [], [], []
    for epoch in range(n_epochs):
        start, hits, batches = time.perf_counter(), 0, 0
        for batch in batcher.dataset(epoch):
            touch_batch(batch)
            hits += int(batch["features"].shape[0])
            batches += 1
        epoch_seconds.append(time.perf_counter() - start)
        epoch_hits.append(hits)
        epoch_batches.append(batches)
    steady = slice(1, None) if n_epochs > 1 else slice(0, None)
    steady_seconds, steady_hits = sum(epoch_seconds[steady]), sum(epoch_hits[steady])
    return {
        "benchmark": "batching_throughput",
        "events": n_events,
        "hits_per_epoch": epoch_hits[0],
        "batch_size_hits": batch_size,
        "batches_per_epoch": epoch_batches[0],
        "mean_fill": round(epoch_hits[0] / (epoch_batches[0] * batch_size), 3),
        "skipped_events": int(len(batcher.skipped_events)),
        "epochs": n_epochs,
        "epoch_s": [round(s, 3) for s in epoch_seconds],
        "steady_hits_per_s": round(steady_hits / steady_seconds),
        "steady_batches_per_s": round(sum(epoch_batches[steady]) / steady_seconds, 1),
        "first_epoch_hits_per_s": round(epoch_hits[0] / epoch_seconds[0]),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=40000, help="budget in hits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = measure_batching_throughput(args.events, args.batch_size, args.epochs, args.seed)
    line = json.dumps(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")
    sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
