"""Metric records: window means every ``record_frequency`` batches, epoch averages, curves for the plots.

Every record goes to the tracker at a global step (batches: the optimizer step; epochs: the epoch count) and
into in-memory curves that the live plots read. On resume, the curves start from the run's history in the
store, and records at steps the store already holds are dropped, so no step is ever logged twice, whatever
moment the previous process died at, and the plots still show the whole run.
"""

from __future__ import annotations

import math
from collections import defaultdict

#: Batch metrics that are state, not averaged over the window (the last value is recorded).
STATE_METRICS = ("lr", "stage", "viscosity")
#: Batch metrics kept out of the records (bookkeeping of the step).
UNRECORDED = ("finite", "hits")


class MetricRecorder:
    """Collects per-batch values and records window means; keeps every record as a curve.

    Args:
        tracker: where records go (``log_metrics(metrics, step)``).
        record_frequency: batches per window.
        history: the run's records already in the store (resume), as name -> (increasing steps, values): they
            start the curves, and new records at or before a metric's last stored step are dropped.
    """

    def __init__(self, tracker, record_frequency: int,
                 history: dict[str, tuple[list[int], list[float]]] | None = None):
        self.tracker = tracker
        self.record_frequency = int(record_frequency)
        history = history or {}
        self.logged_until = {name: steps[-1] for name, (steps, _) in history.items() if len(steps)}
        self.curves: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for name, (steps, values) in history.items():
            self.curves[name] = ([int(step) for step in steps], [float(value) for value in values])
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._state: dict[str, float] = {}

    def add_batch(self, values: dict[str, float], step: int) -> None:
        """Add one batch's values; at every ``record_frequency``-th step, record the window's means."""
        for name, value in values.items():
            if name in UNRECORDED:
                continue
            if name in STATE_METRICS:
                self._state[name] = value
            else:
                self._sums[name] += value
        self._count += 1
        if step % self.record_frequency == 0:
            means = {name: total / self._count for name, total in self._sums.items()}
            means.update(self._state)
            self.record(means, step)
            self._sums.clear()
            self._count = 0

    def record(self, metrics: dict[str, float], step: int) -> None:
        """Record ``metrics`` at ``step`` (tracker and curves), except those already recorded at that step or a
        later one (by this recorder or, before a resume, in the store)."""
        fresh = {name: float(value) for name, value in metrics.items() if step > self.logged_until.get(name, -1)}
        if not fresh:
            return
        self.tracker.log_metrics(fresh, step=step)
        for name, value in fresh.items():
            self.logged_until[name] = step
            steps, values = self.curves[name]
            steps.append(step)
            values.append(value)

    def curves_with_prefix(self, prefix: str) -> dict[str, tuple[list[int], list[float]]]:
        """The curves whose names start with ``prefix`` (e.g. ``loss/``), finite points only."""
        selected = {}
        for name, (steps, values) in self.curves.items():
            if name.startswith(prefix):
                points = [(s, v) for s, v in zip(steps, values) if math.isfinite(v)]
                selected[name] = ([s for s, _ in points], [v for _, v in points])
        return selected


class EpochAverages:
    """The mean over an epoch's batches of each metric, with the epoch's hits and training seconds.

    Stored in the checkpoint (``state``/``from_state``) so an epoch resumed in the middle still averages over
    all of its batches.
    """

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.batches = int(state.get("batches", 0))
        self.hits = float(state.get("hits", 0.0))
        self.seconds = float(state.get("seconds", 0.0))

    def add(self, values: dict[str, float], seconds: float) -> None:
        for name, value in values.items():
            if name not in UNRECORDED and name not in STATE_METRICS:
                self.sums[name] = self.sums.get(name, 0.0) + value
        self.batches += 1
        self.hits += values.get("hits", 0.0)
        self.seconds += seconds

    def means(self) -> dict[str, float]:
        return {name: total / max(self.batches, 1) for name, total in self.sums.items()}

    @property
    def hits_per_second(self) -> float:
        return self.hits / self.seconds if self.seconds > 0 else float("nan")

    def state(self) -> dict:
        return {"sums": dict(self.sums), "batches": self.batches, "hits": self.hits, "seconds": self.seconds}
