"""The argument parser of ``gravtrain``: every command, its arguments and the function that runs it."""

from __future__ import annotations

import argparse
import sys

from gravtrain.cli.common import EXIT_USAGE
from gravtrain.cli.store_commands import run_compare, run_doctor, run_list, run_ui
from gravtrain.cli.training_commands import (
    run_check, run_evaluate, run_schema, run_simulate, run_train, run_tune,
)
from gravtrain.version import __version__

COMMANDS = ("check", "schema", "train", "tune", "evaluate", "simulate", "ui", "runs")


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
        "list", help="one line per run: name, status, stage, sweep, start, duration, headline metrics, resolved "
                     "config's hash")
    listing.add_argument("store", nargs="?", metavar="STORE",
                         help="the store (default: $MLFLOW_TRACKING_URI, else mlruns here); a directory is read "
                              "through its local mirror, as `gravtrain ui` does")
    listing.add_argument("--json", action="store_true", help="print the runs as JSON instead of a table")
    listing.add_argument("--links", nargs="?", const=5000, type=int, metavar="PORT",
                         help="add each run's page in a `gravtrain ui` on this machine (its --port, default 5000)")
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
    evaluate.add_argument("--event", type=int, metavar="I",
                          help="the event to draw (default: the one with the most matched objects)")
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


def _missing_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


