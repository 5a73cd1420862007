"""What MLflow tracking costs: the same training with tracking on and with ``--no-tracking``, as a ratio.

Two workloads:

- default: a config as users run it, ``--config`` (``configs/toy.yaml``), with every stage cut to
  ``--epochs-per-stage`` epochs (1) so that a repeat takes minutes, or as it is (``--as-configured``); its own
  ``Plotting`` settings (the toy's: records every 5 batches, plots every 200 and at each epoch end);
- ``--stress``: a small toy config that exercises tracking much harder than any shipped one (120 events, so an
  epoch, and with it a plot refresh, every ~10 batches; a record every batch; plots every 20 batches).

Each repeat is a pair: both modes, one after the other in a fresh process each (so neither warms the other),
the order alternating between repeats; a pair's ratio (tracked / untracked) cancels most of the drift of a
shared machine. Per run:

- ``loop_seconds``: the training stages (batches, records, plots, checkpoints, validation): the part the < 3 %
  target is about;
- ``call_seconds``: the whole ``train`` call, with the start (params, tags, config artifacts) and the end
  (evaluation figures and the MLflow Keras model, which only a tracked run logs, and the wait for the last live
  plots, drawn meanwhile);
- ``loop_cpu_seconds``: user + system CPU time of the training process during the stages (the live plots
  included: they are drawn on the training thread): what the loop costs in work, far less sensitive to a shared
  machine's drift;
- ``cpu_seconds``: the same for the whole process, start-up and imports included;
- ``blocking_seconds`` (tracked runs): wall time the training thread spent inside tracking calls during the
  stages (metric records, flushes, tags, plot snapshots), and per call in ``blocking_by_call``;
- ``background_cpu_seconds`` (tracked runs): CPU time of the tracking threads (metric writer, plot uploads)
  and of the child processes (``git`` for the provenance tags);
- ``plot_seconds``, ``plot_cpu_seconds``, ``plot_refreshes`` (tracked runs): wall and CPU time of the training
  thread inside ``TrainingFigures.refresh`` (drawing the live plots, encoding and logging the PNGs) during the
  stages, and the number of refreshes; ``plot_seconds / loop_seconds`` is the plots' share of the training
  time (the summary's ``plot_share_of_loop_seconds``), ``epoch_seconds`` the loop's time per epoch beside it.

These are measured within one run, so they are immune to the drift between runs: the direct cost of
tracking is ``blocking_seconds / loop_seconds`` on the training thread and ``background_cpu_seconds /
loop_cpu_seconds`` of work beside it. The pairs' ratios add what the direct figures miss (contention for the
cores and the interpreter lock) but carry the machine's drift: on a shared 2-core VM, whole seconds in which
runnable processes get no CPU at all make the wall time of identical runs differ by a quarter or more, and
their CPU time by up to a tenth.

Usage::

    python benchmarks/tracking_overhead.py [--repeats 3] [--config configs/toy.yaml] [--epochs-per-stage 1 |
                                           --as-configured]
    python benchmarks/tracking_overhead.py --stress [--repeats 3]

Prints one JSON line per run and a summary: the direct shares (median over the tracked runs), the median,
lowest and highest pair ratio minus one (the overhead) of each time, and the median times of each mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "tracking_overhead.json"

STRESS = {
    "General": {"name": "overhead-stress", "seed": 1},
    "Data": {"toy": {"n_train_events": 120, "n_val_events": 20, "n_particles": [2, 5], "noise_hits": 50}},
    "Architecture": {"gravnet": [{"n": 16}, {"n": 16}], "message_passing": [{"n": 32}, {"n": 16}],
                     "dense_pre_gravnet": [{"n": 64}], "dense_post_message_passing": [{"n": 64}],
                     "dense_final": [{"n": 64}]},
    "Training": [{"epochs": 3, "batch_size": 20000, "learning_rate": 1e-3}],
    "Plotting": {"record_frequency": 1, "plot_frequency": 20},
}

CHILD = """
import json, resource, sys, threading, time
import gravtrain
from gravtrain.tracking.metric_writer import BackgroundMetricWriter
from gravtrain.tracking.run import MlflowTracker
from gravtrain.training.figures import TrainingFigures
from gravtrain.training.loop import _StagedTrainer

blocking = {}           # call -> seconds the training thread spent in it during the stages
calls = {}              # call -> how often the training thread made it during the stages
plot_cpu = [0.0]        # CPU seconds of the training thread inside TrainingFigures.refresh during the stages
background = [0.0]      # CPU seconds of the tracking threads of this process
in_stages = threading.Event()

def timed_on_training_thread(owner, name):
    function = getattr(owner, name)
    def wrapper(*args, **kwargs):
        if not in_stages.is_set() or threading.current_thread() is not threading.main_thread():
            return function(*args, **kwargs)
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            key = owner.__name__ + "." + name
            blocking[key] = blocking.get(key, 0.0) + time.perf_counter() - start
            calls[key] = calls.get(key, 0) + 1
            if owner is TrainingFigures:
                plot_cpu[0] += time.thread_time() - cpu_start
    setattr(owner, name, wrapper)

def timed_thread(owner):
    function = owner._work
    def wrapper(*args, **kwargs):
        start = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            background[0] += time.thread_time() - start
    owner._work = wrapper

