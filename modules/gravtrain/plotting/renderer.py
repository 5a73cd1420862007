"""`FigureRenderer`: draws this room's figures to PNG bytes in a separate, low-priority process.

Why a process and not a thread: drawing a figure is mostly Python (artists, ticks, text layout), so a drawing
thread holds the interpreter lock for most of its time. A training loop beside it then waits for the lock at
each of its own Python steps (a batch's bookkeeping, a checkpoint), and on a small machine also loses a core.
The child has an interpreter of its own and runs at the lowest CPU priority (``nice`` 19 where the system has
it), so training only gives up what the drawing itself costs.

Use::

    with FigureRenderer() as renderer:
        [png] = renderer.render([FigureJob("loss_curves_figure", (curves,), {"stage_boundaries": [50]})])

Each `FigureJob` names a figure function of ``gravtrain.plotting`` (one of its ``__all__``) with its positional
and keyword arguments (plain data: NumPy arrays, lists, dicts, strings, numbers). The child process starts at the
first ``render`` and ends at ``close``, or by itself when the parent process ends (its input closes). A job that
fails raises `FigureRenderError` with the child's traceback text; the child carries on with the next request.
A child that dies during a request raises `FigureRenderError` too; the next ``render`` starts a new one.

Live figures: a job with a ``key`` (a live plot's artifact name, say) leaves its figure in the child, and the next
job of that key draws into it (the function's ``figure=``, ``gravtrain.plotting.reuse``) with the layout of the
first draw kept, as long as the tick labels keep their lengths and the titles their lines; when they change,
that draw is laid out again. The constrained layout (a whole draw without output) and the set-up of axes and
ticks are what the redraw saves: measured on a 2-core VM, 0.34 -> 0.18 CPU-s for a three-panel coordinate-space
figure, about 1.4 -> 0.9 CPU-s for the five live plots of a toy-sized run (PNG encoding included).

Wire format, on the child's standard input and output: every message is an 8-byte big-endian length and a
pickle. Requests are lists of jobs; replies are ``("ok", [png bytes, ...], CPU seconds)`` or ``("error",
traceback text, CPU seconds)``, with the child's CPU time so far.
Pickle is safe here because both ends are this module, in processes of the same user.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, Sequence

logger = logging.getLogger(__name__)

#: ``nice`` increment of the child process (19: the lowest priority on Linux and macOS).
RENDERER_NICE = 19
#: zlib level of the PNGs: 1 (of 9; matplotlib's default is 6) encodes about three times faster for files about a
#: tenth larger, a tenth of the cost of redrawing a live plot saved.
PNG_COMPRESS_LEVEL = 1
_HEADER = struct.Struct(">Q")


class FigureJob(NamedTuple):
    """One figure to draw: ``getattr(gravtrain.plotting, function)(*args, **kwargs)``, saved as PNG.

    ``key`` names a live figure (see the module docstring): the child keeps the figure, and the next job of the
    same key and function draws into it, with the layout of the first draw.
    """

    function: str
    args: tuple = ()
    kwargs: dict = {}
    key: str | None = None


class FigureRenderError(RuntimeError):
    """A figure could not be drawn in the renderer process, or the process itself failed; the message says why."""


class FigureRenderer:
    """A child process that draws figures to PNG bytes (module docstring). One ``render`` at a time.

    Args:
        nice: CPU-priority increment of the child (``os.nice``); 0 keeps the parent's priority.
        dpi: resolution of the PNGs (None: the figure's own, matplotlib's ``savefig.dpi``).
    """

    def __init__(self, *, nice: int = RENDERER_NICE, dpi: float | None = None):
        self.nice = int(nice)
        self.dpi = dpi
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._cpu_seconds: dict[int, float] = {}  # child PID -> its CPU time at its last reply

    def render(self, jobs: Sequence[FigureJob]) -> list[bytes]:
        """Draw ``jobs`` in the child process and return their PNGs, in order; starts the child if needed.

        Raises:
            FigureRenderError: a job failed (the child's traceback is in the message) or the child died.
        """
        with self._lock:
            process = self._started()
            try:
                _write_message(process.stdin, [tuple(job) for job in jobs])
                reply = _read_message(process.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._process = None
                try:
                    code = process.wait(timeout=5)  # a child that closed its pipes is exiting
                    state = f"exited with code {code}"
                except subprocess.TimeoutExpired:  # alive but talking nonsense: end it
                    process.kill()
                    process.wait()
                    state = "stopped answering"
                _close_pipes(process)
                raise FigureRenderError(f"the figure renderer process {state} ({type(exc).__name__}: {exc})") from None
        status, payload, cpu_seconds = reply
        self._cpu_seconds[process.pid] = cpu_seconds
        if status != "ok":
            raise FigureRenderError(f"drawing a figure failed in the renderer process:\n{payload}")
        return payload

    def start(self) -> None:
        """Start the child now, without waiting for it: it loads matplotlib while the caller goes on, so the
        first ``render`` finds it ready. ``render`` starts it anyway when needed."""
        with self._lock:
            self._started()

    @property
    def cpu_seconds(self) -> float:
        """CPU time (user + system) the children have spent so far, as of their last replies: what drawing cost."""
        return sum(self._cpu_seconds.values())

    @property
    def pid(self) -> int | None:
        """The child's process ID while it runs, else None."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def close(self) -> None:
        """End the child process (it finishes the request in hand first). Safe to call more than once."""
        with self._lock:
            process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()
            process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            _close_pipes(process)

    def __enter__(self) -> "FigureRenderer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _started(self) -> subprocess.Popen:
        if self._process is not None:
            if self._process.poll() is None:
                return self._process
            logger.warning("the figure renderer process exited with code %s; starting a new one",
                           self._process.returncode)
            _close_pipes(self._process)
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding the gravtrain package
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in [env.get("PYTHONPATH")] if p])
        env["MPLBACKEND"] = "Agg"
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = "1"  # one core's worth of drawing, never a pool of BLAS threads
        command = [sys.executable, "-m", "gravtrain.plotting.renderer", str(self.nice),
                   "" if self.dpi is None else str(self.dpi)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        return self._process


def _close_pipes(process: subprocess.Popen) -> None:
    for pipe in (process.stdin, process.stdout):
        try:
            pipe.close()
        except OSError:  # a broken pipe's buffered bytes cannot be flushed: they were meant for a dead child
            pass


# ------------------------------------------------------------------------------------------ the wire format
def _write_message(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other end closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_message(stream: BinaryIO) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, size))


