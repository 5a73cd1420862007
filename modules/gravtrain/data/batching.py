"""Hit-budget batching into ``tf.data``, as the field does it: whole events packed up to a budget of hits.

Per epoch, the events are shuffled with a generator seeded by (seed, epoch), so every epoch has its own
order and any epoch can be rebuilt exactly, and then packed greedily: an event joins the current batch
unless that would take it past ``batch_size`` hits, in which case the batch is closed and a new one starts.
An event larger than ``batch_size`` can never fit: it is skipped, counted and logged, never dropped silently.

Each batch is a dict of NumPy arrays gathered from the :class:`~gravtrain.data.event_store.EventStore`
(packing and gathering are NumPy in a Python generator; the consuming graph does no per-event work):

- ``features`` (V, F) float32, ``row_splits`` (E+1,) int32,
- every truth array (V, width): ``t_idx`` int32, the others float32.

The dataset declares these shapes with ``None`` for V and E (:data:`batch_element_spec`), so a
``tf.function`` that takes the batches (with that ``input_signature``) or the dataset's iterator (as Keras
does) traces once, whatever the batch sizes.

Resuming: ``dataset(epoch, start_batch=k)`` rebuilds the epoch's plan and starts at its k-th batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from gravtrain.data.event_store import EventStore
from gravtrain.data.names import N_FEATURES, TRUTH_DTYPES, TRUTH_NAMES, TRUTH_WIDTHS

logger = logging.getLogger(__name__)


def batch_element_spec() -> dict[str, tf.TensorSpec]:
    """The ``tf.TensorSpec`` of one batch, with unknown hit and event counts."""
    spec = {
        "features": tf.TensorSpec((None, N_FEATURES), tf.float32, name="features"),
        "row_splits": tf.TensorSpec((None,), tf.int32, name="row_splits"),
    }
    for name in TRUTH_NAMES:
        spec[name] = tf.TensorSpec((None, TRUTH_WIDTHS[name]), tf.as_dtype(TRUTH_DTYPES[name]), name=name)
    return spec


@dataclass(frozen=True)
class EpochPlan:
    """The batches of one epoch.

    Attributes:
        epoch: the epoch number the order was drawn for.
        batches: event indices of each batch, in order.
        batch_hits: (n_batches,) hits in each batch (each <= the budget).
        skipped_events: indices of the events larger than the budget (the same in every epoch).
        skipped_hits: their hits in all.
    """

    epoch: int
    batches: tuple[np.ndarray, ...]
    batch_hits: np.ndarray
    skipped_events: np.ndarray
    skipped_hits: int

    @property
    def n_batches(self) -> int:
        return len(self.batches)


def plan_hit_budget_batches(event_sizes: np.ndarray, batch_size: int, *, seed: int, epoch: int,
                            shuffle: bool = True) -> EpochPlan:
    """Shuffle events (seeded by (seed, epoch)) and pack them whole, greedily, into batches of <= batch_size hits.

    Args:
        event_sizes: (E,) hits per event.
        batch_size: the budget in hits.
        seed: shuffle seed (``General.seed``).
        epoch: epoch number; together with ``seed`` it fixes the order.
        shuffle: False keeps the stored order (validation).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size is a budget in hits and must be >= 1, got {batch_size}")
    sizes = np.asarray(event_sizes, dtype=np.int64)
    order = (np.random.default_rng(np.random.SeedSequence((seed, epoch))).permutation(len(sizes)) if shuffle
             else np.arange(len(sizes)))
    oversize = sizes[order] > batch_size
    skipped = np.sort(order[oversize])
    kept = order[~oversize]
    # Greedy packing: a cumulative sum restarts whenever the next event would overflow the budget.
    boundaries, filled = [0], 0
    for position, size in enumerate(sizes[kept].tolist()):
        if filled + size > batch_size:
            boundaries.append(position)
            filled = 0
        filled += size
    boundaries.append(len(kept))
    batches = tuple(kept[b:e] for b, e in zip(boundaries[:-1], boundaries[1:]) if e > b)
    batch_hits = np.array([sizes[b].sum() for b in batches], dtype=np.int64)
    return EpochPlan(epoch=epoch, batches=batches, batch_hits=batch_hits, skipped_events=skipped,
                     skipped_hits=int(sizes[skipped].sum()))


class HitBudgetBatcher:
    """Batches of whole events of an :class:`EventStore`, up to ``batch_size`` hits, as ``tf.data``.

    Args:
        store: the events (simulated or read from shards).
        batch_size: budget in hits per batch.
        seed: shuffle seed; the order of epoch e is drawn from (seed, e).
        shuffle: shuffle every epoch (training); False keeps the stored order (validation).

    Example::

        batcher = HitBudgetBatcher(store, batch_size=20000, seed=42)
        for batch in batcher.dataset(epoch=0):
            batch["features"]   # (V, 10) float32, V <= 20000
        batcher.skipped_events  # indices of events larger than 20000 hits
    """

    def __init__(self, store: EventStore, batch_size: int, *, seed: int = 0, shuffle: bool = True) -> None:
        self.store = store
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self._warned = False
        self._last_plan: EpochPlan | None = None

    @property
    def element_spec(self) -> dict[str, tf.TensorSpec]:
        return batch_element_spec()

    def plan(self, epoch: int) -> EpochPlan:
        """The batches of ``epoch`` (computed once per epoch and cached); logs skipped events."""
        if self._last_plan is not None and self._last_plan.epoch == epoch:
            return self._last_plan
        plan = plan_hit_budget_batches(self.store.event_sizes, self.batch_size, seed=self.seed, epoch=epoch,
                                       shuffle=self.shuffle)
        if len(plan.skipped_events):  # the training loop records the count and warns above 1 %
            log = logger.info if not self._warned else logger.debug
            log("skipped %d of %d events (%d hits) larger than batch_size %d hits (epoch %d)",
                len(plan.skipped_events), self.store.n_events, plan.skipped_hits, self.batch_size, epoch)
            self._warned = True
        self._last_plan = plan
        return plan

    @property
    def skipped_events(self) -> np.ndarray:
        """Indices of events larger than the budget (skipped in every epoch)."""
        return np.flatnonzero(self.store.event_sizes > self.batch_size)

    @property
    def skipped_hits(self) -> int:
        sizes = self.store.event_sizes
        return int(sizes[sizes > self.batch_size].sum())

    def numpy_batches(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """The batches of ``epoch`` from batch ``start_batch`` on, as NumPy dicts with the declared dtypes."""
        plan = self.plan(epoch)
        for event_indices in plan.batches[start_batch:]:
            batch = self.store.gather(event_indices)
            batch["row_splits"] = batch["row_splits"].astype(np.int32)
            yield batch

    def dataset(self, epoch: int, start_batch: int = 0, *, prefetch: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
        """A ``tf.data.Dataset`` of the batches of ``epoch`` (from ``start_batch`` on, to resume), prefetched."""
        self.plan(epoch)  # plan and log now, not lazily inside tf.data
        dataset = tf.data.Dataset.from_generator(lambda: self.numpy_batches(epoch, start_batch),
                                                 output_signature=self.element_spec)
        return dataset.prefetch(prefetch)
