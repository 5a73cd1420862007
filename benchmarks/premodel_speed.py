"""Training step time and peak memory of the main model on ~50,000-hit toy events, with and without a noise
filter in front of it (``General.pre-model-type: noise-filter``), in one run.

    python benchmarks/premodel_speed.py [--steps 5] [--filter PATH.keras] [--out premodel_speed.json]

1. The filter: ``--filter`` (a noise filter .keras), or else one trained here with ``configs/noise_filter.yaml``'s
   architecture on 16 events like the timed ones but of another seed (four epochs, no tracking).
2. The events: ``--events`` toy events of 30 particles (20-200 GeV) with 25,000 noise hits each, about 50,000
   hits, half of them noise, as a pile-up-heavy endcap looks.
3. Each variant runs in its own fresh process (same imports, same events, the main model of
   ``configs/toy.yaml``): one step to trace, then ``--steps`` timed train steps, one event per batch; the child
   reports the median step time and its peak resident set size (``ru_maxrss``). A third child does everything but
   the steps: its peak is the baseline the steps add to.

Writes a JSON with both variants and their ratio; the figures go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EVENT_OPTIONS = {"n_particles": (30, 30), "energy_range": (20.0, 200.0), "noise_hits": 25_000, "seed": 11}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per variant")
    parser.add_argument("--events", type=int, default=3, help="events to cycle through (one per step)")
    parser.add_argument("--filter", help="a trained noise filter .keras (default: train one here)")
    parser.add_argument("--out", default="premodel_speed.json")
    parser.add_argument("--child", choices=("plain", "filtered", "baseline"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main_config(filter_path: str | None):
    from gravtrain.config import load_config

    overrides = ["Training.0.batch_size=60000"]
    if filter_path:
        overrides += ["General.pre-model-type=noise-filter", f"General.pre-model-path={filter_path}"]
    return load_config(REPO / "configs" / "toy.yaml", overrides)


def run_child(args) -> dict:
    """One variant: build, trace, time ``args.steps`` train steps; report the median and the peak RSS."""
    import numpy as np

    from gravtrain.data import FeatureStats, simulate_events
    from gravtrain.data.batching import HitBudgetBatcher
    from gravtrain.model import build_training_parts
    from gravtrain.training.step import TrainingStep

    config = main_config(args.filter if args.child == "filtered" else None)
    store = simulate_events(args.events, **EVENT_OPTIONS)
    parts = build_training_parts(config, FeatureStats.from_store(store))
    step = TrainingStep(parts.model, parts.loss, parts.optimizer)
    batches = list(HitBudgetBatcher(store, int(store.event_sizes.max()), shuffle=False).dataset(0))
    result = {"hits_per_event": store.event_sizes.tolist()}
    if args.child != "baseline":
        step.train_step(batches[0])  # the trace
        seconds, kept = [], []
        for index in range(args.steps):
            started = time.perf_counter()
            values = step.train_step(batches[index % len(batches)])
            float(values["objective"])
            seconds.append(time.perf_counter() - started)
            kept.append(float(values.get("hits_kept", values["hits"])) / float(values["hits"]))
        result.update(step_seconds=seconds, median_step_seconds=float(np.median(seconds)),
                      kept_fraction=float(np.mean(kept)), traces=step.trace_count["train"])
    result["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def train_filter(directory: Path) -> Path:
    """A noise filter with configs/noise_filter.yaml's architecture, trained briefly on events like the timed
    ones (another seed): a filter trained at 400 noise hits an event keeps much of the noise at 25,000."""
    from gravtrain.config import load_config
    from gravtrain.training import train

    config = load_config(REPO / "configs" / "noise_filter.yaml", [
        "Data.toy.n_train_events=16", "Data.toy.n_val_events=2", "Data.toy.seed=12",
        f"Data.toy.n_particles={list(EVENT_OPTIONS['n_particles'])}",
        f"Data.toy.energy_range={list(EVENT_OPTIONS['energy_range'])}",
        f"Data.toy.noise_hits={EVENT_OPTIONS['noise_hits']}",
        "Training.0.epochs=3", "Training.1.epochs=1", "Training.0.batch_size=60000", "Training.1.batch_size=60000",
        "Plotting.physics_frequency=0", f"Tracking.checkpoint_dir={directory.as_posix()}"])
    result = train(config, tracking=False)
    logging.getLogger(__name__).info("filter on %d validation events: signal efficiency %.3f, noise rejection %.3f",
                                     2, result.metrics["physics/signal_efficiency"],
                                     result.metrics["physics/noise_rejection"])
    return result.run_dir / "model.keras"


def measure(args, child: str) -> dict:
    command = [sys.executable, __file__, "--child", child, "--steps", str(args.steps), "--events", str(args.events)]
    if args.filter:
        command += ["--filter", args.filter]
    environment = {**os.environ, "PYTHONPATH": str(REPO / "modules"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(command, check=True, capture_output=True, text=True, env=environment)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args)))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        if not args.filter:
            started = time.perf_counter()
            logging.basicConfig(level=logging.INFO, format="%(message)s")
            args.filter = str(train_filter(Path(scratch)))
            print(f"trained a noise filter in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        results = {name: measure(args, name) for name in ("baseline", "plain", "filtered")}
    base = results["baseline"]["max_rss_bytes"]
    for name in ("plain", "filtered"):
        results[name]["added_rss_bytes"] = results[name]["max_rss_bytes"] - base
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/premodel_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "events": EVENT_OPTIONS,
        **results,
        "step_time_ratio_plain_over_filtered": results["plain"]["median_step_seconds"]
        / results["filtered"]["median_step_seconds"],
        "added_memory_ratio_plain_over_filtered": results["plain"]["added_rss_bytes"]
        / max(results["filtered"]["added_rss_bytes"], 1),
    }
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for name in ("plain", "filtered"):
        r = results[name]
        print(f"{name:9s} step {r['median_step_seconds']:.2f} s (median of {len(r['step_seconds'])}), hits kept "
              f"{r['kept_fraction']:.3f}, peak RSS {r['max_rss_bytes'] / 2**30:.2f} GiB (+{r['added_rss_bytes'] / 2**30:.2f}"
              f" GiB over the baseline)")
    print(f"without / with the filter: step time {report['step_time_ratio_plain_over_filtered']:.2f}x, added memory "
          f"{report['added_memory_ratio_plain_over_filtered']:.2f}x; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
