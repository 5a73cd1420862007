"""The output of ``gravtrain tune --workers N``: every line a worker writes, on stdout or stderr, reaches the
driver's stderr with the worker's ``[worker N]`` prefix.

The driver reads each worker's output through a pipe, so the prefix is on every line whatever wrote it: a log
message of several lines (a table), a Python traceback, a warning, TensorFlow's C++ lines. A worker writes
whole lines to the pipe; the relay writes each line in one call under a lock shared by all workers, so lines of
two workers never mix within a line.
"""

from __future__ import annotations

import threading
from typing import BinaryIO

_WRITE = threading.Lock()


def prefix(worker: int) -> bytes:
    """The prefix of worker ``worker``'s lines."""
    return f"[worker {worker}] ".encode()


def relay(stream: BinaryIO, worker: int, sink: BinaryIO) -> threading.Thread:
    """Copy ``stream`` (a worker's merged stdout and stderr) to ``sink`` line by line, each line prefixed, in a
    thread that ends when the worker closes its end; returns the started thread (join it after the worker
    ends, so its last lines are written)."""
    start = prefix(worker)

    def copy() -> None:
        with stream:
            for line in iter(stream.readline, b""):
                if not line.endswith(b"\n"):  # the worker's last line, unterminated
                    line += b"\n"
                with _WRITE:
                    sink.write(start + line)
                    sink.flush()

    thread = threading.Thread(target=copy, name=f"gravtrain-worker-{worker}-output", daemon=True)
    thread.start()
    return thread
