"""The training step with the model under XLA (``jit_compile=True``) against graph mode, on ragged toy batches:
what a compilation per batch shape costs, and what the compiled step gains once it has one.

Three variants of one step (the model's forward pass, the loss, the gradients, the optimizer's update; the NaN
guard and the metrics of `gravtrain.training.step.TrainingStep` are left out of all three), each with its own
copy of the config's model, built from the same seed:

- ``graph``: graph mode, one trace for every batch (a ``tf.function`` with an input signature), with the kNN
  and aggregation that ``auto`` picks: on a CPU the k-d tree (brute force where no event has more than 512
  hits) and the compiled kernels, on a GPU the brute-force search and the vectorised aggregation. What training runs.
- ``graph-brute``: graph mode with ``Architecture.knn: brute`` and the vectorised aggregation: the ops XLA
  compiles in ``xla``, not compiled.
- ``xla``: the model's forward pass in a ``tf.function(jit_compile=True)``; TensorFlow compiles its gradient
  too. Under XLA the layers take the brute-force search and the vectorised aggregation by themselves. The loss
  stays in graph mode: its shapes depend on the data (every hit-object pair of an event, a ragged range), which
  XLA cannot compile. ``whole_step_compiles`` records the attempt to compile the whole step, and its error.

XLA compiles a function once per input shape, and ragged batches differ in hits and events from batch to batch.
So the benchmark reports, per variant:

1. ``first_call_seconds``: each of ``--batches`` distinct batches once, in order (the first includes the trace;
   under XLA each includes a compilation).
2. ``step_seconds``: ``--rounds`` rounds over the same batches, the variants alternating batch by batch (all
   shapes compiled by then); the median per batch, and hits/s over all of them.
3. ``outputs_differing_on_first_batch``: the share of the model's output values on the first batch that differ
   from ``graph``'s by more than 1e-4 of the largest output, from the same initial weights (and the largest
   difference). Rounding moves the kNN coordinates by about 1e-7; where a hit's k-th and (k+1)-th neighbours
   are that close to equally far, they swap, and its outputs change by up to a few per cent, and through
   message passing those of the hits around it. So a few per cent of the outputs may differ (measured: one
   swap in 1,118 hits moved 2 % of them); the others agree to rounding. The objectives are reported too: they
   can move by more, as an object's condensation point is its hit of highest beta, and at the initial weights
   the betas are close enough for rounding to pick another hit.

and ``break_even_steps``: how many steps on one batch shape XLA needs to win back its compilation (None where
its steps are not faster than ``graph``'s).

Usage::

    python benchmarks/xla_step.py [--config configs/toy.yaml] [--batches 6] [--rounds 3] [--set KEY=VALUE ...]
        [--out benchmarks/results/xla_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "xla_step.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step_profile import machine  # noqa: E402

#: Outputs further than this share of the largest output from ``graph``'s count as differing.
OUTPUT_TOLERANCE = 1e-4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "toy.yaml")
    parser.add_argument("--batches", type=int, default=6, help="distinct batches (shapes) of the first stage")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds over the batches after the first calls")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


class Variant:
    """One variant's model, optimizer and loss, and its step (module docstring)."""

    def __init__(self, name: str, config, stats):
        import keras

        from gravtrain.model import INPUT_NAMES, TRACK_FLAG_FEATURE, build_training_parts, feature_names

        self.name = name
        keras.utils.set_random_seed(config.General.seed)
        parts = build_training_parts(config, stats)
        model, loss, optimizer = parts.model, parts.loss, parts.optimizer
        track = feature_names(model).index(TRACK_FLAG_FEATURE)
        trainable = list(model.trainable_variables)

        def forward(inputs):  # the losses the layers add are returned: under XLA they live in its function
            predictions = model(inputs, training=True)
            return predictions, [tf.cast(value, tf.float32) for value in model.losses]

        model_forward = tf.function(forward, jit_compile=True, autograph=False) if name == "xla" else forward

        def step(batch):
            with tf.GradientTape() as tape:
                predictions, added = model_forward({key: batch[key] for key in INPUT_NAMES})
                truth = {key: value for key, value in batch.items() if key not in INPUT_NAMES}
                objective, _ = loss(predictions, truth, batch["row_splits"], batch["features"][:, track])
                if added:
                    objective += tf.add_n(added)
            optimizer.apply(tape.gradient(objective, trainable), trainable)
            outputs = [tf.reshape(tf.cast(value, tf.float32), [-1]) for value in tf.nest.flatten(predictions)
                       if value.dtype.is_floating]
            return objective, tf.concat(outputs, axis=0)  # the model's outputs, before the update

        from gravtrain.data.batching import batch_element_spec

        self._step_function = step
        self.step = tf.function(step, input_signature=[batch_element_spec()])

    def __call__(self, batch) -> tuple[float, np.ndarray]:
        """The step on ``batch``: the objective, and the model's outputs (all floating heads, flat)."""
        from gravtrain.layers import aggregation

        saved = aggregation.AGGREGATION
        if self.name == "graph-brute":  # read when the step is traced (its first call)
            aggregation.AGGREGATION = "vectorised"
        try:
            objective, outputs = self.step(batch)
            return float(objective), outputs.numpy()
        finally:
            aggregation.AGGREGATION = saved

    def whole_step_compiles(self, batch) -> tuple[bool, str]:
        """Whether XLA compiles the whole step (forward, loss, gradients, update) on ``batch``; if not, the ops it
        could not compile (or the error's first line)."""
        try:
            float(tf.function(self._step_function, jit_compile=True)(batch)[0])
        except tf.errors.InvalidArgumentError as error:
            unsupported = sorted(set(re.findall(r"No registered '(\w+)' OpKernel for (\w+)", error.message)))
            if not unsupported:
                return False, error.message.strip().splitlines()[0][:300]
            devices = sorted({device for _, device in unsupported})
            return False, f"ops XLA cannot compile ({', '.join(devices)}): " + ", ".join(op for op, _ in unsupported)
        return True, ""


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.batches < 1 or args.rounds < 1:
        raise SystemExit("--batches and --rounds must be at least 1")
    from gravtrain.config import load_config
    from gravtrain.data import FeatureStats, load_event_sets
    from gravtrain.data.batching import HitBudgetBatcher

    config = load_config(args.config, args.set)
    train_store, _ = load_event_sets(config.Data)
    stats = FeatureStats.from_store(train_store)
    batcher = HitBudgetBatcher(train_store, config.Training[0].batch_size, seed=0, shuffle=False)
    batches = list(batcher.dataset(0))[:args.batches]
    shapes = {(int(b["features"].shape[0]), int(b["row_splits"].shape[0])) for b in batches}
    if len(shapes) < len(batches):
        print(f"note: {len(batches)} batches have {len(shapes)} distinct shapes", flush=True)
    hits = [int(batch["features"].shape[0]) for batch in batches]
    brute = load_config(args.config, args.set + ["Architecture.knn=brute"])
    variants = [Variant("graph", config, stats), Variant("graph-brute", brute, stats), Variant("xla", config, stats)]

    first_calls, objectives, outputs = {}, {}, {}
    for variant in variants:
        seconds = []
        for index, batch in enumerate(batches):
            started = time.perf_counter()
            objective, predictions = variant(batch)
            seconds.append(time.perf_counter() - started)
            if index == 0:
                objectives[variant.name], outputs[variant.name] = objective, predictions
        first_calls[variant.name] = seconds
        print(f"{variant.name}: first calls {', '.join(f'{s:.2f}' for s in seconds)} s", flush=True)

    steps = {variant.name: [[] for _ in batches] for variant in variants}
    for _ in range(args.rounds):
        for index, batch in enumerate(batches):
            for variant in variants:
                started = time.perf_counter()
                variant(batch)
                steps[variant.name][index].append(time.perf_counter() - started)
    median_step = {name: [statistics.median(times) for times in per_batch] for name, per_batch in steps.items()}
    hits_per_second = {name: args.rounds * sum(hits) / sum(map(sum, per_batch)) for name, per_batch in steps.items()}
    compiles, reason = variants[-1].whole_step_compiles(batches[0])

    def extra_first_call(name):  # what a first call costs beyond a compiled step, per batch shape (the trace aside)
        return statistics.median(first - step for first, step in zip(first_calls[name][1:], median_step[name][1:]))

    saving = statistics.median(median_step["graph"]) - statistics.median(median_step["xla"])
    compile_cost = extra_first_call("xla") if len(batches) > 1 else first_calls["xla"][0]
    break_even = round(compile_cost / saving) if saving > 0 else None
    reference = outputs["graph"]
    scale = max(float(np.max(np.abs(reference))), 1e-12)
    result = {
        "benchmark": "xla_step",
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "overrides": args.set, "batch_hits": hits, "batch_events": [int(b["row_splits"].shape[0]) - 1 for b in batches],
        "first_call_seconds": {k: [round(s, 3) for s in v] for k, v in first_calls.items()},
        "step_seconds": {k: [round(s, 4) for s in v] for k, v in median_step.items()},
        "hits_per_second": {k: round(v, 1) for k, v in hits_per_second.items()},
        "ratio_to_graph": {k: round(v / hits_per_second["graph"], 3) for k, v in hits_per_second.items()},
        "compile_seconds_per_shape": round(compile_cost, 3),
        "break_even_steps": break_even,
        "objective_on_first_batch": objectives,
        "outputs_differing_on_first_batch": {k: float(np.mean(np.abs(v - reference) > OUTPUT_TOLERANCE * scale))
                                             for k, v in outputs.items()},
        "output_max_difference_on_first_batch": {k: float(np.max(np.abs(v - reference))) / scale
                                                 for k, v in outputs.items()},
        "whole_step_compiles": compiles, "whole_step_error": reason,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(f"batches of {', '.join(map(str, hits))} hits; hits/s: "
          + ", ".join(f"{k} {v:,.0f} ({result['ratio_to_graph'][k]:.2f}x)" for k, v in hits_per_second.items())
          + f"; XLA compilation {compile_cost:.2f} s per batch shape, "
          + (f"paid back after {break_even} steps of one shape" if break_even is not None else "never paid back")
          + ("; the whole step compiles" if compiles else f"; the whole step does not compile: {reason[:120]}"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
