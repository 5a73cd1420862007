"""gravtrain's GravNet layer against PyTorch Geometric's ``GravNetConv`` (kNN by torch-cluster), forward+backward.

Both layers get the same event, the same widths and the same number of gathered neighbours k:

- gravtrain: ``GravNet(n_neighbours=k, ...)``, kNN backend ``kdtree`` (what ``auto`` takes on CPU for events
  above 512 hits); its kNN returns the hit itself and k others, and it aggregates over the k others. It puts
  the hits in the k-d tree's order for the graph and the aggregation (``select_knn_spatially_ordered``), and
  its "kNN alone" below is that ordered search, as the layer runs it.
- PyG: ``GravNetConv(in, out, space_dimensions=S, propagate_dimensions=P, k=k)``; torch-cluster's kNN counts
  the hit itself among its k, and the aggregation runs over all k (the hit included).

So each layer gathers k rows of P features per hit. What else differs, all O(V x P) or O(V x F) elementwise
work beside the O(V x k x P) gather and reductions: gravtrain applies elu to the propagated features, relu to
the output, and subtracts f_i from mean and max (``out = relu(W [mean - f, max - f, x] + b)``); PyG has no
activation and ``out = W1 x + W2 [mean, max] + b``. `work_difference` counts these extra operations: 2.6 % of the
gather's in configuration B, 4.3 % in the paper's; they are written with the results.

Events: a mixture of dense shower-like blobs (75 % of the hits, 200 hits each, Gaussian in the first S input
features) and uniform noise (25 %), with the other input features random. Each (size, layer) point is measured
in a fresh process, A B A B alternating, each with ``--threads`` threads (TensorFlow intra- and inter-op, torch
``set_num_threads``; SciPy's k-d tree queries with all cores, which is the same number on the 2-core machine
this was written for). A process builds its layer, warms it up on the same event (tracing, first allocation),
then times ``--steps`` steps and reports its fastest; also the kNN query alone, and what the steps add to the
process's memory (peak RSS minus the RSS before the first step, with the layer and the event in memory).
Per point: median and minimum over the rounds, hits/s, the median of the per-round ratios PyG / gravtrain, and
gravtrain's layer time over its own kNN time.

Usage::

    python benchmarks/gravnet_vs_pyg.py [--sizes 1000,10000,50000,100000,200000] [--configs B,paper]
        [--rounds 6] [--steps 2] [--threads 2] [--layers gravtrain,pyg] [--aggregation auto]
        [--out benchmarks/results/gravnet_vs_pyg.json]
    python benchmarks/gravnet_vs_pyg.py --smoke      # 1,000 hits, one round; gravtrain alone if PyG is missing

The peer is not a dependency of gravtrain and this script installs nothing: docs/benchmarks.md says how to install
its ``torch``, ``torch_geometric`` and ``torch-cluster``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gravnet_vs_pyg.json"
LAYERS = ("gravtrain", "pyg")


@dataclass(frozen=True)
class LayerConfig:
    """Widths of one comparison: F input features, S space dimensions, P propagated, F_out outputs, k."""

    name: str
    n_features: int
    n_dimensions: int
    n_propagate: int
    n_filters: int
    k: int


CONFIGS = {
    "B": LayerConfig("B", n_features=64, n_dimensions=4, n_propagate=32, n_filters=64, k=64),
    # The paper's layer (Qasim et al. 2019): S = 4, F_LR = 22, F_out = 48, k = 40, with 32 input features.
    "paper": LayerConfig("paper", n_features=32, n_dimensions=4, n_propagate=22, n_filters=48, k=40),
}

#: Hits per dense blob, and the fraction of hits in blobs (the rest is uniform noise).
BLOB_HITS, BLOB_FRACTION = 200, 0.75


def make_event(n_hits: int, config: LayerConfig, seed: int = 0) -> np.ndarray:
    """(n_hits, F) float32 inputs: blobs and noise in the first S features, the others standard normal."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_hits, config.n_features)).astype(np.float32)
    n_blob_hits = int(BLOB_FRACTION * n_hits)
    n_blobs = max(1, n_blob_hits // BLOB_HITS)
    centres = rng.uniform(-1.0, 1.0, size=(n_blobs, config.n_dimensions))
    blob = rng.integers(0, n_blobs, size=n_blob_hits)
    space = np.concatenate([
        centres[blob] + rng.normal(scale=0.02, size=(n_blob_hits, config.n_dimensions)),
        rng.uniform(-1.0, 1.0, size=(n_hits - n_blob_hits, config.n_dimensions)),
    ])
    x[:, : config.n_dimensions] = space[rng.permutation(n_hits)]
    return x


def work_difference(config: LayerConfig) -> dict:
    """Operations per hit that both layers do, and what only gravtrain does (PyG does nothing gravtrain does not).

    Both: the dense maps (W_s: F x S, W_f: F x P, and F_out outputs from F + 2P inputs, as W_o in gravtrain and
    lin_out1 + lin_out2 in PyG) and, per gathered row, a multiply by the weight, an add to the sum and a compare
    for the max of P features. gravtrain only: elu on P features, mean - f and max - f, relu on F_out outputs.
    """
    k, p, f, s, out = config.k, config.n_propagate, config.n_features, config.n_dimensions, config.n_filters
    gather = 3 * k * p
    dense = 2 * (f * s + f * p + (f + 2 * p) * out)
    gravtrain_only = 3 * p + out
    return {"gather_ops_per_hit": gather, "dense_flops_per_hit": dense, "gravtrain_only_ops_per_hit": gravtrain_only,
            "gravtrain_extra_fraction_of_gather": round(gravtrain_only / gather, 4)}


# ------------------------------------------------------------------------------------------------ one process


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def current_rss_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


def measure_gravtrain(n_hits: int, config: LayerConfig, steps: int, threads: int,
                      implementation: str | None = None) -> dict:
    """Fastest of ``steps`` forward+backward steps of gravtrain's GravNet, its kNN alone, and memory."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    from gravtrain.layers import GravNet, aggregation
    from gravtrain.layers.knn import select_knn_spatially_ordered

    if implementation:
        aggregation.AGGREGATION = implementation

    x = tf.constant(make_event(n_hits, config))
    row_splits = tf.constant([0, n_hits], tf.int32)
    layer = GravNet(config.k, config.n_dimensions, config.n_filters, config.n_propagate, knn="kdtree")
    layer([x[:8], tf.constant([0, 8], tf.int32)])
    signature = [tf.TensorSpec([None, config.n_features], tf.float32), tf.TensorSpec([None], tf.int32)]

    @tf.function(input_signature=signature)
    def step(x, row_splits):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = layer([x, row_splits])[0]
            loss = tf.reduce_sum(tf.square(out))
        return loss, tape.gradient(loss, [x] + layer.trainable_variables)

    @tf.function(input_signature=signature)
    def knn(x, row_splits):
        return select_knn_spatially_ordered(layer.coordinate_projection(x), row_splits, config.k, "kdtree")[2]

    def run(function):
        return [value.numpy() for value in tf.nest.flatten(function(x, row_splits))]

    return _timed(run, step, knn, steps)


def measure_pyg(n_hits: int, config: LayerConfig, steps: int, threads: int) -> dict:
    """The same for PyTorch Geometric's GravNetConv with torch-cluster's kNN."""
    import torch
    from torch_cluster import knn as cluster_knn
    from torch_geometric.nn import GravNetConv

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.from_numpy(make_event(n_hits, config)).requires_grad_(True)
    layer = GravNetConv(config.n_features, config.n_filters, space_dimensions=config.n_dimensions,
                        propagate_dimensions=config.n_propagate, k=config.k)

    def step():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        loss = layer(x).square().sum()
        loss.backward()
        return loss

    def knn():
        with torch.no_grad():
            space = layer.lin_s(x)
            return cluster_knn(space, space, config.k)

    def run(function):
        result = function()
        return result.detach() if hasattr(result, "detach") else result

    return _timed(run, step, knn, steps)


def _timed(run, step, knn, steps: int) -> dict:
    rss_before = current_rss_gb()  # the layer built and the event in memory; the peak comes in the steps
    run(knn)
    run(step)  # warm-up: tracing, first allocation
    step_seconds, knn_seconds = [], []
    for _ in range(steps):
        started = time.perf_counter()
        run(step)
        step_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        run(knn)
        knn_seconds.append(time.perf_counter() - started)
    return {"step_seconds": min(step_seconds), "knn_seconds": min(knn_seconds),
            "rss_before_step_gb": round(rss_before, 3), "peak_rss_gb": round(peak_rss_gb(), 3)}


def child_main(args) -> None:
    config = CONFIGS[args.config]
    if args.child == "gravtrain":
        result = measure_gravtrain(args.size, config, args.steps, args.threads, args.aggregation)
    else:
        result = measure_pyg(args.size, config, args.steps, args.threads)
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ the driver


def peer_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "torch_geometric", "torch_cluster"))


def run_child(layer: str, n_hits: int, config: str, steps: int, threads: int, aggregation: str | None) -> dict:
    command = [sys.executable, __file__, "--child", layer, "--size", str(n_hits), "--config", config,
               "--steps", str(steps), "--threads", str(threads)]
    if aggregation:
        command += ["--aggregation", aggregation]
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run(command, capture_output=True, text=True, env=environment)
    if completed.returncode != 0:
        raise RuntimeError(f"{layer} at {n_hits} hits failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summarise(samples: list[dict], n_hits: int) -> dict:
    steps = [s["step_seconds"] for s in samples]
    return {
        "median_seconds": round(statistics.median(steps), 4),
        "min_seconds": round(min(steps), 4),
        "hits_per_second": round(n_hits / statistics.median(steps), 1),
        "knn_median_seconds": round(statistics.median(s["knn_seconds"] for s in samples), 4),
        "peak_rss_gb": max(s["peak_rss_gb"] for s in samples),
        "step_adds_gb": round(max(s["peak_rss_gb"] - s["rss_before_step_gb"] for s in samples), 3),
        "rounds": len(samples),
    }


def compare(config_name: str, n_hits: int, rounds: int, steps: int, threads: int, layers,
            aggregation: str | None = None) -> dict:
    samples = {layer: [] for layer in layers}
    for round_index in range(rounds):
        order = layers if round_index % 2 == 0 else tuple(reversed(layers))  # A B, B A, ...
        for layer in order:
            samples[layer].append(run_child(layer, n_hits, config_name, steps, threads, aggregation))
    point = {"config": config_name, "n_hits": n_hits, **{layer: summarise(samples[layer], n_hits) for layer in layers},
             "samples": samples}
    if "pyg" in layers:
        # Per-round ratios (each round's two processes ran back to back), their median: robust to a busy machine.
        ratios = [p["step_seconds"] / g["step_seconds"] for g, p in zip(samples["gravtrain"], samples["pyg"])]
        point["gravtrain_faster_by"] = round(statistics.median(ratios), 3)
    gravtrain = point["gravtrain"]
    point["gravtrain_layer_over_knn"] = round(gravtrain["median_seconds"] / gravtrain["knn_median_seconds"], 3)
    return point


def line(point: dict) -> str:
    g = point["gravtrain"]
    text = (f"{point['config']:>5} {point['n_hits']:>7} hits  gravtrain median {g['median_seconds']:.3f} s "
            f"(min {g['min_seconds']:.3f}, {g['hits_per_second']:.0f} hits/s, kNN {g['knn_median_seconds']:.3f} s, "
            f"layer/kNN {point['gravtrain_layer_over_knn']:.2f}, step adds {g['step_adds_gb']:.2f} GB)")
    if "pyg" in point:
        p = point["pyg"]
        text += (f"  PyG median {p['median_seconds']:.3f} s (min {p['min_seconds']:.3f}, kNN "
                 f"{p['knn_median_seconds']:.3f} s, step adds {p['step_adds_gb']:.2f} GB)  gravtrain faster by "
                 f"{point['gravtrain_faster_by']:.2f}x")
    return text


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000,100000,200000", help="hits per event, comma-separated")
    parser.add_argument("--configs", default="B,paper", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=6, help="A B rounds per point (one process each)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per process (its fastest is kept)")
    parser.add_argument("--threads", type=int, default=2, help="threads per process for both frameworks")
    parser.add_argument("--layers", default=None,
                        help="comma-separated, of gravtrain, pyg (default: both, or gravtrain alone if PyG is missing)")
    parser.add_argument("--aggregation", default=None, help="gravtrain's aggregation implementation (default: auto)")
    parser.add_argument("--smoke", action="store_true", help="1,000 hits, one round, one step (a quick check)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file for all points")
    parser.add_argument("--child", choices=LAYERS, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.configs, args.rounds, args.steps = "1000", "B", 1, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if args.layers:
        layers = tuple(args.layers.split(","))
        unknown = set(layers) - set(LAYERS)
        if unknown:
            raise SystemExit(f"unknown --layers {', '.join(sorted(unknown))}; valid: {', '.join(LAYERS)}")
    else:
        layers = LAYERS if peer_available() else ("gravtrain",)
    if layers == ("gravtrain",) and not args.layers:
        print("PyTorch Geometric or torch-cluster is not installed: measuring gravtrain alone (see docs/benchmarks.md "
              "for the peer)", flush=True)
    results = {"benchmark": "gravnet_vs_pyg", "machine": machine(), "threads": args.threads, "rounds": args.rounds,
               "steps_per_process": args.steps, "aggregation": args.aggregation or "auto", "configs": {},
               "points": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for config_name in args.configs.split(","):
        config = CONFIGS[config_name]
        results["configs"][config_name] = {**asdict(config), "work": work_difference(config)}
        for n_hits in (int(size) for size in args.sizes.split(",")):
            point = compare(config_name, n_hits, args.rounds, args.steps, args.threads, layers, args.aggregation)
            results["points"].append(point)
            print(line(point), flush=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