def stages(function):
    def wrapper(*args, **kwargs):
        in_stages.set()
        try:
            return function(*args, **kwargs)
        finally:
            in_stages.clear()
    return wrapper

for owner, name in ((MlflowTracker, "log_metrics"), (MlflowTracker, "flush"), (MlflowTracker, "set_tags"),
                    (TrainingFigures, "refresh")):
    timed_on_training_thread(owner, name)
timed_thread(BackgroundMetricWriter)
_StagedTrainer.run_stages = stages(_StagedTrainer.run_stages)

def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime

start = time.perf_counter()
result = gravtrain.train(sys.argv[1], tracking=sys.argv[2] == "on")
call_seconds = time.perf_counter() - start
epochs = len(result.curves.get("val/loss/total", ([], []))[0])
plots = {"plot_seconds": blocking.get("TrainingFigures.refresh", 0.0), "plot_cpu_seconds": plot_cpu[0],
         "plot_refreshes": calls.get("TrainingFigures.refresh", 0)} if sys.argv[2] == "on" else {}
print(json.dumps({"call_seconds": call_seconds, "loop_seconds": result.loop_seconds,
                  "loop_cpu_seconds": result.loop_cpu_seconds, "epochs": epochs,
                  "epoch_seconds": result.loop_seconds / max(epochs, 1),
                  "cpu_seconds": cpu(resource.RUSAGE_SELF) + cpu(resource.RUSAGE_CHILDREN),
                  "blocking_seconds": sum(blocking.values()), "blocking_by_call": blocking,
                  "background_cpu_seconds": background[0] + cpu(resource.RUSAGE_CHILDREN), **plots}))
"""


def workload(args) -> dict:
    """The config the runs train, as a dict."""
    config = json.loads(json.dumps(STRESS)) if args.stress else yaml.safe_load(args.config.read_text())
    if not args.as_configured:
        for stage in config["Training"]:
            stage["epochs"] = args.epochs_per_stage
    return config


def run_once(config_path: Path, tracking: bool, workdir: Path) -> dict:
    output = subprocess.run([sys.executable, "-c", CHILD, str(config_path), "on" if tracking else "off"],
                            cwd=workdir, capture_output=True, text=True)
    if output.returncode != 0:
        raise SystemExit(f"a training run failed (exit code {output.returncode}):\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def summarise(rows: list[dict]) -> dict:
    tracked = [row for row in rows if row["tracking"]]
    summary = {"direct": {
        "blocking_share_of_loop_seconds": statistics.median(r["blocking_seconds"] / r["loop_seconds"] for r in tracked),
        "background_share_of_loop_cpu": statistics.median(r["background_cpu_seconds"] / r["loop_cpu_seconds"]
                                                          for r in tracked),
        "plot_share_of_loop_seconds": statistics.median(r["plot_seconds"] / r["loop_seconds"] for r in tracked),
        "plot_seconds_per_refresh": statistics.median(r["plot_seconds"] / max(r["plot_refreshes"], 1)
                                                      for r in tracked),
        "plot_cpu_seconds_per_refresh": statistics.median(r["plot_cpu_seconds"] / max(r["plot_refreshes"], 1)
                                                          for r in tracked),
        "plot_refreshes_per_epoch": statistics.median(r["plot_refreshes"] / max(r["epochs"], 1) for r in tracked),
        "epoch_seconds": statistics.median(r["epoch_seconds"] for r in tracked)}}
    for key in ("loop_seconds", "loop_cpu_seconds", "call_seconds", "cpu_seconds"):
        pairs = {}
        for row in rows:
            pairs.setdefault(row["repeat"], {})[row["tracking"]] = row[key]
        overheads = [pair[True] / pair[False] - 1.0 for pair in pairs.values() if len(pair) == 2]
        summary[key] = {
            "overhead_median": statistics.median(overheads), "overhead_min": min(overheads),
            "overhead_max": max(overheads),
            "tracked_median": statistics.median(r[key] for r in rows if r["tracking"]),
            "untracked_median": statistics.median(r[key] for r in rows if not r["tracking"])}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "toy.yaml")
    parser.add_argument("--stress", action="store_true", help="the small, heavily tracked config instead")
    parser.add_argument("--epochs-per-stage", type=int, default=None,
                        help="epochs of every stage (default: 1, or 3 with --stress)")
    parser.add_argument("--as-configured", action="store_true", help="every stage's epochs as the config has them")
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs (tracked and untracked)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.epochs_per_stage is None:
        args.epochs_per_stage = 3 if args.stress else 1
    config = workload(args)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        config_path = workdir / "overhead.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        for repeat in range(args.repeats):
            for tracking in (True, False) if repeat % 2 == 0 else (False, True):
                row = {"repeat": repeat, "tracking": tracking, **run_once(config_path, tracking, workdir)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    summary = summarise(rows)
    workload_name = "stress" if args.stress else str(args.config.resolve().relative_to(REPO)
                                                     if args.config.resolve().is_relative_to(REPO) else args.config)
    result = {"workload": workload_name, "epochs_per_stage": "as configured" if args.as_configured else args.epochs_per_stage,
              "plotting": config.get("Plotting", {}), "runs": rows, "summary": summary}
    print(json.dumps({"workload": workload_name, "summary": summary}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
