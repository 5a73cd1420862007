"""The ``gravtrain`` / ``python config_trainer.py`` command line: parses arguments, calls the rooms, sets exit codes.

Exit codes: 0 success; 1 training failed or the environment did (a non-finite loss, a full disk under the
checkpoints or the store, a UI server that cannot start, damage `runs doctor` found and did not fix, a sweep
whose trials a stopped process left running; other crashes show their traceback); 2 a mistake of the user's
(bad config or sweep file, missing file, bad arguments, an unknown command, a run that cannot be resumed, a
sweep that does not match its study), reported in one message without a traceback; 130 interrupted (Ctrl-C),
after a checkpoint; 128 + N for `ui` stopped by signal N.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from typing import Sequence

from gravtrain.config import ConfigError, load_config, resolve_config, resolved_yaml
from gravtrain.tracking.store import named_store
from gravtrain.version import __version__

log = logging.getLogger("gravtrain")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _UserFacingFormatter(logging.Formatter):
    """Plain messages for INFO, ``error: ...``/``warning: ...`` otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UserFacingFormatter())
    root = logging.getLogger("gravtrain")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the YAML config file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a key, e.g. --set Training.0.learning_rate=1e-4 (repeatable; values are YAML)",
    )
    parser.add_argument(
        "--explicit", action="store_true", help="refuse to run if any key would fall back to its default"
    )


def _port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: ports go from 1 to 65535")
    return port


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a duration: give a number of seconds above 0")
    return seconds


def _positive_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count} is not a count: give 1 or more")
    return count


