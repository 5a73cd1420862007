"""Training steps on N devices (``General.devices: N``) against one device, in one process: hits/s and their ratio.

Both train the same config from the same weights on the same toy batches, one event of about ``--hits`` hits
each: one device takes one batch per step, N devices N batches per step (one each). After a warm-up step each
(tracing), ``--rounds`` rounds alternate N single-device steps and one N-device step; the hits/s of each is its
hits over its time, summed over the rounds.

Where TensorFlow sees at least N GPUs the steps run on GPUs. Otherwise they run on N logical CPU devices, which
share the CPU's cores: then the ratio says what the strategy costs or gains on this CPU (the same cores do the
same work, plus the copies and the gradients' reduction; small steps that leave cores idle may overlap), not
what N GPUs would give.

Usage::

    python benchmarks/data_parallel_step.py [--config configs/toy.yaml] [--hits 20000] [--devices 2]
        [--rounds 3] [--set KEY=VALUE ...] [--out benchmarks/results/data_parallel_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "data_parallel_step.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step_profile import machine, toy_overrides  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "toy.yaml")
    parser.add_argument("--hits", type=int, default=20000, help="about this many hits per event and batch")
    parser.add_argument("--devices", type=int, default=2, help="N, the devices of the data-parallel step")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def use_devices(n: int) -> str:
    """``"GPU"`` when TensorFlow sees ``n`` GPUs; otherwise sets up ``n`` logical CPU devices and says ``"CPU"``
    (before TensorFlow's runtime starts)."""
    if len(tf.config.list_physical_devices("GPU")) >= n:
        return "GPU"
    tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                               [tf.config.LogicalDeviceConfiguration()] * n)
    return "CPU"


def build_step(config, stats, strategy):
    """The config's model, optimizer, loss and train step, on ``strategy``'s devices (None: one device)."""
    import keras

    from gravtrain.model import build_training_parts
    from gravtrain.training.step import TrainingStep

    keras.utils.set_random_seed(config.General.seed)
    parts = build_training_parts(config, stats, strategy)
    return TrainingStep(parts.model, parts.loss, parts.optimizer, recompute=config.Training[0].recompute,
                        strategy=strategy)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.devices < 2:
        raise SystemExit("--devices must be at least 2")
    kind = use_devices(args.devices)
    from gravtrain.config import load_config
    from gravtrain.data import FeatureStats, load_event_sets
    from gravtrain.data.batching import HitBudgetBatcher
    from gravtrain.model import data_parallel_strategy

    overrides = toy_overrides(args.hits, args.devices) + args.set
    config = load_config(args.config, overrides + [f"Training.0.batch_size={4 * args.hits}"])
    train_store, _ = load_event_sets(config.Data)
    budget = int(max(train_store.event_sizes))  # one event per batch
    config = load_config(args.config, overrides + [f"Training.0.batch_size={budget}"])
    stats = FeatureStats.from_store(train_store)
    batches = list(HitBudgetBatcher(train_store, budget, seed=0, shuffle=False).dataset(0))[:args.devices]
    hits = sum(int(batch["features"].shape[0]) for batch in batches)

    single = build_step(config, stats, None)
    strategy = data_parallel_strategy(args.devices)
    mirrored = build_step(config, stats, strategy)
    warm_up = {}
    for name, run in (("one device", lambda: [single.train_step(b) for b in batches][-1]),
                      (f"{args.devices} devices", lambda: mirrored.train_step(*batches))):
        started = time.perf_counter()
        float(run()["objective"])
        warm_up[name] = round(time.perf_counter() - started, 2)

    seconds = {"one device": [], f"{args.devices} devices": []}
    for _ in range(args.rounds):
        started = time.perf_counter()
        for batch in batches:
            float(single.train_step(batch)["objective"])
        seconds["one device"].append(time.perf_counter() - started)
        started = time.perf_counter()
        float(mirrored.train_step(*batches)["objective"])
        seconds[f"{args.devices} devices"].append(time.perf_counter() - started)
    hits_per_second = {name: args.rounds * hits / sum(values) for name, values in seconds.items()}
    ratio = hits_per_second[f"{args.devices} devices"] / hits_per_second["one device"]

    result = {
        "benchmark": "data_parallel_step",
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "overrides": overrides, "devices": args.devices, "device_kind": kind,
        "device_names": list(strategy.extended.worker_devices),
        "batch_hits": [int(batch["features"].shape[0]) for batch in batches],
        "warm_up_seconds": warm_up, "round_seconds": {k: [round(s, 3) for s in v] for k, v in seconds.items()},
        "hits_per_second": {k: round(v, 1) for k, v in hits_per_second.items()},
        "ratio": round(ratio, 3),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    note = " (logical CPU devices sharing the cores: not what GPUs would give)" if kind == "CPU" else ""
    print(f"batches of {', '.join(str(h) for h in result['batch_hits'])} hits; one device "
          f"{hits_per_second['one device']:,.0f} hits/s, {args.devices} {kind} devices "
          f"{hits_per_second[f'{args.devices} devices']:,.0f} hits/s: ratio {ratio:.2f}{note}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
