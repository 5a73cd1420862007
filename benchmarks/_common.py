"""What the benchmarks share: the machine a measurement ran on, as every JSON records it, and a free local port.

A script imports it as ``from _common import machine`` (its own folder is on ``sys.path`` when it runs as
``python benchmarks/NAME.py``; a script a test loads by path puts the folder there itself)."""

from __future__ import annotations

import datetime
import os
import platform
import socket


def machine(**extra) -> dict:
    """The machine and the moment: Python, platform, CPU, logical cores, the load average now (what else ran) and
    the date; ``extra`` adds the benchmark's own facts (library versions, devices)."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "logical_cores": os.cpu_count(),
            "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
            "date": datetime.datetime.now().isoformat(timespec="seconds"), **extra}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