# ------------------------------------------------------------------------------------------ the child process
class _Drawer:
    """The child's side: draws jobs, keeping the figure of each keyed job for the next job of that key."""

    def __init__(self, dpi: float | None):
        self.dpi = dpi
        self.live: dict[str, _LiveFigure] = {}

    def draw(self, jobs: list[tuple]) -> list[bytes]:
        return [self._draw_one(*job) for job in jobs]

    def _draw_one(self, function: str, args: tuple, kwargs: dict, key: str | None) -> bytes:
        import gravtrain.plotting as plotting
        from gravtrain.plotting.reuse import keep_layout, label_lengths, lay_out_again

        if function not in plotting.__all__:
            raise ValueError(f"{function!r} is not a figure of gravtrain.plotting; known: {', '.join(plotting.__all__)}")
        live = self.live.pop(key, None) if key is not None else None
        earlier = live.figure if live is not None and live.function == function else None
        figure = getattr(plotting, function)(*args, **kwargs, **({} if earlier is None else {"figure": earlier}))
        if key is None:
            return self._png(figure)
        if figure is not earlier:
            live, laid_out = _LiveFigure(function, figure, figure.get_layout_engine(), ()), True
        else:
            laid_out = label_lengths(figure) != live.labels  # the kept layout may no longer fit the labels
            if laid_out:
                lay_out_again(figure, live.engine)
        png = self._png(figure)
        if laid_out:
            live = live._replace(labels=label_lengths(figure))
        keep_layout(figure)
        self.live[key] = live
        return png

    def _png(self, figure) -> bytes:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
                       **({} if self.dpi is None else {"dpi": self.dpi}))
        return buffer.getvalue()


class _LiveFigure(NamedTuple):
    """A keyed job's figure, with the layout engine it came with and the label lengths it was laid out for."""

    function: str
    figure: Any
    engine: Any
    labels: tuple


def _serve(requests: BinaryIO, replies: BinaryIO, dpi: float | None) -> None:
    """Answer requests until the input closes."""
    drawer = _Drawer(dpi)
    while True:
        try:
            jobs = _read_message(requests)
        except EOFError:
            return
        try:
            reply = ("ok", drawer.draw(jobs))
        except Exception:
            reply = ("error", traceback.format_exc())
        _write_message(replies, (*reply, time.process_time()))


def main(argv: Sequence[str]) -> None:
    """The child: ``python -m gravtrain.plotting.renderer NICE DPI`` (DPI may be empty)."""
    nice = int(argv[0]) if argv else RENDERER_NICE
    dpi = float(argv[1]) if len(argv) > 1 and argv[1] else None
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training's to handle; EOF ends this process
    if nice and hasattr(os, "nice"):
        os.nice(nice)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else writes to standard output lands on standard error, never inside a reply
    sys.stdout = sys.stderr
    import matplotlib

    matplotlib.use("Agg")
    _serve(sys.stdin.buffer, replies, dpi)


if __name__ == "__main__":
    main(sys.argv[1:])