def _device_list(text: str) -> tuple[str, ...]:
    devices = tuple(part.strip() for part in text.split(","))
    if not all(part.isdigit() for part in devices):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of GPU indices such as 0,1")
    return devices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gravtrain",
        description="Train GravNet graph networks on detector data from one YAML file. "
        "`gravtrain CONFIG` (no command word) trains.",
    )
    parser.add_argument("--version", action="version", version=f"gravtrain {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check", help="validate a config, print it with every default filled in, build the model and summarise it"
    )
    _add_config_arguments(check)
    check.add_argument("--no-model", action="store_true",
                       help="only validate the config (fast: does not import TensorFlow or build the model)")
    check.set_defaults(run=run_check)

    schema = commands.add_parser("schema", help="print the reference of every config section and key")
    schema.add_argument("--sweep", action="store_true", help="the reference of a sweep file's keys instead")
    schema.set_defaults(run=run_schema)

    train = commands.add_parser("train", help="train a model from a config (the default command)")
    _add_config_arguments(train)
    train.add_argument("--resume", metavar="RUN_ID",
                       help="continue this MLflow run from its latest checkpoint (with --no-tracking: the "
                            "checkpoint directory)")
    train.add_argument("--no-tracking", action="store_true", help="train without an MLflow run")
    train.set_defaults(run=run_train)

    tune = commands.add_parser(
        "tune", help="run a sweep (Optuna): check it against its base config, train its trials, report the best")
    tune.add_argument("sweep", help="the sweep YAML file (configs/sweeps/*.yaml)")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a key of the base config (not a swept one); repeatable")
    tune.add_argument("--dry-run", action="store_true",
                      help="print exactly what the sweep may train (points, counts, model sizes) and stop")
    tune.add_argument("--workers", type=_positive_count, default=1, metavar="N",
                      help="trials at once, each in its own process (default 1: in this process)")
    tune.add_argument("--devices", type=_device_list, default=(), metavar="0,1",
                      help="GPUs to share among the workers: worker i sees only the i-th (round robin)")
    tune.add_argument("--storage", metavar="URL",
                      help="Optuna storage: a database URL (sqlite:///sweeps.db, postgresql://...) or a journal "
                           "file; default: a journal file beside the MLflow store. Processes on several machines "
                           "with the same storage and sweep file share one study")
    tune.add_argument("--resume", action="store_true",
                      help="continue a sweep whose processes were stopped: their running trials are run again")
    tune.add_argument("--report", action="store_true",
                      help="report on the sweep as it stands (best trial, table, figures) and stop")
    tune.set_defaults(run=run_tune)

    ui = commands.add_parser(
        "ui", help="browse the runs: `mlflow server` on a local mirror of the store, fast on an sshfs mount")
    ui.add_argument("store", nargs="?", metavar="STORE",
                    help="the store: a directory (mlruns, perhaps mounted from a cluster) or a sqlite:/// URI "
                         "(default: $MLFLOW_TRACKING_URI, else mlruns in the current directory)")
    ui.add_argument("--store", dest="store_option", metavar="URI", help=argparse.SUPPRESS)  # before STORE was
    ui.add_argument("--refresh", type=_positive_seconds, default=1.0, metavar="SECONDS",
                    help="seconds between two looks for new or changed runs (default 1; at least twice as long "
                         "as the last look took)")
    ui.add_argument("--mirror", metavar="DIR",
                    help="where the local mirror of a directory store lives (default: in ~/.cache/gravtrain)")
    ui.add_argument("--direct", action="store_true",
                    help="serve a directory store itself, without the mirror (slow on a network mount; "
                         "artifacts only where the store was written)")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=_port_number, default=5000, help="port, 1-65535 (default 5000)")
    ui.set_defaults(run=run_ui)

    runs = commands.add_parser(
        "runs", help="list, compare and look after the runs of a store: `gravtrain runs list`, `runs compare`, "
             "`runs doctor`")
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="COMMAND")
    doctor = runs_commands.add_parser(
        "doctor", help="find runs a crash or a full disk damaged (and with --fix move the damage aside)")
    doctor.add_argument("store", nargs="?", metavar="STORE",
                        help="the store directory (default: $MLFLOW_TRACKING_URI, else mlruns here)")
    doctor.add_argument("--fix", action="store_true",
                        help="move the damaged files into a quarantine folder of the store (nothing is deleted)")
    doctor.set_defaults(run=run_doctor)
    listing = runs_commands.add_parser(
        "list", help="one line per run: name, status, stage, start, duration, headline metrics, config hash")
    listing.add_argument("store", nargs="?", metavar="STORE",
                         help="the store (default: $MLFLOW_TRACKING_URI, else mlruns here); a directory is read "
                              "through its local mirror, as `gravtrain ui` does")
    listing.add_argument("--json", action="store_true", help="print the runs as JSON instead of a table")
    listing.add_argument("--mirror", metavar="DIR", help="where the store's local mirror lives")
    listing.add_argument("--direct", action="store_true", help="read a directory store itself, without the mirror")
    listing.set_defaults(run=run_list)
    compare = runs_commands.add_parser(
        "compare", help="the config keys that differ between runs, and their metrics with deltas to the first")
    compare.add_argument("reference", metavar="RUN_A",
                         help="the reference run: a full ID or a unique prefix of at least 6 characters")
    compare.add_argument("others", nargs="+", metavar="RUN_B",
                         help="the runs to compare with it (full IDs or prefixes); deltas are value - RUN_A's")
    compare.add_argument("--store", metavar="STORE",
                         help="the store (default: $MLFLOW_TRACKING_URI, else mlruns in the current directory)")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    compare.add_argument("--all", action="store_true", help="list every config key, not only those that differ")
    compare.add_argument("--mirror", metavar="DIR", help="where the store's local mirror lives")
    compare.add_argument("--direct", action="store_true", help="read a directory store itself, without the mirror")
    compare.set_defaults(run=run_compare)
    runs.set_defaults(run=lambda args: _missing_subcommand(runs))

    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on the config's data: efficiency, fake rate, response, figures"
    )
    _add_config_arguments(evaluate)
    evaluate.add_argument("--model", required=True, metavar="MODEL.keras", help="the saved model to evaluate")
    evaluate.add_argument("--split", choices=("val", "train"), default="val", help="which events (default: val)")
    evaluate.add_argument("--out", metavar="DIR", help="write metrics.json and the figures (PNG) into DIR")
    evaluate.add_argument("--event", type=int, metavar="I", help="the event to draw (default: a busy one)")
    evaluate.set_defaults(run=run_evaluate)

    simulate = commands.add_parser("simulate", help="write toy-calorimeter events as shards")
    simulate.add_argument("--events", type=int, required=True, metavar="N", help="number of events")
    simulate.add_argument("--out", required=True, metavar="DIR", help="output directory for the shards")
    simulate.add_argument("--events-per-shard", type=int, default=200, metavar="K", help="events per file (200)")
    simulate.add_argument("--split", choices=("train", "val"), default="train",
                          help="random stream: 'val' gives events independent of 'train' for the same seed")
    simulate.add_argument("--config", help="take the Data.toy settings from this config (default: the schema's)")
    simulate.add_argument("--seed", type=int, help="override the simulator seed")
    simulate.add_argument("--overwrite", action="store_true", help="replace shards already in DIR")
    simulate.set_defaults(run=run_simulate)
    return parser


