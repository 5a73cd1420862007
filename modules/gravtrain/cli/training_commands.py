"""The commands that read configs and train or score models: check, schema, train, tune, evaluate, simulate."""

from __future__ import annotations

import argparse
import sys

from gravtrain.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, environment_failure, log
from gravtrain.config import ConfigError, load_config, resolve_config, resolved_yaml


def run_check(args: argparse.Namespace) -> int:
    """All or nothing: "valid" and the resolved YAML on stdout only once every check passed (the pre-model's
    file and, unless ``--no-model``, the model's build); a mistake found after validation keeps its file:line."""
    validated = resolve_config(args.config, args.overrides, args.explicit)
    config = validated.config
    try:
        if args.no_model:
            _check_pre_model_file(config)
        else:
            from gravtrain.data import FeatureStats
            from gravtrain.model import build_model, model_summary, pre_model_of, replica_devices
            from gravtrain.tracking import store_model_fetcher

            # The architecture does not depend on the statistics; neutral ones avoid loading any data.
            stats = FeatureStats.neutral()
            pre_model = pre_model_of(config, stats.names, fetch=store_model_fetcher(config.Tracking))
            summary = model_summary(build_model(config, stats, pre_model=pre_model)).rstrip()
            replica_devices(config.General.devices)  # more devices than TensorFlow sees: ConfigError
    except ConfigError as error:
        raise validated.located(error) from None
    # stdout is the resolved YAML alone (`gravtrain check x.yaml > resolved.yaml`); the rest are log lines.
    sys.stdout.write(resolved_yaml(config))
    n_default = len(validated.defaulted)
    log.info("%s is valid (%d key%s took defaults).", args.config, n_default, "" if n_default == 1 else "s")
    if not args.no_model:
        if pre_model is not None:
            log.info("pre-model (%s): %s", config.General.pre_model_type, pre_model.describe())
        log.info("%s", summary)
    return EXIT_OK


def _check_pre_model_file(config) -> None:
    """``check --no-model``: the pre-model's file exists, or its URI's store gives it, without loading it (so
    without TensorFlow)."""
    if config.General.pre_model_path is None:
        return
    import tempfile
    from pathlib import Path

    from gravtrain.config.pre_model_source import pre_model_file
    from gravtrain.tracking import store_model_fetcher

    with tempfile.TemporaryDirectory(prefix="gravtrain-check-") as scratch:
        pre_model_file(config.General.pre_model_path, Path(scratch), store_model_fetcher(config.Tracking))


def _run_link(config, result) -> str:
    """How to open a trained run: the `gravtrain ui` command for its store, and the run's address there."""
    from pathlib import Path

    from gravtrain.stores.ui import run_url
    from gravtrain.tracking import resolve_tracking_uri
    from gravtrain.tracking.store import local_directory

    uri = resolve_tracking_uri(config.Tracking)
    directory = local_directory(uri)
    store = uri if directory is None else str(directory)
    if directory is not None and directory.resolve().is_relative_to(Path.cwd().resolve()):
        store = str(directory.resolve().relative_to(Path.cwd().resolve()))
    command = "gravtrain ui" if store == "mlruns" else f"gravtrain ui {store}"
    return f"`{command}` serves it at {run_url(result.experiment_id, result.run_id)}"


def run_schema(args: argparse.Namespace) -> int:
    from gravtrain.config.reference import schema_reference

    if args.sweep:
        from gravtrain.tune.sweep_file import SweepHeader

        sys.stdout.write(schema_reference(SweepHeader, "gravtrain sweep file reference (gravtrain tune)") + "\n")
    else:
        sys.stdout.write(schema_reference() + "\n")
    return EXIT_OK


