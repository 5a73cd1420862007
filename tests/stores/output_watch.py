"""Waiting for a line of another process's output: an event, not a poll."""

from __future__ import annotations

import subprocess
import threading
import time


class OutputWatch:
    """Reads ``process``'s stdout (a text pipe, stderr merged into it) on a thread of its own, so the process never
    blocks on a full pipe, and wakes waiters at every line.

    Example::

        watch = OutputWatch(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        assert watch.wait_for("browse", timeout=60), watch.text[-3000:]
    """

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float) -> bool:
        """Whether a line containing ``needle`` came within ``timeout`` seconds (False at once when the output
        ends without it)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(needle in line for line in self._lines):
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> str:
        """Wait for the output's end (the process has exited) and return all of it."""
        self._reader.join(timeout=30)
        return self.text
