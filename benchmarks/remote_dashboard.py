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
import contextlib
import hashlib
import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "apt-get install openssh-server sshfs"
#: gravtrain ui's targets, in seconds.
TARGET_FIRST_VIEW, TARGET_LIST, TARGET_NEW_RUN = 20.0, 1.0, 3.0
#: Seconds to wait for anything not otherwise bounded (a gravtrain ui first view, a new run to show).
UI_TIMEOUT, NEW_RUN_TIMEOUT = 600.0, 120.0
#: Within how long sshfs (with dcache_timeout=1) lists a new directory; a one-shot request waits this long first.
LISTING_CACHE_WAIT = 1.5
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
METRIC_KEYS = [
    "physics/efficiency", "physics/purity", "physics/fake_rate", "physics/energy_resolution",
    "physics/energy_response", "physics/signal_efficiency", "physics/noise_rejection", "train/loss/total",
    "train/loss/attractive", "train/loss/repulsive", "train/loss/beta", "train/loss/energy", "train/objective",
    "val/loss/total", "val/loss/attractive", "val/loss/repulsive", "val/loss/beta", "val/loss/energy",
    "val/objective", "system/step_seconds"]
PARAM_KEYS = [f"{section}.{index}.{field}"
              for section in ("Architecture.gravnet", "Architecture.dense", "Training", "Loss.terms",
                              "Data.sources", "Plotting.panels")
              for index in range(3)
              for field in ("n_neighbours", "n_propagate", "space_dims", "units", "activation", "dropout",
                            "batch_norm", "learning_rate", "weight", "enabled")][:150]
#: A run's artifacts: path -> size in bytes (random bytes, text for the YAML and the JSON).
ARTIFACTS = {"config.yaml": 2_000, "evaluation/roc.png": 50_000, "evaluation/response.png": 50_000,
             "model/model.keras": 300_000, "checkpoints/progress.json": 200}


class Stop(Exception):
    """SIGTERM or SIGHUP to the benchmark: unwinds like Ctrl-C, through every cleanup."""


