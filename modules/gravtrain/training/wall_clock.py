"""Where a training call's wall time goes, by part: the one account the end-of-training log line reports.

The parts, in the order they happen::

    events       simulating or reading the events, and their feature statistics
    model        building the model, its optimizer and loss (and a pre-model)
    run start    opening the MLflow run (or none): params, start artifacts; restoring a checkpoint
    steps        the training batches: the compiled steps, batching, records and the progress display
    validation   the validation pass at each epoch end: its loss, and the predictions the physics metrics score
    physics      clustering, matching and scoring those predictions (every Plotting.physics_frequency epochs)
    commits      live plots, flushing records to the store, checkpoints
    final        the trained model saved and logged, its physics metrics and figures

``steps`` is what the stages took less the other parts measured inside them, so the parts add up to the call.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

#: The parts of the module docstring, in order.
WALL_TIME_PARTS: tuple[str, ...] = ("events", "model", "run start", "steps", "validation", "physics", "commits",
                                    "final")
#: The parts measured inside the stages, which ``steps`` excludes.
_INSIDE_STAGES = ("validation", "physics", "commits")


class WallClock:
    """Wall seconds by part (module docstring): ``with clock.part("physics"): ...`` adds the block's time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def part(self, name: str):
        if name not in WALL_TIME_PARTS:
            raise ValueError(f"unknown wall-time part {name!r}; the parts are {', '.join(WALL_TIME_PARTS)}")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def add_stages(self, stage_seconds: float) -> None:
        """Count the stages' wall time: ``steps`` is what the other parts inside them did not take."""
        inside = sum(self.seconds.get(name, 0.0) for name in _INSIDE_STAGES)
        self.seconds["steps"] = self.seconds.get("steps", 0.0) + max(stage_seconds - inside, 0.0)

    def breakdown(self) -> dict[str, float]:
        """Seconds of every part, in the order of ``WALL_TIME_PARTS`` (0 for a part that did not run)."""
        return {name: self.seconds.get(name, 0.0) for name in WALL_TIME_PARTS}

    def summary(self) -> str:
        """One line: the total, then each part that took time with its share, e.g. ``412 s: steps 301 s (73 %),
        ...``."""
        parts = self.breakdown()
        total = sum(parts.values())
        shown = ", ".join(f"{name} {seconds:.0f} s ({100.0 * seconds / total:.0f} %)"
                          for name, seconds in parts.items() if seconds >= 0.5) if total > 0 else "nothing"
        return f"{total:.0f} s: {shown}"
