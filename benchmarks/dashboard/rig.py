"""Rig: sshd, the sshfs mounts through the relay, and the round trip they have."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import free_port
from dashboard.processes import log, stop_process
from dashboard.settings import ENTRY_SCRIPT, SSHD


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
        proxy = " ".join(shlex.quote(part) for part in (sys.executable, str(ENTRY_SCRIPT), "relay",
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