# ------------------------------------------------------------------------------------------------- relay
def relay(host: str, port: int, one_way_ms: float) -> int:
    """Pipe stdin to ``host:port`` and back to stdout, each chunk held ``one_way_ms`` in each direction (a
    ProxyCommand for ssh). Each direction: a reader thread stamps chunks with their due time into a queue, a
    writer thread sends them when due, in order."""
    delay = one_way_ms / 1000.0
    connection = socket.create_connection((host, port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finished = threading.Event()

    def direction(read, write, at_end, ends_relay: bool):
        chunks: queue.SimpleQueue = queue.SimpleQueue()

        def forward():
            try:
                while True:
                    due, data = chunks.get()
                    if data is None:
                        break
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    view = memoryview(data)
                    while view:
                        view = view[write(view):]
                at_end()
                if ends_relay:
                    finished.set()
            except OSError:
                finished.set()

        threading.Thread(target=forward, daemon=True).start()
        try:
            while True:
                data = read()
                if not data:
                    break
                chunks.put((time.monotonic() + delay, data))
        except OSError:
            pass
        chunks.put((0.0, None))

    threading.Thread(target=direction, daemon=True, args=(
        lambda: os.read(0, 65536), connection.send, lambda: connection.shutdown(socket.SHUT_WR), False)).start()
    threading.Thread(target=direction, daemon=True, args=(
        lambda: connection.recv(65536), lambda view: os.write(1, view), lambda: os.close(1), True)).start()
    finished.wait()
    os._exit(0)


# ---------------------------------------------------------------------------------------------- helpers
def missing_tools() -> list[str]:
    missing = [name for name, present in (
        (SSHD, os.path.exists(SSHD)), ("sshfs", shutil.which("sshfs")), ("ssh-keygen", shutil.which("ssh-keygen")),
        ("fusermount", shutil.which("fusermount") or shutil.which("fusermount3")),
        ("/dev/fuse", os.path.exists("/dev/fuse"))) if not present]
    return missing


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def busiest_processes(count: int = 5, seconds: float = 1.0) -> list[str]:
    """What else is running: the processes that used the most CPU over ``seconds``, as "NN% command"."""
    def cpu_times() -> dict[int, tuple[int, str]]:
        times = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != os.getpid():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = Path(f"/proc/{name}/stat").read_text()
                    fields = stat[stat.rindex(")") + 2:].split()
                    command = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    times[int(name)] = (int(fields[11]) + int(fields[12]), command.strip()[:100] or stat.split()[1])
        return times

    before = cpu_times()
    time.sleep(seconds)
    after = cpu_times()
    ticks = os.sysconf("SC_CLK_TCK") * seconds
    used = sorted(((after[pid][0] - before[pid][0], after[pid][1]) for pid in after if pid in before), reverse=True)
    return [f"{100 * delta / ticks:.0f}% {command}" for delta, command in used[:count] if delta > 0]


def sshfs_process(mountpoint: Path) -> int | None:
    """The process ID of the sshfs serving ``mountpoint``."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                words = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
                if words and words[0].endswith(b"sshfs") and str(mountpoint).encode() in words:
                    return int(name)
    return None


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stop_process(process: subprocess.Popen, *, group: bool = True, first=signal.SIGTERM, grace: float = 20.0):
    """Stop a child started in its own session (its process group too), escalating to SIGKILL; its exit code."""
    if process.poll() is not None:
        return process.returncode
    for number in (first, signal.SIGKILL):
        try:
            if group:
                os.killpg(process.pid, number)
            else:
                process.send_signal(number)
        except ProcessLookupError:
            pass
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


# -------------------------------------------------------------------------------------------------- HTTP
class Server:
    """REST calls to an MLflow server at ``http://127.0.0.1:port``."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def request(self, path: str, body: dict | None = None, timeout: float = 60.0) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"} if body is not None else {})
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.read()

    def answers(self) -> bool:
        try:
            self.request("/health", timeout=2)
            return True
        except urllib.error.HTTPError:
            return True
        except (OSError, ValueError):
            return False

    def search_runs(self, experiment_id: str, timeout: float = 60.0, *,
                    first_page_only: bool = False) -> tuple[list[str], float, int]:
        """Every run of the experiment (pages of 100, as MLflow's UI asks; only the first, the newest runs, which
        is what the UI shows on opening, with ``first_page_only``): the IDs, seconds, pages."""
        started, ids, token, pages = time.monotonic(), [], None, 0
        while True:
            body = {"experiment_ids": [experiment_id], "max_results": 100}
            if token:
                body["page_token"] = token
            reply = json.loads(self.request("/api/2.0/mlflow/runs/search", body, timeout=timeout))
            pages += 1
            ids += [run["info"]["run_id"] for run in reply.get("runs", [])]
            token = reply.get("next_page_token")
            if not token or first_page_only:
                return ids, time.monotonic() - started, pages

    def experiment_tags(self, experiment_id: str) -> dict[str, str]:
        reply = json.loads(self.request("/api/2.0/mlflow/experiments/search", {"max_results": 1000}))
        for experiment in reply.get("experiments", []):
            if experiment["experiment_id"] == experiment_id:
                return {tag["key"]: tag["value"] for tag in experiment.get("tags", [])}
        return {}

    def list_artifacts(self, run_id: str, path: str = "") -> list[str]:
        """Every file below ``path`` of a run's artifacts, listed as the UI lists them (folder by folder)."""
        query = urllib.parse.urlencode({"run_uuid": run_id, **({"path": path} if path else {})})
        reply = json.loads(self.request(f"/ajax-api/2.0/mlflow/artifacts/list?{query}"))
        files = []
        for item in reply.get("files", []):
            if item.get("is_dir"):
                files += self.list_artifacts(run_id, item["path"])
            else:
                files.append(item["path"])
        return files

    def get_artifact(self, run_id: str, path: str) -> bytes:
        query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
        return self.request(f"/get-artifact?{query}")


def check_artifacts(server: Server, store: "ClusterStore", run_ids: list[str]) -> dict:
    """List and download every artifact of ``run_ids`` through the server; compare with the cluster's files."""
    started = time.monotonic()
    expected = listed = identical = 0
    errors: list[str] = []
    request_seconds = []
    for run_id in run_ids:
        on_cluster = store.artifact_files(run_id)
        expected += len(on_cluster)
        before = time.monotonic()
        try:
            seen = set(server.list_artifacts(run_id))
        except (OSError, ValueError) as exc:
            seen = set()
            errors.append(f"list {run_id}: {exc}")
        request_seconds.append(time.monotonic() - before)
        listed += len(seen & set(on_cluster))
        for path, local in on_cluster.items():
            before = time.monotonic()
            try:
                identical += server.get_artifact(run_id, path) == local.read_bytes()
            except (OSError, ValueError) as exc:
                errors.append(f"get {run_id}/{path}: {exc}")
            request_seconds.append(time.monotonic() - before)
    return {"runs": len(run_ids), "files_expected": expected, "files_listed": listed,
            "files_identical": identical, "seconds": time.monotonic() - started,
            "requests": len(request_seconds), "median_request_seconds": statistics.median(request_seconds)
            if request_seconds else None, "errors": len(errors), "first_errors": errors[:5]}


# ------------------------------------------------------------------------------------------------- store
class ClusterStore:
    """An MLflow directory store written as on a cluster: at ``alias`` (a link to ``real`` present only while
    writing, so the recorded artifact locations name a path that does not exist where the store is browsed)."""

    def __init__(self, root: Path, seed: int, *, packs: bool = True):
        self.packs = packs
        self.real = root / "cluster" / "mlruns"
        self.alias_folder = root / "cluster-workdir"
        self.alias = self.alias_folder / "mlruns"
        self.real.mkdir(parents=True)
        self.staging = root / "staging"
        self.seed = seed
        self.experiment_id: str | None = None
        self.written = 0

    @contextlib.contextmanager
    def writing(self):
        """The cluster side's path exists while it writes."""
        self.alias_folder.symlink_to(self.real.parent, target_is_directory=True)
        try:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            from mlflow.tracking import MlflowClient

            yield MlflowClient(tracking_uri=self.alias.as_uri())
        finally:
            self.alias_folder.unlink()

    def create(self, runs: int) -> float:
        started = time.monotonic()
        with self.writing() as client:
            self.experiment_id = client.create_experiment("hgcal-gravnet")
            tags = client.get_experiment(self.experiment_id).tags
            if EXPERIMENT_KIND[0] in tags:  # as older gravtrain made them: without it
                client.delete_experiment_tag(self.experiment_id, EXPERIMENT_KIND[0])
            for _ in range(runs):
                self.write_run(client)
        return time.monotonic() - started

    def write_run(self, client, on_created=None) -> str:
        """One FINISHED run of the benchmark's shape; ``on_created(run_id)`` is called once its meta.yaml is
        written, and may return a thread-safe way to continue (the rest is written anyway)."""
        from mlflow.entities import Metric, Param

        index = self.written
        self.written += 1
        digest = hashlib.sha256(f"{self.seed}-{index}".encode()).hexdigest()
        run = client.create_run(self.experiment_id, run_name=f"hgcal-{index:04d}", tags={
            "gravtrain.stage": "train", "gravtrain.config_sha256": digest, "gravtrain.version": "0.5.0"})
        run_id = run.info.run_id
        if on_created is not None:
            on_created(run_id)
        params = [Param(key, str((number * 31 + index) % 97)) for number, key in enumerate(PARAM_KEYS)]
        now = int(time.time() * 1000)
        metrics = [Metric(key, 1.0 / (1 + step + number + index % 7), now + step, step)
                   for number, key in enumerate(METRIC_KEYS) for step in range(5)]
        client.log_batch(run_id, params=params, metrics=metrics)
        folder = self.staging / run_id
        for path, size in ARTIFACTS.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.endswith((".yaml", ".json")):
                line = f"# run {run_id} {digest}\n".encode()
                target.write_bytes((line * (size // len(line) + 1))[:size])
            else:
                target.write_bytes(os.urandom(size))
        client.log_artifacts(run_id, str(folder))
        shutil.rmtree(folder)
        client.set_terminated(run_id, "FINISHED")
        if self.packs:  # as gravtrain's tracker ends a run of a directory store
            from gravtrain.tracking.run_pack import write_run_pack

            write_run_pack(self.real / self.experiment_id / run_id)
        return run_id

    def run_ids(self) -> list[str]:
        folder = self.real / self.experiment_id
        return sorted(p.name for p in folder.iterdir() if (p / "meta.yaml").is_file())

    def artifact_files(self, run_id: str) -> dict[str, Path]:
        root = self.real / self.experiment_id / run_id / "artifacts"
        return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}

    def remove_run(self, run_id: str) -> None:
        shutil.rmtree(self.real / self.experiment_id / run_id)

    def recorded_artifact_root(self, run_id: str) -> str:
        import yaml

        return yaml.safe_load((self.real / self.experiment_id / run_id / "meta.yaml").read_text())["artifact_uri"]


# ------------------------------------------------------------------------------------------- the machine
class Bench:
    """The temporary machinery: sshd, mounts and servers, every one of them undone by `close`."""

    def __init__(self, root: Path, one_way_ms: float):
        self.root = root
        self.one_way_ms = one_way_ms
        self.cleanups: list = []
        self.sshd_port = free_port()
        self.client_key = root / "ssh" / "client_key"

    def close(self) -> None:
        while self.cleanups:
            action = self.cleanups.pop()
            try:
                action()
            except Exception as exc:  # keep undoing the rest
                log(f"cleanup: {exc!r}")

    def start_sshd(self) -> None:
        folder = self.root / "ssh"
        folder.mkdir()
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
        shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
        config = folder / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {self.sshd_port}", f"HostKey {folder / 'host_key'}",
            f"PidFile {folder / 'sshd.pid'}", f"AuthorizedKeysFile {folder / 'authorized_keys'}",
            "StrictModes no", "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "PermitRootLogin yes", "Subsystem sftp internal-sftp", "MaxStartups 20", ""]))
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation directory
        output = open(folder / "sshd.log", "wb")
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.cleanups.append(lambda: (stop_process(process), output.close()))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited with {process.returncode}: {(folder / 'sshd.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.sshd_port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError("sshd did not listen within 20 s")

    def mount(self, remote: Path, mountpoint: Path, *, listing_cache_1s: bool = True) -> list[str]:
        """Mount ``remote`` at ``mountpoint`` over sshfs through the delaying relay; returns the command."""
        mountpoint.mkdir(parents=True, exist_ok=True)
        proxy = " ".join(shlex.quote(part) for part in (sys.executable, str(Path(__file__).resolve()), "relay",
                                                        "127.0.0.1", str(self.sshd_port), f"{self.one_way_ms:g}"))
        command = ["sshfs", f"root@127.0.0.1:{remote}", str(mountpoint), "-o", f"ProxyCommand={proxy}",
                   "-o", f"IdentityFile={self.client_key}", "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
        if listing_cache_1s:
            command += ["-o", "dcache_timeout=1"]
        subprocess.run(command, check=True, timeout=60)
        self.cleanups.append(lambda: unmount(mountpoint))
        return command

    def launch(self, name: str, command: list[str], env: dict) -> tuple[subprocess.Popen, Path]:
        """A server as a child in its own session, its output in ``<root>/logs/<name>.log``."""
        path = self.root / "logs" / f"{name}.log"
        path.parent.mkdir(exist_ok=True)
        output = open(path, "wb")
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
        self.cleanups.append(lambda: (stop_process(process), output.close()))
        return process, path


def unmount(mountpoint: Path) -> None:
    if not os.path.ismount(mountpoint):
        return
    for command in (["fusermount3", "-u"], ["fusermount", "-u"], ["umount", "-l"]):
        if shutil.which(command[0]):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(command + [str(mountpoint)], capture_output=True, timeout=30)
        if not os.path.ismount(mountpoint):
            return
    log(f"could not unmount {mountpoint}")


def measure_round_trip(mountpoint: Path, count: int = 20) -> dict:
    """Median seconds of ``stat`` of fresh (absent) paths on the mount: one SFTP request each."""
    times = []
    for index in range(count):
        path = mountpoint / f".probe-{os.getpid()}-{time.monotonic_ns()}-{index}"
        started = time.perf_counter()
        with contextlib.suppress(FileNotFoundError):
            os.stat(path)
        times.append(time.perf_counter() - started)
    return {"stat_calls": count, "median_seconds": statistics.median(times), "min_seconds": min(times),
            "max_seconds": max(times)}


# ---------------------------------------------------------------------------------------------- scenarios
def plain_server(bench: Bench, store: ClusterStore, mountpoint: Path, args) -> dict:
    port = free_port()
    environment = {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"}
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", mountpoint.as_uri(),
               "--host", "127.0.0.1", "--port", str(port)]
    expected = store.run_ids()
    result = {"command": " ".join(command), "runs": len(expected), "load_average_at_start": load_average()}
    server = Server(port)
    started = time.monotonic()
    process, log_path = bench.launch("plain-mlflow-server", command, environment)
    result["log"] = str(log_path)
    deadline = started + args.plain_timeout
    while not server.answers():
        if process.poll() is not None:
            result["error"] = f"the server exited with {process.returncode}"
            return result
        if time.monotonic() > deadline:
            result["error"] = "the server did not answer /health"
            return result
        time.sleep(0.25)
    result["answering_seconds"] = time.monotonic() - started
    log(f"plain mlflow server answers after {result['answering_seconds']:.1f} s; runs/search of "
        f"{len(expected)} runs ...")
    try:
        ids, seconds, _ = server.search_runs(store.experiment_id, timeout=max(deadline - time.monotonic(), 1))
        result["first_full_view_seconds"] = time.monotonic() - started
        result["first_search_seconds"] = seconds
        result["first_search_runs"] = len(ids)
        result["first_view_complete"] = set(expected) <= set(ids)
    except (OSError, ValueError) as exc:
        result.update(first_view_timed_out=True, first_view_error=repr(exc),
                      first_view_gave_up_after_seconds=time.monotonic() - started)
        log(f"plain runs/search failed or timed out after {time.monotonic() - started:.0f} s: {exc!r}")
        stop_process(process)
        return result
    log(f"first full view in {result['first_full_view_seconds']:.1f} s")
    if args.plain_full:
        plain_list_and_new_run(server, store, result, args)
    log(f"artifacts of {args.plain_artifact_runs} run(s) ...")
    result["artifacts"] = check_artifacts(server, store, expected[:args.plain_artifact_runs])
    result["artifacts"]["recorded_artifact_root_example"] = store.recorded_artifact_root(expected[0])
    result["exit_code"] = stop_process(process)
    return result


def plain_list_and_new_run(server: Server, store: ClusterStore, result: dict, args) -> None:
    """``--plain-full``: one more ``runs/search``, then a new run on the cluster side and one ``runs/search``
    started `LISTING_CACHE_WAIT` seconds after it was written (the run is removed again afterwards)."""
    try:
        ids, seconds, _ = server.search_runs(store.experiment_id, timeout=args.plain_timeout)
        result["list_warm_seconds"] = seconds
    except (OSError, ValueError) as exc:
        result.update(list_warm_timed_out=True, list_warm_error=repr(exc))
    log(f"list (warm) {result.get('list_warm_seconds', float('nan')):.1f} s; a new run on the cluster ...")
    created = {}
    with store.writing() as client:
        new_run = store.write_run(client, on_created=lambda run_id: created.setdefault("at", time.monotonic()))
    time.sleep(max(created["at"] + LISTING_CACHE_WAIT - time.monotonic(), 0))
    try:
        ids, seconds, _ = server.search_runs(store.experiment_id, timeout=args.plain_timeout)
        result.update(new_run_search_seconds=seconds, new_run_shown=new_run in ids,
                      new_run_seconds=time.monotonic() - created["at"])
    except (OSError, ValueError) as exc:
        result.update(new_run_timed_out=True, new_run_error=repr(exc))
    store.remove_run(new_run)  # the next scenarios see the same runs as this one did
    log(f"new run shown after {result.get('new_run_seconds', float('nan')):.1f} s (one runs/search started "
        f"{LISTING_CACHE_WAIT} s after it was written)")


class UiRun:
    """One ``gravtrain ui`` process, with its log lines stamped with the seconds since launch as they appear."""

    def __init__(self, bench: Bench, name: str, mountpoint: Path, mirror: Path, refresh: float = 1.0):
        self.port = free_port()
        self.command = [sys.executable, "-m", "gravtrain", "ui", str(mountpoint), "--port", str(self.port),
                        "--mirror", str(mirror), "--refresh", f"{refresh:g}"]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO / "modules")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
        environment.pop("MLFLOW_ALLOW_FILE_STORE", None)  # gravtrain ui sets it for its server itself
        self.server = Server(self.port)
        self.started = time.monotonic()
        self.process, self.log_path = bench.launch(name, self.command, environment)
        self.lines: list[tuple[float, str]] = []
        self._offset = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def poll_log(self) -> None:
        with open(self.log_path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        complete = data[:data.rfind(b"\n") + 1]
        self._offset += len(complete)
        now = self.elapsed()
        self.lines += [(now, line) for line in complete.decode(errors="replace").splitlines()]

    def line_with(self, pattern: str) -> tuple[float, re.Match] | None:
        for seconds, line in self.lines:
            match = re.search(pattern, line)
            if match:
                return seconds, match
        return None

    def first_full_view(self, expected: list[str]) -> dict:
        """Seconds until the browse line is logged and runs/search returns the runs the UI opens on: all of
        them up to 100 (one page), else the first page full, and then (``all_runs_seconds``) every page."""
        answering = browse = None
        page = min(len(expected), 100)
        while self.elapsed() < UI_TIMEOUT:
            if self.process.poll() is not None:
                self.poll_log()
                return {"error": f"gravtrain ui exited with {self.process.returncode}",
                        "log_tail": [line for _, line in self.lines[-15:]]}
            self.poll_log()
            if answering is None and self.server.answers():
                answering = self.elapsed()
            if browse is None and self.line_with(r"browse http"):
                browse = self.elapsed()
            if browse is not None:
                with contextlib.suppress(OSError, ValueError):
                    ids, _, pages = self.server.search_runs(self.experiment_id, first_page_only=True)
                    if len(set(ids) & set(expected)) >= page:
                        result = {"first_full_view_seconds": self.elapsed(), "server_answering_seconds": answering,
                                  "browse_line_seconds": browse}
                        if len(expected) > page:
                            ids, _, pages = self.server.search_runs(self.experiment_id)
                            result.update(all_runs_seconds=self.elapsed(), all_runs_shown=set(expected) <= set(ids),
                                          pages=pages)
                        self.poll_log()
                        return {**result, **self.log_figures()}
            time.sleep(0.1)
        return {"error": f"no full view within {UI_TIMEOUT:.0f} s", "server_answering_seconds": answering,
                "browse_line_seconds": browse}

    def log_figures(self) -> dict:
        figures = {}
        mirrored = self.line_with(r"mirrored (.*) in ([\d.]+) s")
        if mirrored:
            figures.update(mirror_seconds=float(mirrored[1].group(2)), mirror_line_seconds=mirrored[0],
                           mirror_report=mirrored[1].group(1))
        ready = self.line_with(r"ready in ([\d.]+) s")
        if ready:
            figures["ready_seconds_logged"] = float(ready[1].group(1))
        return figures

    def list_times(self, repeats: int = 5) -> dict:
        """runs/search, median of ``repeats``: the first page (what the UI shows on opening; the target) and,
        where there is more than one page, every page."""
        first = [self.server.search_runs(self.experiment_id, first_page_only=True)[1] for _ in range(repeats)]
        result = {"list_seconds_median": statistics.median(first), "list_seconds": first}
        _, _, pages = self.server.search_runs(self.experiment_id)
        if pages > 1:
            every = [self.server.search_runs(self.experiment_id)[1] for _ in range(repeats)]
            result.update(list_all_pages_seconds_median=statistics.median(every), list_all_pages_seconds=every,
                          pages=pages)
        return result

    def new_run(self, store: ClusterStore) -> dict:
        """Write a run on the cluster side; seconds from its meta.yaml until runs/search returns it."""
        created: dict = {}
        ready = threading.Event()

        def write():
            with store.writing() as client:
                store.write_run(client, on_created=lambda run_id: (created.update(at=time.monotonic(), id=run_id),
                                                                    ready.set()))
            created["written"] = time.monotonic()

        writer = threading.Thread(target=write)
        writer.start()
        ready.wait(60)
        polls = 0
        result = {"run_id": created.get("id")}
        while time.monotonic() - created["at"] < NEW_RUN_TIMEOUT:
            polls += 1
            with contextlib.suppress(OSError, ValueError):
                if created["id"] in self.server.search_runs(self.experiment_id, first_page_only=True)[0]:
                    result.update(new_run_seconds=time.monotonic() - created["at"], polls=polls)
                    break
            time.sleep(0.1)
        else:
            result["error"] = f"not shown within {NEW_RUN_TIMEOUT:.0f} s"
        writer.join()
        result["run_written_seconds"] = created["written"] - created["at"]
        self.poll_log()
        return result

    def stop(self) -> dict:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = stop_process(self.process)
        self.poll_log()
        return {"exit_code": code, "server_left_answering": self.server.answers()}


def ui_scenario(bench: Bench, name: str, store: ClusterStore, mountpoint: Path, mirror: Path, *,
                new_run: bool, artifacts: bool, experiment_kind: bool, idle_refresh: bool = False) -> dict:
    expected = store.run_ids()
    result = {"runs": len(expected), "load_average_at_start": load_average()}
    ui = UiRun(bench, name, mountpoint, mirror)
    ui.experiment_id = store.experiment_id
    result["command"] = " ".join(ui.command)
    result["log"] = str(ui.log_path)
    try:
        result.update(ui.first_full_view(expected))
        if "error" in result:
            log(f"{name}: {result['error']}")
            return result
        log(f"{name}: first full view of {len(expected)} runs in {result['first_full_view_seconds']:.1f} s "
            f"(mirror {result.get('mirror_seconds', float('nan')):.1f} s)")
        result.update(ui.list_times())
        if new_run:
            result["new_run"] = ui.new_run(store)
            log(f"{name}: new run shown after {result['new_run'].get('new_run_seconds', float('nan')):.2f} s")
        if artifacts:
            result["artifacts"] = check_artifacts(ui.server, store, store.run_ids())
            log(f"{name}: artifacts {result['artifacts']['files_identical']}/{result['artifacts']['files_expected']}"
                f" identical in {result['artifacts']['seconds']:.1f} s")
        if experiment_kind:
            tags = ui.server.experiment_tags(store.experiment_id)
            result["experiment_kind"] = tags.get(EXPERIMENT_KIND[0])
            result["experiment_kind_ok"] = tags.get(EXPERIMENT_KIND[0]) == EXPERIMENT_KIND[1]
    finally:
        result["stop"] = ui.stop()
        if idle_refresh and "first_full_view_seconds" in result:
            result["idle_refresh"] = idle_refresh_seconds(mountpoint, mirror)
        result["log_lines"] = [f"{seconds:7.2f}s {line}" for seconds, line in ui.lines
                               if '"GET /' not in line and '"POST /' not in line and "Warning" not in line
                               and "from starlette" not in line][:40]
    return result


def idle_refresh_seconds(mountpoint: Path, mirror: Path, repeats: int = 3) -> dict:
    """What each background refresh of an up-to-date mirror costs (the UI stopped): `StoreMirror.refresh`
    with nothing new, ``repeats`` times, wall and CPU seconds of this process."""
    if str(REPO / "modules") not in sys.path:
        sys.path.insert(0, str(REPO / "modules"))
    from gravtrain.stores.mirror import StoreMirror

    walls, cpus = [], []
    for _ in range(repeats):
        time.sleep(LISTING_CACHE_WAIT)  # as a refresh 1 s after the last one finds it: listings expired
        before = time.process_time()
        report = StoreMirror(mountpoint, mirror).refresh()
        walls.append(report.seconds)
        cpus.append(time.process_time() - before)
    state = mirror / "state.json"
    return {"seconds_median": statistics.median(walls), "seconds": walls, "cpu_seconds": cpus,
            "runs": report.runs, "files_read": report.files_read, "directories_listed": report.directories_listed,
            "state_json_bytes": state.stat().st_size if state.exists() else None}


def server_start_table(bench: Bench, store: Path) -> list[dict]:
    """Seconds until ``mlflow server`` answers /health on a local store: MLflow's default of 4 uvicorn workers
    (what ``gravtrain ui`` starts) against one."""
    rows = []
    for workers in (None, 1):
        port = free_port()
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store.as_uri(),
                   "--host", "127.0.0.1", "--port", str(port)] + (["--workers", str(workers)] if workers else [])
        started = time.monotonic()
        process, _ = bench.launch(f"server-start-{workers or 'default'}", command,
                                  {**os.environ, "MLFLOW_ALLOW_FILE_STORE": "true"})
        server = Server(port)
        while not server.answers() and process.poll() is None and time.monotonic() - started < 300:
            time.sleep(0.1)
        rows.append({"workers": workers or "default (4)", "answering_seconds": time.monotonic() - started,
                     "load_average": load_average()})
        stop_process(process)
        log(f"mlflow server, workers {rows[-1]['workers']}: answers after {rows[-1]['answering_seconds']:.1f} s")
    return rows


def workers_table(mountpoint: Path, root: Path, workers: list[int]) -> list[dict]:
    """A cold `StoreMirror.refresh` per number of workers, with the most threads the sshfs process had meanwhile
    (each of its FUSE threads waits on one SFTP reply: they bound the requests in flight)."""
    if str(REPO / "modules") not in sys.path:
        sys.path.insert(0, str(REPO / "modules"))
    from gravtrain.stores.mirror import StoreMirror

    rows = []
    pid = sshfs_process(mountpoint)
    for count in workers:
        time.sleep(2 * LISTING_CACHE_WAIT)  # past sshfs's listing cache, so each starts cold
        peak, done = [0], threading.Event()

        def sample():
            while not done.is_set():
                with contextlib.suppress(OSError):
                    peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/task")))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        if pid:
            sampler.start()
        report = StoreMirror(mountpoint, root / f"mirror-workers-{count}", workers=count).refresh()
        done.set()
        rows.append({"workers": count, "seconds": report.seconds, "runs": report.runs,
                     "files_read": report.files_read, "directories_listed": report.directories_listed,
                     "sshfs_threads_max": peak[0] if pid else None})
        log(f"StoreMirror workers={count}: {report.describe()}; sshfs had up to {peak[0]} threads")
    return rows


# ----------------------------------------------------------------------------------------------- report
def fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def met(value, target) -> str:
    if target is None:
        return ""
    if value is None:
        return "MISSED (no figure)"
    return "met" if value <= target else "MISSED"


def print_table(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"  {'what':58s} {'seconds':>10s} {'target':>8s}  met?")
    for what, seconds, target, *extra in rows:
        shown = extra[0] if extra else fmt(seconds, 2)
        print(f"  {what:58s} {shown:>10s} {('<= ' + fmt(target, 0)) if target else '':>8s}  "
              f"{extra[1] if len(extra) > 1 else met(seconds, target)}")


def print_report(report: dict) -> None:
    print(f"\nround trip on the mount: {report['round_trip']['median_seconds'] * 1000:.1f} ms (median of "
          f"{report['round_trip']['stat_calls']} stat calls; relay adds {2 * report['one_way_ms']:g} ms); load "
          f"average {report['load_average_start']} at start, {report.get('load_average_end')} at end")
    plain = report.get("plain")
    if plain and not plain.get("skipped"):
        art = plain.get("artifacts", {})
        rows = [("server answering (/health)", plain.get("answering_seconds"), None),
                (f"first full view ({plain['runs']} runs)", plain.get("first_full_view_seconds"), None,
                 fmt(plain.get("first_full_view_seconds"), 2) if "first_full_view_seconds" in plain
                 else f"timeout>{report['plain_timeout']:.0f}", ""),
                ("list, warm (one more runs/search)", plain.get("list_warm_seconds"), None),
                ("refresh after a new run (one search 1.5 s after)", plain.get("new_run_seconds"), None)]
        if art:
            rows.append((f"artifacts of {art['runs']} run(s): listed / identical / expected",
                         art["seconds"], None,
                         f"{art['files_listed']}/{art['files_identical']}/{art['files_expected']}", ""))
        print_table("plain mlflow server on the sshfs mount", rows)
    for key, title in (("ui_cold", "gravtrain ui, cold mirror"), ("ui_warm", "gravtrain ui, warm mirror (restart)"),
                       ("ui_large", "gravtrain ui, large store, cold mirror"),
                       ("ui_default_cache", "gravtrain ui, sshfs default cache (dcache 20 s), warm mirror")):
        ui = report.get(key)
        if not ui or ui.get("skipped"):
            continue
        if "error" in ui:
            print(f"\n{title}: {ui['error']}")
            continue
        rows = [("server answering (/health)", ui.get("server_answering_seconds"), None),
                ("mirror (its 'mirrored ... in X s' line)", ui.get("mirror_seconds"), None),
                ("browse line logged", ui.get("browse_line_seconds"), None),
                (f"first full view ({ui['runs']} runs)" if ui["runs"] <= 100 else
                 "first view (first page: the 100 newest runs)", ui["first_full_view_seconds"], TARGET_FIRST_VIEW),
                *([(f"every run listed (all {ui['pages']} pages)", ui["all_runs_seconds"], None)]
                  if "all_runs_seconds" in ui else []),
                ("list once mirrored, first page (median of 5)", ui.get("list_seconds_median"), TARGET_LIST)]
        if "list_all_pages_seconds_median" in ui:
            rows.append((f"list once mirrored, all {ui['pages']} pages (median of 5)",
                         ui["list_all_pages_seconds_median"], None))
        if "new_run" in ui:
            rows.append(("refresh after a new run (meta.yaml -> listed)", ui["new_run"].get("new_run_seconds"),
                         None if key == "ui_default_cache" else TARGET_NEW_RUN))
        if "idle_refresh" in ui:
            rows.append(("one background refresh, nothing new (median of 3)", ui["idle_refresh"]["seconds_median"],
                         None))
        if "artifacts" in ui:
            art = ui["artifacts"]
            rows.append(("artifacts: listed / identical / expected", art["seconds"], None,
                         f"{art['files_listed']}/{art['files_identical']}/{art['files_expected']}",
                         "met" if art["files_identical"] == art["files_expected"] else "MISSED"))
        if "experiment_kind" in ui:
            rows.append(("experiment kind", None, None, str(ui["experiment_kind"]),
                         "met" if ui["experiment_kind_ok"] else "MISSED"))
        rows.append(("SIGTERM: exit code / server left answering", None, None,
                     f"{ui['stop']['exit_code']}/{ui['stop']['server_left_answering']}",
                     "met" if ui["stop"]["exit_code"] == 143 and not ui["stop"]["server_left_answering"]
                     else "MISSED"))
        print_table(title, rows)
    if report.get("workers"):
        print_table("StoreMirror.refresh() cold on the first mount, by workers",
                    [(f"workers={row['workers']} ({row['runs']} runs, {row['files_read']} files, sshfs "
                      f"{row['sshfs_threads_max']} threads)", row["seconds"], None) for row in report["workers"]])
    if report.get("server_start"):
        print_table("mlflow server start-up on the local mirror (until /health answers)",
                    [(f"workers {row['workers']}", row["answering_seconds"], None) for row in report["server_start"]])


# ------------------------------------------------------------------------------------------------- main
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
