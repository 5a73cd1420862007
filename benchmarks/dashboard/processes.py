"""Processes: the tools the benchmark needs, the machine's load, sshfs's threads, stopping processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dashboard.settings import SSHD


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
