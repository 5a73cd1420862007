"""Where one training step of a config goes: input pipeline, kNN, aggregation, dense, batch norm, loss, backward,
optimizer; and the step's hits/s and peak memory.

The config (``configs/hgcal.yaml`` by default) is trained on toy events instead of its files: ``--hits`` sets the
toy's particles and noise so that an event has about that many hits, and a batch is ``--events-per-batch`` such
events (default one; e.g. three events of 50,000 hits for the memory of 150,000-hit batches). The step is the
one training uses (``gravtrain.training.step.TrainingStep``, the config's model, loss and optimizer).

1. Input pipeline: seconds per batch of ``HitBudgetBatcher.dataset`` (the tf.data pipeline), measured alone.
2. The step: after a warm-up step (tracing), ``--steps`` timed steps; their median, hits/s, and the process's
   peak RSS (and what the steps added to the RSS before the first one).
3. The breakdown: one more step under TensorFlow's profiler (its op table: the 500 ops of most time); each
   op's self time (summed over threads, so these are shares of the op time, not of the wall time) is put in one
   part by its name scope, forward and backward (``gradient_tape/...``, and the sums of a weight's gradients)
   apart; and, second breakdown, in the class of the layer it belongs to, forward and backward together:

   - ``kNN``: ``select_knn`` (the k-d tree query and the distances of the found pairs);
   - ``aggregation``: ``weighted_neighbour_mean_max`` (gather, weights, mean and max), in GravNet and message
     passing;
   - ``batch norm``: the gooey batch-norm layers;
   - ``dense``: the rest of the model's layers (projections, dense blocks, regularisers, heads, conditioning);
   - ``optimizer``: the update of the weights (the optimizer's scope);
   - ``loss``: everything else in the step (the loss, the NaN guard's checks, the metrics).

Usage::

    python benchmarks/train_step_profile.py [--config configs/hgcal.yaml] [--hits 50000] [--steps 3]
        [--events-per-batch 1] [--aggregation auto] [--set KEY=VALUE ...] [--all-ops ops.json]
        [--out benchmarks/results/train_step_profile.json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine as common_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "train_step_profile.json"
PARTS = ("input pipeline", "kNN", "aggregation", "dense", "batch norm", "loss", "backward", "optimizer")
#: The share of noise hits in the toy events (the rest come from particles; see `toy_overrides`).
NOISE_SHARE = 0.2


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "hgcal.yaml")
    parser.add_argument("--hits", type=int, default=50000, help="about this many hits per event and batch")
    parser.add_argument("--events-per-batch", type=int, default=1, help="events of --hits hits in the step's batch")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the warm-up")
    parser.add_argument("--aggregation", default=None, help="the layers' aggregation implementation (default auto)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--all-ops", type=Path, default=None, help="also write every op's time to this JSON file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def toy_overrides(n_hits: int, n_events: int = 3, seed: int = 7) -> list[str]:
    """Toy settings for ``n_events`` training events of about ``n_hits`` hits: a fifth noise, the rest from
    particles of 20-200 GeV (their hits per particle are counted on a few simulated ones)."""
    from gravtrain.data import simulate_events

    sample = simulate_events(3, n_particles=(10, 10), energy_range=(20.0, 200.0), noise_hits=0, seed=seed)
    hits_per_particle = sample.n_hits / (3 * 10)
    n_particles = max(1, round((1 - NOISE_SHARE) * n_hits / hits_per_particle))
    return ["Data.source=toy", f"Data.toy.n_train_events={n_events}", "Data.toy.n_val_events=1",
            f"Data.toy.n_particles=[{n_particles}, {n_particles}]", "Data.toy.energy_range=[20.0, 200.0]",
            f"Data.toy.noise_hits={round(NOISE_SHARE * n_hits)}", f"Data.toy.seed={seed}"]


@dataclass(frozen=True)
class OpPlace:
    """Where an op belongs: its part (`PARTS`), whether it is of the backward pass, its layer's class."""

    part: str
    backward: bool
    layer_class: str


