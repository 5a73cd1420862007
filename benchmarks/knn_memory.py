"""Peak memory of ``select_knn`` for one event of V hits (default: brute backend, 100,000 hits).

On a GPU the peak comes from ``tf.config.experimental.get_memory_info``. On CPU each measurement runs in a fresh
subprocess and reads its maximum resident set size; a baseline subprocess does the same imports and builds the
same inputs without the kNN search, and the difference is what the search added. For scale: a dense V x V
float32 distance matrix would take 4 V^2 bytes (40 GB at V = 100,000).

Usage::

    python benchmarks/knn_memory.py [--hits 100000] [--k 16] [--dimensions 4] [--backend brute]
        [--out benchmarks/results/knn_memory.json]

Prints one JSON line and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "knn_memory.json"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--dimensions", type=int, default=4)
    parser.add_argument("--backend", default="brute")
    parser.add_argument("--child", choices=["baseline", "knn"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args()


def run_child(args) -> dict:
    """Inside the subprocess: build the inputs, run (or not) the search with its gradient, report peaks."""
    import numpy as np
    import tensorflow as tf

    from gravtrain.layers import select_knn

    coords = tf.constant(np.random.default_rng(0).normal(size=(args.hits, args.dimensions)).astype(np.float32))
    row_splits = tf.constant([0, args.hits], tf.int32)
    # Warm up (imports, tracing, XLA tile compilation) on a small event, in both children alike.
    small = tf.function(lambda c, r: select_knn(c, r, args.k, backend=args.backend))
    small(coords[:500], tf.constant([0, 500], tf.int32))
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    seconds = 0.0
    if args.child == "knn":

        @tf.function
        def search_and_gradient(c, r):
            with tf.GradientTape() as tape:
                tape.watch(c)
                nidx, dist_sq = select_knn(c, r, args.k, backend=args.backend)
                loss = tf.reduce_sum(dist_sq)
            return nidx, tape.gradient(loss, c)

        start = time.perf_counter()
        nidx, gradient = search_and_gradient(coords, row_splits)
        _ = nidx.numpy(), gradient.numpy()
        seconds = time.perf_counter() - start
    result = {"max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "seconds": seconds}
    if gpu:
        result["gpu_peak_bytes"] = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return result


def measure(args, child: str) -> dict:
    command = [sys.executable, __file__, "--child", child, "--hits", str(args.hits), "--k", str(args.k),
               "--dimensions", str(args.dimensions), "--backend", args.backend]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.child:
        print(json.dumps(run_child(args)), flush=True)
        return
    baseline = measure(args, "baseline")
    knn = measure(args, "knn")
    result = {
        "benchmark": "knn_peak_memory",
        "backend": args.backend,
        "n_hits": args.hits,
        "k": args.k,
        "n_dimensions": args.dimensions,
        "seconds": round(knn["seconds"], 2),
        "baseline_max_rss_mb": round(baseline["max_rss_bytes"] / 2**20, 1),
        "knn_max_rss_mb": round(knn["max_rss_bytes"] / 2**20, 1),
        "knn_added_rss_mb": round((knn["max_rss_bytes"] - baseline["max_rss_bytes"]) / 2**20, 1),
        "dense_distance_matrix_mb": round(4 * args.hits**2 / 2**20, 1),
    }
    if "gpu_peak_bytes" in knn:
        result["gpu_peak_mb"] = round(knn["gpu_peak_bytes"] / 2**20, 1)
        result["baseline_gpu_peak_mb"] = round(baseline["gpu_peak_bytes"] / 2**20, 1)
    print(json.dumps(result), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
