"""What training shows of an epoch in progress: a Keras progress bar on a terminal, log lines in a batch job's file.

A progress bar redrawn with backspaces is unreadable in a file (one line of tens of kilobytes per epoch), so when
standard output is not a terminal `epoch_display` returns a `BatchLogLines` instead: one ``logging`` line every
``Plotting.log_frequency`` batches (0: none), with the running values the bar would show. The line per epoch
(objective, validation loss, hits/s) is the training loop's own and is logged either way.
"""

from __future__ import annotations

import logging
import sys
from typing import Protocol, Sequence

logger = logging.getLogger(__name__)


class EpochDisplay(Protocol):
    def update(self, batch: int, values: Sequence[tuple[str, float]]) -> None:
        """``batch`` batches of the epoch are done; ``values`` are the running (name, value) pairs to show."""


class BatchLogLines:
    """One log line every ``every`` batches of an epoch (and none with ``every`` 0)."""

    def __init__(self, n_batches: int, every: int, title: str):
        self.n_batches = n_batches
        self.every = every
        self.title = title

    def update(self, batch: int, values: Sequence[tuple[str, float]]) -> None:
        if self.every and batch and batch % self.every == 0:
            shown = ", ".join(f"{name} {value:.4g}" for name, value in values)
            logger.info("%s, batch %d/%d: %s", self.title, batch, self.n_batches, shown)


class _ProgressBar:
    """Keras's progress bar, started at the batch the epoch resumes from."""

    def __init__(self, n_batches: int, names: Sequence[str], start: int):
        import keras

        self._bar = keras.utils.Progbar(n_batches, stateful_metrics=list(names), verbose=1)
        self._bar.update(start)

    def update(self, batch: int, values: Sequence[tuple[str, float]]) -> None:
        self._bar.update(batch, values=list(values))


def epoch_display(n_batches: int, names: Sequence[str], *, start: int, log_frequency: int, title: str,
                  stream=None) -> EpochDisplay:
    """The display of one epoch: a progress bar of the values ``names`` if ``stream`` (default standard output)
    is a terminal, else `BatchLogLines` every ``log_frequency`` batches."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return _ProgressBar(n_batches, names, start)
    return BatchLogLines(n_batches, log_frequency, title)
