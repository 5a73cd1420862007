"""A sweep worker's output reaches the driver with the worker's prefix on every line, whatever wrote it."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from gravtrain.tune import worker_output

#: A stand-in worker: a log message of three lines, a line on stdout, a traceback, a last line with no newline.
WORKER = textwrap.dedent("""
    import logging, sys
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
    logging.info("best trials\\n  trial  objective\\n  3      0.81")
    print("on stdout", flush=True)
    try:
        raise ValueError("shown with its traceback")
    except ValueError:
        logging.exception("a trial failed")
    sys.stderr.write("last words")
""")


class _Sink(io.BytesIO):
    def close(self):  # keep the bytes readable after the relay is done
        pass


def test_every_line_of_a_worker_carries_its_prefix():
    process = subprocess.Popen([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sink = _Sink()
    thread = worker_output.relay(process.stdout, 3, sink)
    assert process.wait(timeout=60) == 0
    thread.join(timeout=30)
    assert not thread.is_alive()
    lines = sink.getvalue().decode().splitlines()
    assert lines[:5] == ["[worker 3] best trials", "[worker 3]   trial  objective", "[worker 3]   3      0.81",
                         "[worker 3] on stdout", "[worker 3] a trial failed"]
    assert "[worker 3] ValueError: shown with its traceback" in lines
    assert lines[-1] == "[worker 3] last words" and sink.getvalue().endswith(b"\n")
    assert all(line.startswith("[worker 3] ") for line in lines) and len(lines) > 7
