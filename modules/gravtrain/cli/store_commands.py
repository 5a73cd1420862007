"""The commands that read stores of runs: ui, runs list, runs doctor, runs compare (`gravtrain.stores`)."""

from __future__ import annotations

import argparse
import sys

from gravtrain.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, log
from gravtrain.tracking.store import named_store


def run_ui(args: argparse.Namespace) -> int:
    from gravtrain.stores import serve_ui
    from gravtrain.stores.ui import default_server_log

    if args.store and args.store_option:
        log.error("name the store once: either STORE or --store.")
        return EXIT_USAGE
    return serve_ui(named_store(args.store or args.store_option), host=args.host, port=args.port,
                    direct=args.direct, mirror_home=args.mirror, refresh_seconds=args.refresh,
                    server_log=None if args.verbose else default_server_log(args.port))


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

        listed = [run.to_dict(links_port=args.links) for run in runs]
        sys.stdout.write(json.dumps(listed, indent=2, allow_nan=False) + "\n")
    else:
        sys.stdout.write(runs_table(runs, links_port=args.links) + "\n")
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


