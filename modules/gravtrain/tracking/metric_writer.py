"""`BackgroundMetricWriter`: metrics are buffered and written in batches by one worker thread.

Training calls `add` and never waits for the store: when the buffer holds ``buffer_size`` metrics, or
``flush_seconds`` have passed since the last write, its contents are handed to a queue that a single worker
thread empties with one ``write(batch)`` call per batch of at most ``batch_limit`` metrics. One worker and one
FIFO queue keep the store's order the order of the calls. ``flush(wait=True)`` drains the queue and reports
a failed write as a `StoreWriteError`; a failed write never stops training by itself. The metrics of failed
writes are kept (`take_unwritten`), so the caller can save them elsewhere and nothing logged is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Sequence

from gravtrain.tracking.errors import StoreWriteError, TrackingError, describe_store_failure

logger = logging.getLogger(__name__)

#: mlflow.utils.validation.MAX_METRICS_PER_BATCH (checked against MLflow in the tests).
MLFLOW_METRICS_PER_BATCH = 1000

_STOP = object()


class BackgroundMetricWriter:
    """Buffer metrics and write them in batches on a worker thread.

    Args:
        write: called on the worker thread with a list of at most ``batch_limit`` metrics (e.g. a bound
            ``MlflowClient.log_batch``); an exception it raises is logged and reported by the next
            ``flush(wait=True)``.
        buffer_size: metrics held before they are handed to the worker.
        flush_seconds: also hand them over when this long has passed since the last hand-over (None: only by
            size and `flush`), so a live UI follows training.
        batch_limit: the most metrics one ``write`` receives.
    """

    def __init__(self, write: Callable[[list], None], *, buffer_size: int = MLFLOW_METRICS_PER_BATCH,
                 flush_seconds: float | None = 10.0, batch_limit: int = MLFLOW_METRICS_PER_BATCH) -> None:
        if buffer_size < 1 or batch_limit < 1:
            raise ValueError("buffer_size and batch_limit must be at least 1")
        self._write = write
        self._buffer_size = buffer_size
        self._flush_seconds = flush_seconds
        self._batch_limit = batch_limit
        self._buffer: list = []
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._failures: list[str] = []
        self._unwritten: list = []
        self._last_handover = time.monotonic()
        self._closed = False

    def add(self, metrics: Sequence) -> None:
        """Buffer ``metrics``; hand the buffer to the worker when it is full or old enough. Never blocks on I/O."""
        with self._lock:
            if self._closed:
                raise TrackingError("metrics were logged after the run ended; log them before `end`.")
            self._buffer.extend(metrics)
            due = len(self._buffer) >= self._buffer_size or (
                self._flush_seconds is not None and time.monotonic() - self._last_handover >= self._flush_seconds)
            if due:
                self._hand_over()

    def flush(self, wait: bool = True) -> None:
        """Hand every buffered metric to the worker; with ``wait``, return once the store holds them.

        Raises:
            StoreWriteError: (with ``wait``) a write failed since the last waiting flush; the message says how
                many metrics were not written and why (they are kept: `take_unwritten`).
        """
        with self._lock:
            self._hand_over()
        if not wait:
            return
        self._queue.join()
        with self._lock:
            failures, self._failures = self._failures, []
        if failures:
            raise StoreWriteError(f"{len(failures)} metric batch(es) could not be written to the MLflow store: "
                                  f"{failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""))

    def take_unwritten(self) -> list:
        """The metrics whose write failed so far, in logging order; they are forgotten here once taken."""
        with self._lock:
            unwritten, self._unwritten = self._unwritten, []
        return unwritten

    def close(self) -> None:
        """Flush, wait, and stop the worker thread; later `add` calls raise `TrackingError`."""
        try:
            self.flush(wait=True)
        finally:
            with self._lock:
                self._closed = True
                worker, self._worker = self._worker, None
            if worker is not None:
                self._queue.put(_STOP)
                worker.join(timeout=30)

    # ------------------------------------------------------------------------------------------ internals
    def _hand_over(self) -> None:
        """Move the buffer to the queue in batches (caller holds the lock)."""
        self._last_handover = time.monotonic()
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="gravtrain-mlflow-metrics", daemon=True)
            self._worker.start()
        for start in range(0, len(batch), self._batch_limit):
            self._queue.put(batch[start:start + self._batch_limit])

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._write(item)
            except Exception as exc:  # the store failed: keep training, report at the next waiting flush
                message = describe_store_failure(exc)
                logger.warning("could not write %d metrics to the MLflow store: %s", len(item), message)
                with self._lock:
                    self._failures.append(f"{len(item)} metrics not written, {message}")
                    self._unwritten.extend(item)
            finally:
                self._queue.task_done()
