"""Metrics: a perfect prediction, binned metrics and the PID confusion matrix on hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gravtrain.inference import DEFAULT_ENERGY_BINS, ShowerMetrics, compute_shower_metrics, evaluate_predictions

SCALAR_NAMES = {"efficiency", "fake_rate", "response", "resolution", "n_events", "n_truth", "n_showers",
                "n_matched"}


def perfect_batch(rng, n_events=4, n_classes=6):
    """Events of tight, well-separated objects with one high-β hit each, plus far-away low-β noise."""
    features, beta, ccoords, t_idx, t_energy, t_pid, pid, sizes = [], [], [], [], [], [], [], []
    for _ in range(n_events):
        n_objects = int(rng.integers(0, 6))
        event_size = 0
        for k in range(n_objects):
            n_hits = int(rng.integers(1, 8))
            energy = rng.uniform(0.5, 20.0, size=n_hits)
            features.append(energy)
            beta.append(np.r_[0.95, rng.uniform(0, 0.2, size=n_hits - 1)])
            ccoords.append(np.array([10.0 * k, 0, 0]) + rng.normal(scale=0.01, size=(n_hits, 3)))
            t_idx.append(np.full(n_hits, k))
            t_energy.append(np.full(n_hits, energy.sum()))
            one_hot = np.zeros((n_hits, n_classes))
            one_hot[:, k % n_classes] = 1
            t_pid.append(one_hot)
            pid.append(0.5 * one_hot + 0.5 / n_classes)
            event_size += n_hits
        n_noise = int(rng.integers(0, 4))
        features.append(rng.uniform(0.1, 1.0, size=n_noise))
        beta.append(rng.uniform(0, 0.2, size=n_noise))
        ccoords.append(rng.normal(loc=-100.0, size=(n_noise, 3)))
        t_idx.append(np.full(n_noise, -1))
        t_energy.append(np.zeros(n_noise))
        t_pid.append(np.zeros((n_noise, n_classes)))
        pid.append(np.full((n_noise, n_classes), 1.0 / n_classes))
        sizes.append(event_size + n_noise)
    row_splits = np.concatenate([[0], np.cumsum(sizes)])
    predictions = {"beta": np.concatenate(beta)[:, None], "ccoords": np.concatenate(ccoords),
                   "energy_corr": np.ones((row_splits[-1], 1)), "pid": np.concatenate(pid)}
    truth = {"t_idx": np.concatenate(t_idx)[:, None], "t_energy": np.concatenate(t_energy)[:, None],
             "t_pid": np.concatenate(t_pid)}
    return predictions, truth, np.concatenate(features)[:, None], row_splits


@pytest.mark.parametrize("seed", range(3))
def test_perfect_prediction(seed):
    predictions, truth, energy, row_splits = perfect_batch(np.random.default_rng(seed), n_events=6)
    metrics = evaluate_predictions(predictions, truth, energy, row_splits, beta_threshold=0.5,
                                   distance_threshold=1.0, iou_threshold=0.5)
    assert metrics.n_truth > 0
    assert metrics.efficiency == 1.0 and metrics.fake_rate == 0.0
    assert metrics.response == pytest.approx(1.0, rel=1e-12)
    assert metrics.resolution == pytest.approx(0.0, abs=1e-12)
    assert metrics.n_matched == metrics.n_truth == metrics.n_showers
    confusion = metrics.pid_confusion
    assert confusion.shape == (6, 6) and np.trace(confusion) == confusion.sum() == metrics.n_matched
    assert metrics.to_dict()["pid_accuracy"] == 1.0


def test_energy_correction_scales_response():
    predictions, truth, energy, row_splits = perfect_batch(np.random.default_rng(7))
    predictions["energy_corr"] = 1.1 * predictions["energy_corr"]
    del predictions["pid"]
    metrics = evaluate_predictions(predictions, truth, energy, row_splits, beta_threshold=0.5,
                                   distance_threshold=1.0, iou_threshold=0.5)
    assert metrics.response == pytest.approx(1.1) and metrics.pid_confusion is None
    assert set(metrics.to_dict()) == SCALAR_NAMES


def test_split_object_and_fake_shower():
    # Event 0: object 0 (hits 0-2) is split in two showers; a noise hit becomes a fake shower.
    beta = np.array([0.9, 0.1, 0.8, 0.7])
    ccoords = np.array([[0.0, 0], [0.1, 0], [5, 0], [50, 0]])
    predictions = {"beta": beta, "ccoords": ccoords}
    truth = {"t_idx": np.array([0, 0, 0, -1]), "t_energy": np.full(4, 10.0), "t_pid": np.zeros((4, 6))}
    metrics = evaluate_predictions(predictions, truth, np.array([4.0, 2.0, 4.0, 1.0]), [0, 4],
                                   beta_threshold=0.5, distance_threshold=1.0, iou_threshold=0.5)
    assert (metrics.n_truth, metrics.n_showers, metrics.n_matched) == (1, 3, 1)
    assert metrics.efficiency == 1.0 and metrics.fake_rate == pytest.approx(2 / 3)
    assert metrics.response == pytest.approx(0.6)  # the 6-GeV shower (IoU 0.6) of a 10-GeV object


def test_track_momentum_is_not_a_deposit():
    # One object: a track row (momentum 10) and two cells (4 + 2 GeV) in one shower; energy_corr 1.5.
    predictions = {"beta": np.array([0.9, 0.2, 0.2]), "ccoords": np.zeros((3, 2)), "energy_corr": np.full(3, 1.5)}
    truth = {"t_idx": np.zeros(3, int), "t_energy": np.full(3, 9.0), "t_pid": np.zeros((3, 6))}
    options = dict(beta_threshold=0.5, distance_threshold=1.0, iou_threshold=0.5)
    energy = np.array([10.0, 4.0, 2.0])
    with_tracks = evaluate_predictions(predictions, truth, energy, [0, 3], is_track=[1, 0, 0], **options)
    assert with_tracks.response == pytest.approx(1.5 * 6.0 / 9.0)
    assert evaluate_predictions(predictions, truth, energy, [0, 3], **options).response == pytest.approx(1.5 * 16 / 9)


def test_binned_metrics_by_hand():
    edges = [1.0, 10.0, 100.0, 1000.0]
    object_energy = [2.0, 5.0, 20.0, 50.0, 0.5, 1000.0]  # bins 0, 0, 1, 1, outside, 2 (last edge included)
    shower_energy = [2.2, 30.0, 20.0, 7.0, 900.0]
    metrics = compute_shower_metrics(object_energy, shower_energy, matched_objects=[0, 2, 3, 5],
                                     matched_showers=[0, 2, 1, 4], n_events=2, energy_bins=edges)
    np.testing.assert_array_equal(metrics.bin_counts, [2, 2, 1])
    np.testing.assert_array_equal(metrics.bin_matched, [1, 2, 1])
    np.testing.assert_allclose(metrics.bin_efficiency, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(metrics.bin_response, [1.1, 0.8, 0.9])
    np.testing.assert_allclose(metrics.bin_resolution, [0.0, 0.2 / 0.8, 0.0], atol=1e-12)
    ratios = np.array([1.1, 1.0, 0.6, 0.9])
    assert metrics.efficiency == pytest.approx(4 / 6) and metrics.fake_rate == pytest.approx(1 / 5)
    assert metrics.response == pytest.approx(ratios.mean())
    assert metrics.resolution == pytest.approx(ratios.std() / ratios.mean())
    np.testing.assert_allclose(metrics.matched_true_energy, [2.0, 20.0, 50.0, 1000.0])


def test_empty_bins_and_no_objects_give_nan():
    metrics = compute_shower_metrics([], [3.0], [], [], n_events=1)
    np.testing.assert_array_equal(metrics.energy_bins, DEFAULT_ENERGY_BINS)
    assert np.all(np.isnan(metrics.bin_efficiency)) and np.all(np.isnan(metrics.bin_response))
    assert np.all(metrics.bin_counts == 0)
    values = metrics.to_dict()
    assert math.isnan(values["efficiency"]) and values["fake_rate"] == 1.0 and math.isnan(values["response"])
    assert isinstance(metrics, ShowerMetrics)


def test_confusion_matrix_by_hand():
    # Three single-hit objects in one event, each its own shower; classes truth (0, 1, 1), predicted (0, 2, 1).
    predictions = {"beta": np.full(3, 0.9), "ccoords": np.array([[0.0], [10.0], [20.0]]),
                   "pid": np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])}
    truth = {"t_idx": np.array([0, 1, 2]), "t_energy": np.array([1.0, 2.0, 3.0]),
             "t_pid": np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0]])}
    metrics = evaluate_predictions(predictions, truth, np.array([1.0, 2.0, 3.0]), [0, 3], beta_threshold=0.5,
                                   distance_threshold=1.0, iou_threshold=0.5)
    np.testing.assert_array_equal(metrics.pid_confusion, [[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert metrics.to_dict()["pid_accuracy"] == pytest.approx(2 / 3)


def test_bad_energy_bins_raise():
    with pytest.raises(ValueError, match="energy_bins"):
        compute_shower_metrics([1.0], [1.0], [0], [0], n_events=1, energy_bins=[10.0, 1.0])
