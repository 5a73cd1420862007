"""From the config's ``Data`` section to events: the one place that reads ``Data.source``."""

from __future__ import annotations

import dataclasses
from typing import Any

from gravtrain.config.schema import Data, ToyData
from gravtrain.data.event_store import EventStore
from gravtrain.data.shards import load_shards
from gravtrain.data.toy import simulate_toy_datasets


def toy_settings(toy: ToyData) -> dict[str, Any]:
    """The simulator's keyword arguments from a ``Data.toy`` block (its keys are the simulator's arguments)."""
    return {f.name: getattr(toy, f.name) for f in dataclasses.fields(toy)}


def load_event_sets(data: Data) -> tuple[EventStore, EventStore]:
    """(training events, validation events) as configured.

    ``toy``: simulated with the ``Data.toy`` settings (validation from an independent stream).
    ``files``: read from the shards matched by ``Data.files.train`` and ``Data.files.val``.

    Raises:
        DataError: a pattern matches nothing, or a shard is malformed (file, array and event named).
    """
    return SOURCES[data.source](data)


#: ``Data.source`` names -> (training events, validation events) of a ``Data`` section.
SOURCES = {
    "toy": lambda data: simulate_toy_datasets(**toy_settings(data.toy)),
    "files": lambda data: (load_shards(data.files.train), load_shards(data.files.val)),
}
