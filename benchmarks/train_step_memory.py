"""What one training step of a config holds in memory: the allocator's peak and the tensors alive at that peak.

The step and its batch are those of ``train_step_profile.py`` (same arguments: the config on toy events of about
``--hits`` hits, ``--events-per-batch`` to a batch). TensorFlow's CPU allocator is switched to its BFC allocator
(``TF_CPU_ALLOCATOR_USE_BFC=true``, set before TensorFlow is imported), whose allocations the profiler records;
after a warm-up step (tracing), one step runs under the profiler and its ``memory_profile`` tool gives the peak
bytes in use and the allocations alive at that moment, each with the op that made it. They are summed by the
model layer of that op (layer names with their numbers replaced by ``#``, so ``gravnet_#`` is all GravNet
iterations), forward (kept for the backward pass) and backward (the gradients being formed) apart.

An allocation is named after the op that allocated it; an op that writes its output into its input's buffer
(TensorFlow forwards buffers) leaves the name of the op before it, so read the names as "near this op".

Usage::

    python benchmarks/train_step_memory.py [--config configs/hgcal.yaml] [--hits 20000]
        [--events-per-batch 1] [--set KEY=VALUE ...] [--top 25] [--out benchmarks/results/train_step_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"  # before TensorFlow is imported (by train_step_profile)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_step_profile as profile  # noqa: E402
from train_step_profile import REPO, OpSorter, prepare, profiled_step  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "train_step_memory.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "hgcal.yaml")
    parser.add_argument("--hits", type=int, default=20000, help="about this many hits per event")
    parser.add_argument("--events-per-batch", type=int, default=1, help="events of --hits hits in the step's batch")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--top", type=int, default=25, help="list this many of the largest allocations")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def memory_profile(step, batch, logdir: str) -> dict:
    """The BFC allocator's part of the profiler's memory_profile of one step."""
    allocators = profiled_step(step, batch, logdir, "memory_profile")["memoryProfilePerAllocator"]
    if not allocators:
        raise RuntimeError("the memory profile has no allocator: is TF_CPU_ALLOCATOR_USE_BFC honoured?")
    return max(allocators.values(), key=lambda a: int(a["profileSummary"]["peakStats"]["peakBytesInUse"]))


def alive_at_peak(allocator: dict) -> list[dict]:
    """The allocations alive at the allocator's peak: bytes, op name, shape and type."""
    snapshots, alive = allocator["memoryProfileSnapshots"], []
    for allocation in allocator["activeAllocations"]:
        index = int(allocation["snapshotIndex"])
        if index < 0:  # an allocation made before the profile started: no op known
            continue
        metadata = snapshots[index]["activityMetadata"]
        alive.append({"bytes": int(metadata.get("allocationBytes", 0)) * int(allocation.get("numOccurrences", 1)),
                      "op": metadata.get("tfOpName", ""), "shape": metadata.get("tensorShape", ""),
                      "dtype": metadata.get("dataType", "")})
    return sorted(alive, key=lambda a: -a["bytes"])


def main(argv=None) -> int:
    args = parse_args(argv)
    prepared = prepare(args)
    model, step, batch, n_hits = prepared.model, prepared.step, prepared.batch, prepared.n_hits
    started = time.perf_counter()
    float(step.train_step(batch)["objective"])
    warm_up = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as logdir:
        allocator = memory_profile(step.train_step, batch, logdir)
    peak = int(allocator["profileSummary"]["peakStats"]["peakBytesInUse"])
    alive = alive_at_peak(allocator)
    sorter = OpSorter(model, prepared.config.Optimizer.name)
    by_layer = defaultdict(int)
    for allocation in alive:
        layer = sorter.layer(allocation["op"])
        name = re.sub(r"\d+", "#", layer.name) if layer is not None else "outside the model's layers"
        part = "backward" if allocation["op"].startswith("gradient_tape/") else "forward"
        by_layer[f"{name} ({part})"] += allocation["bytes"]
    alive_total = sum(a["bytes"] for a in alive)
    result = {
        "benchmark": "train_step_memory", "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(
            REPO) else args.config), "overrides": prepared.overrides, "batch_hits": n_hits,
        "batch_events": prepared.n_events, "warm_up_seconds": round(warm_up, 2),
        "allocator_peak_gb": round(peak / 1e9, 4), "allocator_peak_bytes_per_hit": round(peak / n_hits),
        "alive_at_peak_gb": round(alive_total / 1e9, 4),
        "alive_at_peak_by_layer": {name: {"bytes_per_hit": round(value / n_hits),
                                          "share": round(value / max(alive_total, 1), 4)}
                                   for name, value in sorted(by_layer.items(), key=lambda item: -item[1])},
        "largest": [{**a, "bytes_per_hit": round(a["bytes"] / n_hits)} for a in alive[:args.top]],
        "peak_rss_gb": round(profile.peak_rss_gb(), 3),
        "machine": profile.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(f"allocator peak {peak / 1e9:.3f} GB = {peak / n_hits / 1e3:.1f} kB per hit ({n_hits} hits); alive at the "
          f"peak, by layer:")
    for name, value in list(result["alive_at_peak_by_layer"].items())[:15]:
        print(f"  {100 * value['share']:5.1f} %  {value['bytes_per_hit']:7d} B/hit  {name}")
    print("largest allocations:")
    for allocation in result["largest"]:
        print(f"  {allocation['bytes_per_hit']:7d} B/hit  {allocation['dtype']:<6} {allocation['shape']:<16} "
              f"{allocation['op'][:90]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