def run_train(args: argparse.Namespace) -> int:
    # Fail fast, before TensorFlow loads; quietly, since train() reads the file again and reports its defaults.
    validated = resolve_config(args.config, args.overrides, args.explicit, quiet=True)
    log.info("%s is valid: %d stage(s), %d epochs in all.", args.config, len(validated.config.Training),
             sum(stage.epochs for stage in validated.config.Training))
    from gravtrain.tracking.errors import StoreWriteError, TrackingError
    from gravtrain.training import CheckpointWriteError, NonFiniteLossError, TrainingInterrupted, train

    try:
        result = train(args.config, args.overrides, tracking=not args.no_tracking, resume=args.resume,
                       explicit=args.explicit)
    except TrainingInterrupted as exc:
        log.error("%s", exc)
        return EXIT_INTERRUPTED
    except (NonFiniteLossError, CheckpointWriteError, StoreWriteError) as exc:  # the run is marked FAILED
        log.error("%s", exc)
        return EXIT_FAILED
    except TrackingError as exc:  # the store refused the run (a deleted experiment, a changed param)
        log.error("%s", exc)
        return EXIT_USAGE
    log.info("done in %.0f s: %s (validation events, final model)", result.seconds, result.headline)
    if result.run_id:
        log.info("MLflow run %s: %s", result.run_id, _run_link(validated.config, result))
    log.info("model saved as %s", result.run_dir / "model.keras")
    return EXIT_OK


def run_tune(args: argparse.Namespace) -> int:
    if args.dry_run and (args.resume or args.report):
        log.error("--dry-run trains nothing and reads no study; drop --resume/--report.")
        return EXIT_USAGE
    from gravtrain.tune import tune

    outcome = tune(args.sweep, args.overrides, dry_run=args.dry_run, workers=args.workers, storage=args.storage,
                   resume=args.resume, devices=args.devices, report_only=args.report)
    if args.dry_run:
        sys.stdout.write(outcome.dry_run_text)
        return EXIT_OK
    if outcome.report_text:
        sys.stdout.write(outcome.report_text)
    if args.report or outcome.complete:
        log.info("study '%s' in %s; parent MLflow run %s", outcome.study_name, outcome.storage,
                 outcome.parent_run_id)
        return EXIT_OK
    census = outcome.census
    if outcome.stale:
        log.warning("%d of %d trials finished; trial(s) %s were left running by a process that stopped. "
                    "`gravtrain tune %s --resume` runs them again.", census.finished, outcome.n_trials,
                    ", ".join(map(str, outcome.stale)), args.sweep)
        return EXIT_FAILED
    log.info("no trial left for this process: %d of %d finished, %d running in other processes; the process "
             "that finishes the last one writes the report (`--report` shows it at any time).", census.finished,
             outcome.n_trials, census.running)
    return EXIT_OK


def run_evaluate(args: argparse.Namespace) -> int:
    validated = resolve_config(args.config, args.overrides, args.explicit)  # before TensorFlow loads
    from gravtrain.evaluation import evaluate

    result = evaluate(validated.config, args.model, split=args.split, display_event=args.event, out_dir=args.out)
    sys.stdout.write(result.summary() + "\n")
    if args.out:
        log.info("wrote metrics.json and %d figure(s) to %s", len(result.figures), args.out)
    return EXIT_OK


def run_simulate(args: argparse.Namespace) -> int:
    from gravtrain.config.schema import ToyData
    from gravtrain.data import ShardsInTheWay, write_toy_shards

    if args.events < 1 or args.events_per_shard < 1:
        log.error("--events and --events-per-shard must be at least 1.")
        return EXIT_USAGE
    toy = load_config(args.config).Data.toy if args.config else ToyData()
    try:
        paths = write_toy_shards(args.out, args.events, args.events_per_shard, toy, split=args.split,
                                 seed=args.seed, overwrite=args.overwrite)
    except ShardsInTheWay as exc:
        log.error("%s already holds %d shard(s); choose another --out or pass --overwrite.", exc.directory,
                  len(exc.shards))
        return EXIT_USAGE
    except OSError as exc:
        log.error("cannot write shards to %s: %s; %s", args.out, exc.strerror or exc,
                  "free space there" if environment_failure(exc) else "choose another --out directory")
        return EXIT_FAILED if environment_failure(exc) else EXIT_USAGE
    log.info("wrote %d %s events in %d shard(s) to %s", args.events, args.split, len(paths), args.out)
    return EXIT_OK
