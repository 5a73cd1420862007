"""The noise filter's binary cross-entropy against a plain NumPy re-implementation."""

from __future__ import annotations

import numpy as np
import pytest

from gravtrain.losses import NoiseFilterLoss, noise_filter_loss, signal_labels


def bce_reference(score, t_idx, row_splits, is_track):
    """Per-event mean of -[y log s + (1-y) log(1-s)], then the mean over events with hits."""
    s = np.clip(score.reshape(-1).astype(np.float64), 1e-6, 1 - 1e-6)
    y = ((t_idx.reshape(-1) >= 0) | (is_track > 0.5)).astype(np.float64)
    per_hit = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    means = [per_hit[a:b].mean() for a, b in zip(row_splits[:-1], row_splits[1:]) if b > a]
    return float(np.mean(means))


def test_the_loss_is_the_per_event_mean_cross_entropy():
    rng = np.random.default_rng(4)
    row_splits = np.array([0, 7, 7, 30, 31], np.int32)  # an empty event and a one-hit event
    score = rng.uniform(0, 1, (31, 1)).astype(np.float32)
    t_idx = rng.integers(-1, 3, (31, 1)).astype(np.int32)
    is_track = (rng.uniform(size=31) < 0.1).astype(np.float32)
    total, metrics = noise_filter_loss(score, t_idx, row_splits, is_track)
    assert float(total) == pytest.approx(bce_reference(score, t_idx, row_splits, is_track), rel=1e-5)
    assert set(metrics) == {"loss/total", "loss/bce"}


def test_a_track_is_signal_even_without_a_truth_object():
    labels = signal_labels(np.array([[-1], [0], [-1]]), np.array([0.0, 0.0, 1.0]))
    assert labels.numpy().tolist() == [0.0, 1.0, 1.0]


def test_a_perfect_score_costs_almost_nothing_and_a_constant_one_log_two():
    t_idx = np.array([[-1], [0], [1], [-1]], np.int32)
    row_splits = np.array([0, 4], np.int32)
    perfect, _ = noise_filter_loss(np.array([[0.0], [1.0], [1.0], [0.0]], np.float32), t_idx, row_splits)
    half, _ = noise_filter_loss(np.full((4, 1), 0.5, np.float32), t_idx, row_splits)
    assert float(perfect) < 1e-5
    assert float(half) == pytest.approx(np.log(2.0), rel=1e-6)


def test_the_wrapper_takes_the_score_head_and_no_options():
    loss = NoiseFilterLoss()
    total, _ = loss({"signal_score": np.full((2, 1), 0.5, np.float32)}, {"t_idx": np.array([[0], [-1]])},
                    np.array([0, 2], np.int32))
    assert float(total) == pytest.approx(np.log(2.0), rel=1e-6)
    loss.set_options()
    with pytest.raises(ValueError, match="no options"):
        loss.set_options(q_min=1.0)
