"""The display of an epoch in progress: Keras's bar on a terminal, plain log lines in a file."""

from __future__ import annotations

import io
import logging

from gravtrain.training.progress_display import BatchLogLines, epoch_display


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_a_log_line_every_n_batches_and_nothing_else(caplog):
    output = io.StringIO()
    display = epoch_display(10, ["objective", "hits/s"], start=0, log_frequency=4, title="epoch 3", stream=output)
    assert isinstance(display, BatchLogLines)
    with caplog.at_level(logging.INFO, logger="gravtrain.training"):
        for batch in range(1, 11):
            display.update(batch, [("objective", 1.0 / batch), ("hits/s", 12345.6)])
    assert [record.getMessage() for record in caplog.records] == [
        "epoch 3, batch 4/10: objective 0.25, hits/s 1.235e+04",
        "epoch 3, batch 8/10: objective 0.125, hits/s 1.235e+04"]
    assert output.getvalue() == ""


def test_log_frequency_0_leaves_only_the_line_per_epoch(caplog):
    display = epoch_display(10, ["objective"], start=0, log_frequency=0, title="epoch 1", stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="gravtrain.training"):
        for batch in range(1, 11):
            display.update(batch, [("objective", 1.0)])
    assert caplog.records == []


def test_a_terminal_gets_the_progress_bar(caplog):
    terminal = Terminal()
    display = epoch_display(4, ["objective"], start=1, log_frequency=1, title="epoch 1", stream=terminal)
    assert not isinstance(display, BatchLogLines)
    with caplog.at_level(logging.INFO, logger="gravtrain.training"):
        display.update(2, [("objective", 0.5)])
    assert caplog.records == []  # the bar, drawn by Keras on standard output, instead of lines
