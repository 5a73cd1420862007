"""In-memory events: what the toy simulator and the shard reader both produce, and what batching consumes.

An :class:`EventStore` holds E events as concatenated per-hit arrays (V hits in all) and ``row_splits``;
batching only needs the event sizes and a fast way to gather whole events, so it never cares whether the
events were simulated or read from files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from gravtrain.data.names import FEATURE_DTYPE, ROW_SPLITS_DTYPE, TRUTH_DTYPES, TRUTH_NAMES, TRUTH_WIDTHS
from gravtrain.data.validation import validate_event_arrays


@dataclass(frozen=True)
class EventStore:
    """E events of V hits in all.

    Attributes:
        features: (V, N_FEATURES) float32, columns ``FEATURE_NAMES``.
        truth: name -> (V, width) array for every name of ``TRUTH_WIDTHS`` (t_idx int32, others float32).
        row_splits: (E+1,) int64; event i is rows ``row_splits[i]:row_splits[i+1]``.
        event_info: optional per-event diagnostics, name -> (E,) array (the simulator fills
            ``n_particles``, ``n_noise_hits``, ``n_tracks``, ``n_shared_hits``); not written to shards.
    """

    features: np.ndarray
    truth: Mapping[str, np.ndarray]
    row_splits: np.ndarray
    event_info: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_arrays(cls, features: np.ndarray, truth: Mapping[str, np.ndarray], row_splits: np.ndarray, *,
                    path: object = None, event_info: Mapping[str, np.ndarray] | None = None) -> "EventStore":
        """Validate (raising ``DataError``), cast to the stored dtypes and wrap user arrays.

        Floats of any precision and integers of any width are accepted and cast; width-1 truth arrays may be
        given 1-D.
        """
        truth = {name: (np.asarray(a)[:, None] if np.ndim(a) == 1 and TRUTH_WIDTHS.get(name) == 1 else np.asarray(a))
                 for name, a in truth.items()}
        features, row_splits = np.asarray(features), np.asarray(row_splits)
        validate_event_arrays(features, truth, row_splits, path=path, exact_dtypes=False)
        return cls(features=np.ascontiguousarray(features, dtype=FEATURE_DTYPE),
                   truth={name: np.ascontiguousarray(truth[name], dtype=TRUTH_DTYPES[name]) for name in TRUTH_NAMES},
                   row_splits=row_splits.astype(ROW_SPLITS_DTYPE), event_info=dict(event_info or {}))

    @classmethod
    def concatenate(cls, stores: Sequence["EventStore"]) -> "EventStore":
        """One store holding the events of ``stores`` in order (event_info kept only if all have a key)."""
        if not stores:
            raise ValueError("concatenate needs at least one EventStore")
        offsets = np.cumsum([0] + [s.n_hits for s in stores[:-1]])
        row_splits = np.concatenate([[0]] + [s.row_splits[1:] + o for s, o in zip(stores, offsets)])
        common_info = set.intersection(*(set(s.event_info) for s in stores))
        return cls(features=np.concatenate([s.features for s in stores]),
                   truth={name: np.concatenate([s.truth[name] for s in stores]) for name in TRUTH_NAMES},
                   row_splits=row_splits.astype(ROW_SPLITS_DTYPE),
                   event_info={k: np.concatenate([s.event_info[k] for s in stores]) for k in sorted(common_info)})

    @property
    def n_events(self) -> int:
        return len(self.row_splits) - 1

    @property
    def n_hits(self) -> int:
        return int(self.row_splits[-1])

    @property
    def event_sizes(self) -> np.ndarray:
        """(E,) hits per event."""
        return np.diff(self.row_splits)

    def hit_rows(self, event_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the given events, concatenated in the given order, and their local row_splits (int64)."""
        event_indices = np.asarray(event_indices, dtype=np.int64)
        starts = self.row_splits[event_indices]
        sizes = self.row_splits[event_indices + 1] - starts
        local_splits = np.r_[0, np.cumsum(sizes)].astype(ROW_SPLITS_DTYPE)
        rows = np.arange(local_splits[-1], dtype=np.int64) + np.repeat(starts - local_splits[:-1], sizes)
        return rows, local_splits

    def gather(self, event_indices: np.ndarray) -> dict[str, np.ndarray]:
        """The given events as one ragged batch: ``features``, ``row_splits`` (int64) and every truth array."""
        rows, local_splits = self.hit_rows(event_indices)
        batch = {"features": self.features[rows], "row_splits": local_splits}
        batch.update({name: self.truth[name][rows] for name in TRUTH_NAMES})
        return batch

    def select(self, event_indices: np.ndarray) -> "EventStore":
        """A new store with only the given events, in the given order."""
        batch = self.gather(event_indices)
        info = {k: np.asarray(v)[np.asarray(event_indices)] for k, v in self.event_info.items()}
        return EventStore(features=batch.pop("features"), row_splits=batch.pop("row_splits"), truth=batch,
                          event_info=info)

    def event(self, index: int) -> dict[str, np.ndarray]:
        """Arrays of one event (views, not copies): ``features`` and every truth array."""
        begin, end = int(self.row_splits[index]), int(self.row_splits[index + 1])
        arrays = {"features": self.features[begin:end]}
        arrays.update({name: self.truth[name][begin:end] for name in TRUTH_NAMES})
        return arrays

    def iter_feature_chunks(self, events_per_chunk: int = 256) -> Iterator[np.ndarray]:
        """Features of consecutive groups of whole events (views), for streaming statistics."""
        for first in range(0, self.n_events, events_per_chunk):
            last = min(first + events_per_chunk, self.n_events)
            yield self.features[self.row_splits[first]:self.row_splits[last]]