COMMANDS = ("check", "schema", "train", "tune", "evaluate", "simulate", "ui", "runs")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of both ``gravtrain`` and ``python config_trainer.py``. Returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        if not _looks_like_a_config(args_list[0]):
            _configure_logging(False)
            log.error("%s", _unknown_command(args_list[0]))
            return EXIT_USAGE
        args_list.insert(0, "train")  # `gravtrain configs/x.yaml` means train
    parser = build_parser()
    args = parser.parse_args(args_list)  # exits 2 with a usage message on bad arguments
    _configure_logging(args.verbose)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from gravtrain.data.errors import DataError

    try:
        return args.run(args)
    except (ConfigError, DataError) as exc:  # listed first: a bad config is reported before TensorFlow loads
        log.error("%s", exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if isinstance(exc, _lazy_user_errors(args.command)):
            log.error("%s", exc)
            return EXIT_USAGE
        raise


def _environment_failure(error: OSError) -> bool:
    """A full or failing disk (exit 1), as opposed to a path the user got wrong (exit 2)."""
    from gravtrain.tracking.errors import is_disk_full

    return is_disk_full(error) or error.errno in (errno.EIO, errno.EROFS)


def _looks_like_a_config(word: str) -> bool:
    """A bare first word is a config path (train it) when it names a file or has a path's shape."""
    from pathlib import Path

    return Path(word).suffix.lower() in (".yaml", ".yml") or "/" in word or os.sep in word or Path(word).exists()


def _unknown_command(word: str) -> str:
    import difflib

    close = difflib.get_close_matches(word, COMMANDS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (f"unknown command '{word}'; the commands are {', '.join(COMMANDS)}, or give a config file to train "
            f"(gravtrain configs/toy.yaml).{hint}")


def _lazy_user_errors(command: str) -> tuple[type[Exception], ...]:
    """User-facing error types of the rooms that import TensorFlow, imported only for commands that need them."""
    if command == "evaluate":
        from gravtrain.model import ModelFileError

        return (ModelFileError,)
    if command == "train":
        from gravtrain.training import ResumeError

        return (ResumeError,)
    if command == "tune":
        from gravtrain.tune import StudyError

        return (StudyError,)
    return ()


def run_evaluate(args: argparse.Namespace) -> int:
    validated = resolve_config(args.config, args.overrides, args.explicit)  # before TensorFlow loads
    from gravtrain.evaluation import evaluate

    result = evaluate(validated.config, args.model, split=args.split, display_event=args.event, out_dir=args.out)
    sys.stdout.write(result.summary() + "\n")
    if args.out:
        log.info("wrote metrics.json and %d figure(s) to %s", len(result.figures), args.out)
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    validated = resolve_config(args.config, args.overrides, args.explicit)
    sys.stdout.write(resolved_yaml(validated.config))
    n_default = len(validated.defaulted)
    log.info("%s is valid (%d key%s took defaults).", args.config, n_default, "" if n_default == 1 else "s")
    if not args.no_model:
        from gravtrain.data import FeatureStats
        from gravtrain.model import build_model, model_summary, pre_model_of, replica_devices

        # The architecture does not depend on the statistics; neutral ones avoid loading any data.
        stats = FeatureStats.neutral()
        from gravtrain.tracking import store_model_fetcher

        # a missing or unfit pre-model: ConfigError
        pre_model = pre_model_of(validated.config, stats.names, fetch=store_model_fetcher(validated.config.Tracking))
        model = build_model(validated.config, stats, pre_model=pre_model)
        replica_devices(validated.config.General.devices)  # more devices than TensorFlow sees: ConfigError
        # stdout stays the resolved YAML alone (`gravtrain check x.yaml > resolved.yaml`); the summary is a log.
        if pre_model is not None:
            log.info("pre-model (%s): %s", validated.config.General.pre_model_type, pre_model.describe())
        log.info("%s", model_summary(model).rstrip())
    return EXIT_OK


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
        log.info("MLflow run %s; browse it with `gravtrain ui`", result.run_id)
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


def run_ui(args: argparse.Namespace) -> int:
    from gravtrain.stores import serve_ui

    if args.store and args.store_option:
        log.error("name the store once: either STORE or --store.")
        return EXIT_USAGE
    return serve_ui(named_store(args.store or args.store_option), host=args.host, port=args.port,
                    direct=args.direct, mirror_home=args.mirror, refresh_seconds=args.refresh)


def run_list(args: argparse.Namespace) -> int:
    from gravtrain.tracking.errors import TrackingError
    from gravtrain.stores.run_list import list_runs, runs_table

    try:
        runs = list_runs(named_store(args.store), mirror_home=args.mirror, direct=args.direct)
    except TrackingError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.json:
        import json

        sys.stdout.write(json.dumps([run.to_dict() for run in runs], indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(runs_table(runs) + "\n")
    return EXIT_OK


def run_doctor(args: argparse.Namespace) -> int:
    from gravtrain.stores.doctor import examine_store, repair
    from gravtrain.tracking.store import local_directory, store_uri

    store = named_store(args.store)
    directory = local_directory(store_uri(store))
    if directory is None:
        log.error("%s is not a directory store; the doctor reads MLflow's file store (mlruns).", store)
        return EXIT_USAGE
    if not directory.is_dir():
        log.error("%s does not exist; name the store you trained into.", directory)
        return EXIT_USAGE
    report = examine_store(directory)
    if args.fix:
        repair(report)
    sys.stdout.write(report.summary() + "\n")
    if report.damages and not args.fix:
        log.warning("%d damaged file(s); `gravtrain runs doctor %s --fix` moves them aside (nothing is deleted).",
                    len(report.damages), store)
        return EXIT_FAILED
    return EXIT_OK


def run_compare(args: argparse.Namespace) -> int:
    from gravtrain.stores.compare import compare_runs, read_runs
    from gravtrain.tracking.errors import TrackingError

    try:
        comparison = compare_runs(read_runs(named_store(args.store), [args.reference, *args.others],
                                            mirror_home=args.mirror, direct=args.direct))
    except TrackingError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.json:
        import json

        sys.stdout.write(json.dumps(comparison.to_dict(all_params=args.all), indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(comparison.table(all_params=args.all) + "\n")
    return EXIT_OK


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


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
                  "free space there" if _environment_failure(exc) else "choose another --out directory")
        return EXIT_FAILED if _environment_failure(exc) else EXIT_USAGE
    log.info("wrote %d %s events in %d shard(s) to %s", args.events, args.split, len(paths), args.out)
    return EXIT_OK
