"""GravNet forward+backward throughput (hits/s) per kNN backend, for one event of V hits.

One training-like step: ``out = GravNet(...)([x, row_splits])``, loss ``sum(out^2)``, gradients with respect to
all weights and x. Run in one ``tf.function`` with an input signature (one trace for all sizes); the function is
first warmed up on a small event, so no point pays for tracing or XLA tile compilation.

Usage::

    python benchmarks/gravnet_throughput.py [--sizes 1000,10000,50000,100000,200000] [--backends brute,kdtree]
        [--k 16] [--out benchmarks/results/gravnet_throughput.json]

Prints one JSON line per (backend, size) point and writes the list of points to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from gravtrain.layers import GravNet

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gravnet_throughput.json"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000,200000", help="hits per event, comma-separated")
    parser.add_argument("--backends", default="brute,kdtree", help="kNN backends, comma-separated")
    parser.add_argument("--k", type=int, default=16, help="neighbours K")
    parser.add_argument("--features", type=int, default=16, help="input features F")
    parser.add_argument("--dimensions", type=int, default=4, help="learned space S")
    parser.add_argument("--propagate", type=int, default=32, help="propagated features P")
    parser.add_argument("--filters", type=int, default=64, help="output filters")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="time each point for at least this long")
    parser.add_argument(
        "--max-step-seconds",
        type=float,
        default=float("inf"),
        help="skip the larger sizes of a backend once one step took longer than this",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file for all points")
    return parser.parse_args()


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} logical cores, {platform.processor() or platform.machine()})"


def make_step(layer: GravNet, n_features: int):
    @tf.function(
        input_signature=[tf.TensorSpec([None, n_features], tf.float32), tf.TensorSpec([None], tf.int32)]
    )
    def step(x, row_splits):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer([x, row_splits])[0]
            loss = tf.reduce_sum(tf.square(out))
        gradients = tape.gradient(loss, [x] + layer.trainable_variables)
        return loss, gradients

    return step


def time_step(step, x, row_splits, min_seconds: float):
    """Median seconds per step and the number of timed steps (at least one, then until min_seconds is reached)."""
    durations = []
    while not durations or sum(durations) < min_seconds:
        start = time.perf_counter()
        loss, gradients = step(x, row_splits)
        float(loss)  # wait for the results
        _ = [g.numpy() for g in gradients[:1]]
        durations.append(time.perf_counter() - start)
    return float(np.median(durations)), len(durations)


def main():
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    rng = np.random.default_rng(0)
    device = device_name()
    points = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        layer = GravNet(args.k, args.dimensions, args.filters, args.propagate, knn=backend)
        step = make_step(layer, args.features)
        for n_warm in (300, 3000):  # trace, and compile the tiles of small and large events, before timing
            warm = rng.normal(size=(n_warm, args.features)).astype(np.float32)
            step(tf.constant(warm), tf.constant([0, n_warm], tf.int32))
        for n_hits in sizes:
            x = tf.constant(rng.normal(size=(n_hits, args.features)).astype(np.float32))
            row_splits = tf.constant([0, n_hits], tf.int32)
            seconds, repeats = time_step(step, x, row_splits, args.min_seconds)
            point = {
                "benchmark": "gravnet_forward_backward",
                "backend": backend,
                "n_hits": n_hits,
                "n_events": 1,
                "k": args.k,
                "n_features": args.features,
                "n_dimensions": args.dimensions,
                "n_propagate": args.propagate,
                "n_filters": args.filters,
                "seconds_per_step": round(seconds, 4),
                "hits_per_second": round(n_hits / seconds, 1),
                "repeats": repeats,
                "device": device,
                "tensorflow": tf.__version__,
            }
            points.append(point)
            print(json.dumps(point), flush=True)
            args.out.write_text(json.dumps(points, indent=1) + "\n")
            if seconds > args.max_step_seconds:
                break


if __name__ == "__main__":
    main()
