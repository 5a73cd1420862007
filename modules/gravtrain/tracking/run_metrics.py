"""Metrics of an MLflow run (`RunMetrics`, a part of `MlflowTracker`).

Metrics are buffered and written by one background thread (`BackgroundMetricWriter`), at most 1000 per
``log_batch``, so training never waits for the store; ``flush(wait=True)`` returns once they are stored.
Timestamps are milliseconds since the epoch, taken when ``log_metrics`` is called. Non-finite values are kept,
not dropped: MLflow stores NaN as NaN; SQL stores write ±inf as ±1.797e308 (the largest float). Metrics whose
batch failed are kept (`unwritten_metrics`) for the caller to save and `replay_metrics` later.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from gravtrain.tracking.metric_writer import MLFLOW_METRICS_PER_BATCH, BackgroundMetricWriter
from gravtrain.tracking.store_writes import in_batches, store_write

if TYPE_CHECKING:
    from mlflow import MlflowClient


class RunMetrics:
    """The metric records of `MlflowTracker` (its ``_client``, ``_run_id`` and metric writer ``_metrics``)."""

    _client: "MlflowClient"
    _run_id: str
    _metrics: BackgroundMetricWriter

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step``; a background thread writes them (`flush` to wait for it)."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self._metrics.add([Metric(key, float(value), timestamp, int(step)) for key, value in metrics.items()])

    def flush(self, wait: bool = True) -> None:
        """Hand buffered metrics to the writer thread; with ``wait``, return once the store holds them.

        Raises:
            TrackingError: (with ``wait``) metrics could not be written.
        """
        self._metrics.flush(wait=wait)

    def existing_metric_steps(self, key: str) -> list[int]:
        """The sorted distinct steps at which the store holds metric ``key`` (after a flush)."""
        self.flush(wait=True)
        return sorted({metric.step for metric in self._client.get_metric_history(self._run_id, key)})

    def last_step(self, key: str) -> int | None:
        """The last step the store holds for metric ``key``; None when it holds none."""
        steps = self.existing_metric_steps(key)
        return steps[-1] if steps else None

    def last_steps(self) -> dict[str, int]:
        """`last_step` of every metric of the run, for a resumed run to log no step twice."""
        return {key: steps[-1] for key, (steps, _) in self.metric_histories().items() if steps}

    def metric_histories(self) -> dict[str, tuple[list[int], list[float]]]:
        """Every metric of the run (after a flush) as ``(steps, values)``, in increasing step order, one value a
        step (the last one logged there): what a resumed run's plots start from."""
        self.flush(wait=True)
        histories = {}
        for key in self._client.get_run(self._run_id).data.metrics:
            by_step = {}
            for metric in sorted(self._client.get_metric_history(self._run_id, key),
                                 key=lambda m: (m.step, m.timestamp)):
                by_step[metric.step] = metric.value
            histories[key] = (list(by_step), list(by_step.values()))  # filled in step order
        return histories

    def unwritten_metrics(self) -> list[tuple[str, float, int, int]]:
        """``(key, value, timestamp_ms, step)`` of every metric whose write failed; forgotten once taken."""
        return [(m.key, m.value, m.timestamp, m.step) for m in self._metrics.take_unwritten()]

    def replay_metrics(self, records: list[tuple[str, float, int, int]]) -> None:
        """Write metrics kept by `unwritten_metrics` (e.g. saved beside a checkpoint), with their own
        timestamps and steps, now and in order (after what is buffered)."""
        from mlflow.entities import Metric

        self.flush(wait=True)
        metrics = [Metric(key, float(value), int(timestamp), int(step)) for key, value, timestamp, step in records]
        with store_write("metrics"):
            for batch in in_batches(metrics, MLFLOW_METRICS_PER_BATCH):
                self._client.log_batch(self._run_id, metrics=batch)
