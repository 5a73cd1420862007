"""Hit-budget batching: packing invariants, reproducible shuffles, skipped events, tf.data output, one trace."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from gravtrain.data import TRUTH_DTYPES, TRUTH_WIDTHS, N_FEATURES
from gravtrain.data.batching import HitBudgetBatcher, batch_element_spec, plan_hit_budget_batches


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 120), max_size=60), budget=st.integers(1, 150),
       seed=st.integers(0, 2**16), epoch=st.integers(0, 5))
def test_packing_invariants(sizes, budget, seed, epoch):
    sizes = np.array(sizes, dtype=np.int64)
    plan = plan_hit_budget_batches(sizes, budget, seed=seed, epoch=epoch)
    visited = np.concatenate(plan.batches) if plan.batches else np.zeros(0, np.int64)
    fits = np.flatnonzero(sizes <= budget)
    # every event that fits is visited exactly once; the others are skipped and counted
    np.testing.assert_array_equal(np.sort(visited), fits)
    np.testing.assert_array_equal(plan.skipped_events, np.flatnonzero(sizes > budget))
    assert plan.skipped_hits == sizes[sizes > budget].sum()
    # no batch exceeds the budget; batches are greedy (the next batch's first event would not have fit)
    for batch, next_batch in zip(plan.batches, plan.batches[1:] + (None,)):
        assert 0 < len(batch) and sizes[batch].sum() <= budget
        if next_batch is not None:
            assert sizes[batch].sum() + sizes[next_batch[0]] > budget
    np.testing.assert_array_equal(plan.batch_hits, [sizes[b].sum() for b in plan.batches])


def test_shuffle_differs_per_epoch_and_is_reproducible():
    sizes = np.full(50, 10)
    orders = {e: np.concatenate(plan_hit_budget_batches(sizes, 100, seed=1, epoch=e).batches) for e in range(3)}
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    np.testing.assert_array_equal(orders[1], np.concatenate(plan_hit_budget_batches(sizes, 100, seed=1, epoch=1).batches))
    assert not np.array_equal(orders[1], np.concatenate(plan_hit_budget_batches(sizes, 100, seed=2, epoch=1).batches))
    unshuffled = plan_hit_budget_batches(sizes, 100, seed=1, epoch=4, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(unshuffled.batches), np.arange(50))


@pytest.fixture(scope="module")
def batcher(small_store):
    budget = int(np.sort(small_store.event_sizes)[-3])  # the two largest events do not fit
    return HitBudgetBatcher(small_store, batch_size=budget, seed=42)


def test_dataset_batches_hold_whole_events_within_budget(batcher, small_store):
    plan = batcher.plan(epoch=2)
    seen = []
    for batch, event_indices in zip(batcher.dataset(epoch=2).as_numpy_iterator(), plan.batches, strict=True):
        assert batch["features"].shape[0] <= batcher.batch_size
        np.testing.assert_array_equal(np.diff(batch["row_splits"]), small_store.event_sizes[event_indices])
        for k, event in enumerate(event_indices):
            begin, end = batch["row_splits"][k], batch["row_splits"][k + 1]
            np.testing.assert_array_equal(batch["features"][begin:end], small_store.event(event)["features"])
            np.testing.assert_array_equal(batch["t_idx"][begin:end], small_store.event(event)["t_idx"])
        seen.extend(event_indices)
    assert sorted(seen + list(batcher.skipped_events)) == list(range(small_store.n_events))
    assert len(batcher.skipped_events) == 2 and batcher.skipped_hits == np.sort(small_store.event_sizes)[-2:].sum()


def test_dataset_dtypes_and_shapes_are_declared(batcher):
    spec = batcher.dataset(epoch=0).element_spec
    assert spec["features"].shape.as_list() == [None, N_FEATURES] and spec["features"].dtype == tf.float32
    assert spec["row_splits"].shape.as_list() == [None] and spec["row_splits"].dtype == tf.int32
    for name, width in TRUTH_WIDTHS.items():
        assert spec[name].shape.as_list() == [None, width]
        assert spec[name].dtype == tf.as_dtype(TRUTH_DTYPES[name])


def test_skipped_events_are_logged(small_store, caplog):
    with caplog.at_level(logging.INFO, logger="gravtrain.data.batching"):
        HitBudgetBatcher(small_store, batch_size=int(small_store.event_sizes.max()) - 1, seed=0).dataset(epoch=0)
    assert "skipped 1 of 40 events" in caplog.text


def test_resume_starts_at_the_given_batch(batcher):
    full = [b["row_splits"] for b in batcher.dataset(epoch=5).as_numpy_iterator()]
    resumed = [b["row_splits"] for b in batcher.dataset(epoch=5, start_batch=2).as_numpy_iterator()]
    assert len(resumed) == len(full) - 2
    for a, b in zip(full[2:], resumed):
        np.testing.assert_array_equal(a, b)


def test_a_consuming_tf_function_traces_once(small_store):
    batcher = HitBudgetBatcher(small_store, batch_size=int(small_store.event_sizes.max()) + 1, seed=3)
    traces = {"signature": 0, "iterator": 0}

    @tf.function(input_signature=[batch_element_spec()])
    def energy_per_event(batch):
        traces["signature"] += 1
        return tf.math.segment_sum(batch["features"][:, 0], tf.ragged.row_splits_to_segment_ids(batch["row_splits"]))

    @tf.function
    def keras_style_step(iterator):  # Keras 3 passes the iterator into its compiled train function
        traces["iterator"] += 1
        batch = next(iterator)
        return tf.reduce_sum(batch["features"]) + tf.cast(tf.reduce_sum(batch["t_idx"]), tf.float32)

    shapes = set()
    for epoch in range(3):
        for batch in batcher.dataset(epoch):
            shapes.add(int(batch["features"].shape[0]))
            energy_per_event(batch)
        iterator = iter(batcher.dataset(epoch))
        for _ in range(batcher.plan(epoch).n_batches):
            keras_style_step(iterator)
    assert len(shapes) > 5
    assert traces == {"signature": 1, "iterator": 1}
