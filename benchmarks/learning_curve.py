"""Does the toy run learn to reconstruct showers? The physics metrics per epoch of one training, as JSON.

Trains a config (``configs/toy.yaml`` by default, ``--set`` overrides as on the command line) with tracking
off, scoring the model on the validation events after every epoch (``Plotting.physics_frequency`` is set to 1),
and scores the untrained model (built with the same seed and feature statistics) the same way, so a
regression in learning shows as a number:

- ``untrained``: the metrics of the model before its first step;
- ``epochs``: per epoch, the validation loss and every ``physics/*`` metric (efficiency, fake rate, response
  and resolution above ``Evaluation.energy_threshold`` and over all energies, and the counts);
- ``final``: the metrics of the trained model; ``seconds``, ``loop_seconds``, ``loop_cpu_seconds``: the
  training call, its stages in wall and CPU time; ``wall_times``: the call's wall time by part (steps, physics,
  validation, ...; ``gravtrain.training.wall_clock``); ``machine``: CPUs and the load average before and after.

Usage::

    python benchmarks/learning_curve.py [--config configs/toy.yaml] [--set KEY=VALUE ...]
                                        [--out benchmarks/results/learning_curve.json]

Prints one line per epoch and writes the JSON. The test suite runs a CI-sized version (fewer events and
epochs) and asserts that the trained model's efficiency above the threshold is clearly better than the
untrained one's.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "learning_curve.json"
HEADLINE = ("efficiency", "fake_rate", "response", "resolution")


def untrained_metrics(config) -> dict[str, float]:
    """The physics metrics of the model ``train`` would start from (same seed, same feature statistics)."""
    import keras

    from gravtrain.data import FeatureStats, load_event_sets
    from gravtrain.evaluation import evaluate_model
    from gravtrain.model import build_model

    keras.utils.set_random_seed(config.General.seed)
    train_store, val_store = load_event_sets(config.Data)
    model = build_model(config, FeatureStats.from_store(train_store))
    return evaluate_model(model, val_store, config.Evaluation, figures=False).metrics.to_dict()


def per_epoch(curves: dict) -> list[dict]:
    """The epoch-step curves (``physics/*``, ``val/loss/total``) as one dict per epoch."""
    epochs: dict[int, dict] = {}
    for name, (steps, values) in curves.items():
        if name.startswith("physics/") or name == "val/loss/total":
            for step, value in zip(steps, values):
                epochs.setdefault(int(step), {"epoch": int(step)})[name] = value
    return [epochs[step] for step in sorted(epochs)]


def learning_curve(config_path: Path, overrides: list[str]) -> dict:
    from gravtrain.config import load_config
    from gravtrain.training import train

    overrides = [*overrides, "Plotting.physics_frequency=1"]
    config = load_config(config_path, overrides)
    load_before = os.getloadavg()
    untrained = untrained_metrics(config)
    result = train(config_path, overrides, tracking=False)
    return {
        "config": str(config_path), "overrides": overrides,
        "energy_threshold": config.Evaluation.energy_threshold,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": os.getloadavg()},
        "untrained": untrained,
        "epochs": per_epoch(result.curves),
        "final": {name[len("physics/"):]: value for name, value in result.metrics.items()
                  if name.startswith("physics/")},
        "seconds": result.seconds, "loop_seconds": result.loop_seconds, "loop_cpu_seconds": result.loop_cpu_seconds,
        "wall_times": result.wall_times,
    }


def json_safe(value):
    """``value`` with every non-finite float as None (JSON has no NaN), through dicts, lists and tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "toy.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = learning_curve(args.config, args.overrides)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(json_safe(report), indent=1) + "\n")
    threshold = report["energy_threshold"]
    rows = [("untrained", report["untrained"])] + [(f"epoch {row['epoch']}", {
        name[len("physics/"):]: value for name, value in row.items() if name.startswith("physics/")})
        for row in report["epochs"]]
    print(f"above {threshold:g} GeV: efficiency, fake rate, response, resolution (validation events)")
    for label, metrics in rows:
        print(f"{label:>10}: " + "  ".join(f"{metrics.get(name, math.nan):.3f}" for name in HEADLINE))
    print(f"training {report['seconds']:.0f} s ({report['loop_seconds']:.0f} s in the stages); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