class OpSorter:
    """Sorts profiled ops into parts by their name scopes (the module docstring's rules)."""

    def __init__(self, model, optimizer_name: str):
        self.model_name = model.name
        self.layers = {layer.name: layer for layer in model._flatten_layers(include_self=False, recursive=True)}
        self.optimizer_name = optimizer_name.lower()

    def _layer(self, scopes):
        for scope in scopes[:3]:
            for name in (scope, re.sub(r"_\d+$", "", scope)):  # Keras numbers each call's scope: gravnet_0_1
                if name in self.layers:
                    return self.layers[name]
        return None

    def _scopes(self, op_name: str) -> tuple[list[str], bool]:
        """The op's name scopes inside the model, and whether it is of the backward pass."""
        scopes = op_name.split("/")
        backward = scopes[0] == "gradient_tape"
        if backward:
            scopes = scopes[1:]
        if scopes and scopes[0].startswith(self.model_name):
            scopes = scopes[1:]
        return scopes, backward

    def layer(self, op_name: str):
        """The model's layer whose call made the op, or None."""
        return self._layer(self._scopes(op_name)[0])

    def place(self, op_name: str) -> OpPlace:
        scopes, backward = self._scopes(op_name)
        layer = self._layer(scopes)
        layer_class = type(layer).__name__ if layer is not None else "outside the model"
        functions = {re.sub(r"_\d+$", "", scope) for scope in scopes}  # a second call's scope is numbered
        if "select_knn" in functions:
            part = "kNN"
        elif "weighted_neighbour_mean_max" in functions:
            part = "aggregation"
        elif layer is not None:
            part = "batch norm" if "BatchNorm" in type(layer).__name__ else "dense"
        elif scopes and scopes[0].lower().startswith(self.optimizer_name):
            part = "optimizer"
        elif scopes and re.fullmatch(r"AddN(_\d+)?", scopes[0]):  # the sum of a weight's gradients
            part, backward = "dense", True
        else:
            part = "loss"
        return OpPlace(part, backward, layer_class)


def profiled_step(step, batch, logdir: str, tool: str):
    """One step under TensorFlow's profiler, and what its ``tool`` (``"framework_op_stats"``,
    ``"memory_profile"``, ...) makes of the trace, parsed from JSON."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    tf.profiler.experimental.start(logdir)
    float(step(batch)["objective"])
    tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    data, ok = plugin.xspace_to_tools_data(paths, tool, {})
    if not ok:
        raise RuntimeError(f"TensorFlow's profiler gave no {tool}: {data[:200]!r}")
    return json.loads(data)


def profile_ops(step, batch, logdir: str) -> list[dict]:
    """Per op: name, type and self time in microseconds, from one step under the profiler."""
    table = profiled_step(step, batch, logdir, "framework_op_stats")[0]
    columns = [column["id"] for column in table["cols"]]
    rows = [dict(zip(columns, (cell.get("v") for cell in row["c"]))) for row in table["rows"]]
    return [{"name": row["operation"], "type": row["type"], "self_us": float(row["total_self_time"])}
            for row in rows if row["type"] != "IDLE"]


def machine() -> dict:
    """What the step benchmarks' JSON says of the machine: CPU, cores, load, TensorFlow and the GPUs it sees."""
    return common_machine(tensorflow=tf.__version__,
                          gpus=[device.name for device in tf.config.list_logical_devices("GPU")])


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def current_rss_gb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


@dataclass
class PreparedStep:
    """A config's training step on toy events, ready to run: what `prepare` returns."""

    config: object
    overrides: list
    model: object
    step: object
    batch: dict
    event_sizes: list
    pipeline_seconds: float

    @property
    def n_hits(self) -> int:
        return int(self.batch["features"].shape[0])

    @property
    def n_events(self) -> int:
        return int(self.batch["row_splits"].shape[0]) - 1


def prepare(args) -> PreparedStep:
    """The step of ``args.config`` (its model, loss and optimizer) and its largest batch of toy events of about
    ``args.hits`` hits, ``args.events_per_batch`` to a batch (``args.set``: more overrides)."""
    from gravtrain.config import load_config
    from gravtrain.data import FeatureStats, load_event_sets
    from gravtrain.data.batching import HitBudgetBatcher
    from gravtrain.model import build_training_parts
    from gravtrain.training.step import TrainingStep

    if args.events_per_batch < 1:
        raise SystemExit("--events-per-batch must be at least 1")
    overrides = toy_overrides(args.hits, max(3, args.events_per_batch)) + args.set
    config = load_config(args.config, overrides + [f"Training.0.batch_size={4 * args.hits}"])
    train_store, _ = load_event_sets(config.Data)
    budget = int(sum(sorted(train_store.event_sizes)[-args.events_per_batch:]))  # room for that many events
    config = load_config(args.config, overrides + [f"Training.0.batch_size={budget}"])
    stats = FeatureStats.from_store(train_store)
    parts = build_training_parts(config, stats)
    model = parts.model
    step = TrainingStep(model, parts.loss, parts.optimizer, recompute=config.Training[0].recompute)
    batcher = HitBudgetBatcher(train_store, config.Training[0].batch_size, seed=0, shuffle=False)

    started, batches = time.perf_counter(), []
    for batch in batcher.dataset(0):
        batches.append(batch)
    pipeline_seconds = (time.perf_counter() - started) / len(batches)
    batch = max(batches, key=lambda b: int(b["features"].shape[0]))
    prepared = PreparedStep(config, overrides, model, step, batch, list(train_store.event_sizes), pipeline_seconds)
    print(f"config {args.config.name}, events of {', '.join(str(s) for s in prepared.event_sizes)} hits; "
          f"the step's batch: {prepared.n_hits} hits in {prepared.n_events} event(s)", flush=True)
    return prepared


