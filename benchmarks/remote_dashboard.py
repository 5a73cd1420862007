"""Browsing a cluster's MLflow store over sshfs: plain ``mlflow server`` on the mount against ``gravtrain ui`` on
the same mount, both timed in one run on one machine.

    python benchmarks/remote_dashboard.py [--runs 50] [--runs-large 500] [--one-way-ms 5] [--skip-plain]
        [--plain-timeout 900] [--out remote_dashboard.json] [--keep]

Needs ``/usr/sbin/sshd``, ``sshfs``, ``fusermount`` (or ``fusermount3``) and ``/dev/fuse`` (Debian:
``apt-get install openssh-server sshfs``), and runs as a user that may log in over ssh with a key (root here).

The scenario, all in a temporary directory:

1. **The cluster.** ``sshd`` on a free loopback port, with its own host key, a client key and a config of its
   own (``sshd -D -e -f CONFIG``). The store is written with MLflow's own client at ``cluster-workdir/mlruns``,
   a symbolic link to ``cluster/mlruns`` that exists only while the "cluster" writes: the artifact locations the
   store records name a path that, like a cluster's home directory seen from a laptop, does not exist where the
   store is browsed. One experiment, created without ``mlflow.experimentKind`` (as older gravtrain did); ``--runs``
   FINISHED runs of 150 dotted params, 20 slashed metrics x 5 steps, the ``gravtrain.*`` tags and five artifacts
   (``config.yaml`` 2 KB, ``evaluation/roc.png`` and ``evaluation/response.png`` 50 KB, ``model/model.keras``
   300 KB, ``checkpoints/progress.json``). Each run ends with the pack gravtrain's tracker writes when a run of
   a directory store ends (`gravtrain.tracking.run_pack`); ``--no-packs`` leaves it out, as for runs of older
   gravtrain, and the mirror then reads every file.
2. **The network.** ``cluster/mlruns`` is mounted at ``laptop/mlruns`` with ``sshfs`` through a ``ProxyCommand``
   relay (``python remote_dashboard.py relay HOST PORT ONE_WAY_MS``, this file) that holds every chunk for
   ``--one-way-ms`` in each direction (its own queue and thread per direction, so throughput is not one chunk per
   delay), and with ``dcache_timeout=1`` so that a new run on the cluster is listed within about a second. The
   round trip the mount really has is measured: the median of 20 ``stat`` calls of fresh paths on it.
3. **Plain** ``mlflow server --backend-store-uri file:///laptop/mlruns`` (``--skip-plain`` skips it): seconds
   from launch until ``runs/search`` (max_results 100) returns every run; with ``--plain-full`` also one more
   ``runs/search`` and a new run written on the cluster side with one ``runs/search`` started 1.5 s later (past
   sshfs's 1-s listing cache), each as long as the first view; and the artifacts of ``--plain-artifact-runs``
   runs listed and downloaded (each request reads the whole run over the mount, so not every run's). A
   ``runs/search`` longer than ``--plain-timeout`` is recorded as a timeout.
4. **gravtrain ui** on the same mount with a fresh ``--mirror`` folder (a cold mirror) and ``--refresh 1``:
   seconds from launch until the ``browse`` line has been logged and ``runs/search`` returns every run (target
   <= 20 s), the mirror's own seconds from its ``mirrored ...`` line, ``runs/search`` once mirrored (median of 5;
   target <= 1 s), a new run written on the cluster side until ``runs/search`` returns it (polled every 0.1 s;
   target <= 3 s), every artifact of every run listed and downloaded through the UI and compared byte for byte
   with the cluster's file (target: all), the experiment's ``mlflow.experimentKind`` through
   ``experiments/search``; then SIGTERM (exit code 143 expected, no server left answering); then, the UI
   stopped, what one background refresh costs when nothing is new (``StoreMirror.refresh()``, median of 3).
5. **Warm restart:** ``gravtrain ui`` again on the same mirror folder: first full view.
6. **Workers:** ``StoreMirror(mount, fresh folder, workers=W).refresh()`` for W = 8, 32, 64 on the first mount,
   with the most threads the sshfs process had meanwhile (each FUSE thread of sshfs waits on one reply).
7. **sshfs's default cache** (``--skip-default-cache`` skips it): the first mount remounted without
   ``dcache_timeout`` (sshfs then keeps listings 20 s), ``gravtrain ui`` on the warm mirror, and a new run
   written on the cluster until ``runs/search`` returns it.
8. **Large store:** ``--runs-large`` runs (0 skips) of the same shape in a second store on a second mount, through
   ``gravtrain ui`` only: as in 4 without the artifacts, with the first page of ``runs/search`` (the 100 newest
   runs, what the UI opens on) for the first view, the list time and the new run, and every page besides. Plain
   ``mlflow server`` is not run on it: it reads every run's files one at a time, so it would take about ten
   times its 50-run figure.
9. **Server start-up:** ``mlflow server`` on the (local) mirror until ``/health`` answers, with MLflow's default
   4 workers (what ``gravtrain ui`` starts) and with ``--workers 1``.

Servers run as child processes with their output in log files of the temporary directory; the mounts are
unmounted and sshd and the servers stopped in every case, Ctrl-C included. Prints one table per scenario and
writes every figure to ``--out`` (JSON) with the machine, date, load averages, sshfs and MLflow versions; the
figures go in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from dashboard.cluster_store import ClusterStore  # noqa: E402
from dashboard.processes import busiest_processes, load_average, log, missing_tools  # noqa: E402
from dashboard.relay import relay  # noqa: E402
from dashboard.report import print_report  # noqa: E402
from dashboard.rig import Bench, measure_round_trip, unmount  # noqa: E402
from dashboard.scenarios import plain_server, server_start_table, ui_scenario, workers_table  # noqa: E402
from dashboard.settings import (  # noqa: E402
    INSTALL_HINT, LISTING_CACHE_WAIT, TARGET_FIRST_VIEW, TARGET_LIST, TARGET_NEW_RUN, Stop,
)
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="runs in the main store (default 50)")
    parser.add_argument("--runs-large", type=int, default=500, help="runs in the large store; 0 skips it")
    parser.add_argument("--one-way-ms", type=float, default=5.0,
                        help="delay the relay adds in each direction (default 5: ~10 ms round trip)")
    parser.add_argument("--skip-plain", action="store_true", help="do not time plain mlflow server")
    parser.add_argument("--plain-full", action="store_true",
                        help="also time plain mlflow server's second list and a new run (each as long as its "
                             "first view: minutes)")
    parser.add_argument("--no-packs", action="store_true",
                        help="write the runs without the pack gravtrain writes when a run ends (as older "
                             "gravtrain did), so that the mirror reads every file")
    parser.add_argument("--plain-timeout", type=float, default=900.0,
                        help="seconds plain mlflow server gets for its first full view, and per runs/search")
    parser.add_argument("--plain-artifact-runs", type=int, default=3,
                        help="runs whose artifacts are fetched through plain mlflow server (default 3)")
    parser.add_argument("--workers", default="8,32,64", help="StoreMirror workers of the side table")
    parser.add_argument("--skip-default-cache", action="store_true",
                        help="do not time a new run through sshfs's default 20-s listing cache")
    parser.add_argument("--out", default="remote_dashboard.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (printed)")
    return parser.parse_args(argv)


def versions() -> dict:
    try:
        sshfs = subprocess.run(["sshfs", "--version"], capture_output=True, text=True, timeout=10)
        sshfs_version = " / ".join(line.strip() for line in (sshfs.stdout + sshfs.stderr).splitlines() if line)
    except (OSError, subprocess.SubprocessError) as exc:
        sshfs_version = repr(exc)
    from importlib.metadata import version

    return {"sshfs": sshfs_version, "mlflow": version("mlflow"), "python": platform.python_version()}


def run(args, root: Path, report: dict) -> None:
    bench = Bench(root, args.one_way_ms)
    try:
        bench.start_sshd()
        log(f"sshd on 127.0.0.1:{bench.sshd_port}; writing {args.runs} runs ...")
        store = ClusterStore(root / "main", seed=1, packs=not args.no_packs)
        report["store_write_seconds"] = store.create(args.runs)
        mountpoint = root / "main" / "laptop" / "mlruns"
        report["sshfs_command"] = " ".join(shlex.quote(p) for p in bench.mount(store.real, mountpoint))
        report["recorded_artifact_root_example"] = store.recorded_artifact_root(store.run_ids()[0])
        report["round_trip"] = measure_round_trip(mountpoint)
        log(f"mounted; round trip {report['round_trip']['median_seconds'] * 1000:.1f} ms")

        if args.skip_plain:
            report["plain"] = {"skipped": True, "reason": "--skip-plain"}
        else:
            report["plain"] = plain_server(bench, store, mountpoint, args)
        mirror = root / "main" / "mirror"
        time.sleep(2 * LISTING_CACHE_WAIT)
        report["ui_cold"] = ui_scenario(bench, "ui-cold", store, mountpoint, mirror, new_run=True,
                                        artifacts=True, experiment_kind=True, idle_refresh=True)
        report["ui_warm"] = ui_scenario(bench, "ui-warm", store, mountpoint, mirror, new_run=False,
                                        artifacts=False, experiment_kind=False)
        new_run = report["ui_cold"].get("new_run", {}).get("run_id")
        if new_run:
            store.remove_run(new_run)  # the side table on the same runs as the other scenarios
        report["workers"] = workers_table(mountpoint, root / "main", [int(w) for w in args.workers.split(",")])

        if args.skip_default_cache:
            report["ui_default_cache"] = {"skipped": True}
        else:
            unmount(mountpoint)
            bench.mount(store.real, mountpoint, listing_cache_1s=False)
            report["ui_default_cache"] = ui_scenario(bench, "ui-default-cache", store, mountpoint, mirror,
                                                     new_run=True, artifacts=False, experiment_kind=False)
            report["ui_default_cache"]["sshfs_options"] = "sshfs defaults (no dcache_timeout: listings kept 20 s)"

        if args.runs_large:
            log(f"writing {args.runs_large} runs ...")
            large = ClusterStore(root / "large", seed=2, packs=not args.no_packs)
            report["large_store_write_seconds"] = large.create(args.runs_large)
            large_mount = root / "large" / "laptop" / "mlruns"
            bench.mount(large.real, large_mount)
            time.sleep(2 * LISTING_CACHE_WAIT)
            report["ui_large"] = ui_scenario(bench, "ui-large", large, large_mount, root / "large" / "mirror",
                                             new_run=True, artifacts=False, experiment_kind=False,
                                             idle_refresh=True)
            report["plain_large"] = {
                "skipped": True, "reason": "plain mlflow server reads every run's files one at a time over the "
                "mount, so it would take about ten times its 50-run figure; not run"}
        else:
            report["ui_large"] = {"skipped": True}
        report["server_start"] = server_start_table(bench, mirror / "store")
    finally:
        bench.close()


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "relay":
        return relay(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    args = parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"remote_dashboard.py needs {', '.join(missing)}: on Debian, {INSTALL_HINT}", file=sys.stderr)
        return 2

    def stop(number, frame):
        raise Stop(number)

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop)
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/remote_dashboard.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "load_average_start": load_average(), "busiest_processes_at_start": busiest_processes(),
        "one_way_ms": args.one_way_ms, "plain_timeout": args.plain_timeout, "runs": args.runs,
        "runs_large": args.runs_large, **versions(),
        "targets_seconds": {"first_full_view": TARGET_FIRST_VIEW, "list": TARGET_LIST, "new_run": TARGET_NEW_RUN}}
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="remote-dashboard-"))
    code = 0
    try:
        run(args, root, report)
    except (KeyboardInterrupt, Stop) as exc:
        report["interrupted"] = repr(exc)
        log("interrupted: cleaned up")
        code = 130
    finally:
        report["load_average_end"] = load_average()
        report["busiest_processes_at_end"] = busiest_processes()
        report["total_seconds"] = time.monotonic() - started
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if "round_trip" in report:
        print_report(report)
    print(f"\nwrote {args.out} ({report['total_seconds']:.0f} s in all)")
    return code


if __name__ == "__main__":
    sys.exit(main())