def main(argv=None) -> int:
    args = parse_args(argv)
    from gravtrain.layers import aggregation

    if args.aggregation:
        aggregation.AGGREGATION = args.aggregation
    prepared = prepare(args)
    config, overrides, model, step, batch = (prepared.config, prepared.overrides, prepared.model, prepared.step,
                                             prepared.batch)
    n_hits, n_events, pipeline_seconds = prepared.n_hits, prepared.n_events, prepared.pipeline_seconds

    rss_before = current_rss_gb()
    started = time.perf_counter()
    float(step.train_step(batch)["objective"])
    warm_up = time.perf_counter() - started
    seconds = []
    for _ in range(args.steps):
        started = time.perf_counter()
        float(step.train_step(batch)["objective"])
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)

    with tempfile.TemporaryDirectory() as logdir:
        ops = profile_ops(step.train_step, batch, logdir)
    sorter = OpSorter(model, config.Optimizer.name)
    forward, backward, by_class = defaultdict(float), defaultdict(float), defaultdict(float)
    for op in ops:
        place = sorter.place(op["name"])
        (backward if place.backward else forward)[place.part] += op["self_us"]
        by_class[place.layer_class] += op["self_us"]
    op_total = sum(op["self_us"] for op in ops)
    shares = {part: {"forward": round(forward[part] / op_total, 4), "backward": round(backward[part] / op_total, 4)}
              for part in PARTS if part not in ("input pipeline", "backward")}
    class_shares = {name: round(value / op_total, 4) for name, value in sorted(by_class.items(), key=lambda i: -i[1])}
    top_ops = sorted(ops, key=lambda op: -op["self_us"])[:15]

    result = {
        "benchmark": "train_step_profile",
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "overrides": overrides, "aggregation": aggregation.AGGREGATION, "batch_hits": n_hits,
        "batch_events": n_events,
        "warm_up_seconds": round(warm_up, 2), "step_median_seconds": round(median, 3),
        "step_seconds": [round(s, 3) for s in seconds], "hits_per_second": round(n_hits / median, 1),
        "input_pipeline_seconds_per_batch": round(pipeline_seconds, 3),
        "op_time_shares": shares, "op_time_shares_by_layer_class": class_shares,
        "op_seconds_total": round(op_total / 1e6, 3),
        "backward_share": round(sum(backward.values()) / op_total, 4), "ops_profiled": len(ops),
        "top_ops": [{**op, "part": sorter.place(op["name"]).part} for op in top_ops],
        "rss_before_first_step_gb": round(rss_before, 3), "peak_rss_gb": round(peak_rss_gb(), 3),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(f"step {median:.2f} s (median of {args.steps}; warm-up {warm_up:.1f} s): {n_hits / median:,.0f} hits/s; "
          f"input pipeline {pipeline_seconds:.3f} s per batch; peak RSS {result['peak_rss_gb']:.2f} GB "
          f"({result['peak_rss_gb'] - rss_before:+.2f} GB over the built model and data)")
    print("share of op time, forward + backward: " + ", ".join(
        f"{part} {100 * v['forward']:.1f} + {100 * v['backward']:.1f} %" for part, v in shares.items()))
    print("by layer class (forward and backward): " + ", ".join(
        f"{name} {100 * share:.1f} %" for name, share in class_shares.items()))
    for op in result["top_ops"][:8]:
        print(f"  {op['self_us'] / 1e6:7.3f} s  {op['part']:<12} {op['type']:<24} {op['name'][:90]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.all_ops:
        args.all_ops.write_text(json.dumps(sorted(ops, key=lambda op: -op["self_us"]), indent=0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
