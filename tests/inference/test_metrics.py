"""Metrics: a perfect prediction, binned metrics and the PID confusion matrix on hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gravtrain.inference import DEFAULT_ENERGY_BINS, ShowerMetrics, compute_shower_metrics, evaluate_predictions

SCALAR_NAMES = {"efficiency", "fake_rate", "response", "resolution", "efficiency_minus_fake_rate", "efficiency_all",
                "fake_rate_all", "response_all", "resolution_all", "energy_threshold", "n_events", "n_truth", "n_showers",
                "n_matched", "n_truth_above", "n_showers_above", "n_matched_above"}


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
    predictions = {"beta": np.array([0.2, 0.9, 0.2]), "ccoords": np.zeros((3, 2)), "energy_corr": np.full(3, 1.5)}
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


def test_headline_metrics_above_the_energy_threshold_by_hand():
    # Objects of 5, 20 and 50 GeV; showers of 4, 30, 12 and 18 GeV; matches (0, 0), (1, 1): the 12-GeV shower
    # is a fake above 10 GeV, the 4-GeV one matched to the 5-GeV object counts only in the all-energy figures.
    metrics = compute_shower_metrics([5.0, 20.0, 50.0], [4.0, 30.0, 12.0, 8.0], matched_objects=[0, 1],
                                     matched_showers=[0, 1], n_events=1, energy_threshold=10.0)
    assert (metrics.n_truth_above, metrics.n_showers_above, metrics.n_matched_above) == (2, 2, 1)
    assert metrics.efficiency == pytest.approx(1 / 2) and metrics.efficiency_all == pytest.approx(2 / 3)
    assert metrics.fake_rate == pytest.approx(1 / 2) and metrics.fake_rate_all == pytest.approx(2 / 4)
    assert metrics.response == pytest.approx(1.5) and metrics.resolution == pytest.approx(0.0)
    assert metrics.to_dict()["efficiency_minus_fake_rate"] == pytest.approx(1 / 2 - 1 / 2)
    assert metrics.response_all == pytest.approx((0.8 + 1.5) / 2)
    assert metrics.to_dict()["energy_threshold"] == 10.0
    unthresholded = compute_shower_metrics([5.0, 20.0, 50.0], [4.0, 30.0, 12.0, 8.0], matched_objects=[0, 1],
                                           matched_showers=[0, 1], n_events=1)
    assert unthresholded.efficiency == unthresholded.efficiency_all == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="energy_threshold"):
        compute_shower_metrics([1.0], [1.0], [0], [0], n_events=1, energy_threshold=-1.0)


def batch_with_tracks(rng, n_events=5):
    """Perfect calorimeter showers (one high-β hit each, well separated) plus one track row per object, whose
    momentum is the object's energy; objects of 1 to 30 GeV, so some lie above 10 GeV and some below."""
    beta, ccoords, t_idx, t_energy, energy, is_track, sizes = [], [], [], [], [], [], []
    for _ in range(n_events):
        n_objects = int(rng.integers(2, 6))
        size = 0
        for k in range(n_objects):
            n_calo = int(rng.integers(2, 8))
            deposits = rng.dirichlet(np.ones(n_calo)) * rng.uniform(1.0, 30.0)
            total = deposits.sum()
            centre = np.array([10.0 * k, 0.0])
            beta.append(np.r_[0.95, rng.uniform(0, 0.2, n_calo - 1), 0.99])  # the track has the highest β
            ccoords.append(centre + rng.normal(scale=0.01, size=(n_calo + 1, 2)))
            t_idx.append(np.full(n_calo + 1, k))
            t_energy.append(np.full(n_calo + 1, total))
            energy.append(np.r_[deposits, total])
            is_track.append(np.r_[np.zeros(n_calo), 1.0])
            size += n_calo + 1
        sizes.append(size)
    predictions = {"beta": np.concatenate(beta), "ccoords": np.concatenate(ccoords)}
    truth = {"t_idx": np.concatenate(t_idx), "t_energy": np.concatenate(t_energy)}
    return predictions, truth, np.concatenate(energy), np.concatenate(is_track), np.r_[0, np.cumsum(sizes)]


@pytest.mark.parametrize("seed", range(3))
def test_perfect_prediction_with_tracks_above_threshold(seed):
    predictions, truth, energy, is_track, row_splits = batch_with_tracks(np.random.default_rng(seed))
    metrics = evaluate_predictions(predictions, truth, energy, row_splits, beta_threshold=0.5,
                                   distance_threshold=1.0, iou_threshold=0.5, is_track=is_track,
                                   energy_threshold=10.0)
    assert metrics.n_truth_above > 0 and metrics.n_truth_above < metrics.n_truth
    assert metrics.efficiency == 1.0 and metrics.fake_rate == 0.0
    assert metrics.efficiency_all == 1.0 and metrics.fake_rate_all == 0.0
    assert metrics.response == pytest.approx(1.0) and metrics.response_all == pytest.approx(1.0)


def test_shower_with_its_track_assigned_elsewhere_still_matches():
    # Object 0: three cells (2 GeV in all) and a 40-GeV track that the network placed on object 1's shower;
    # object 1: one 1-GeV cell. Weighted by momentum, object 0's IoU would be 2 / 42 and object 1's 1 / 41.
    predictions = {"beta": np.array([0.9, 0.1, 0.1, 0.99, 0.9]),
                   "ccoords": np.array([[0.0, 0], [0.1, 0], [0, 0.1], [10.0, 0], [10.0, 0.1]])}
    truth = {"t_idx": np.array([0, 0, 0, 0, 1]), "t_energy": np.array([40.0, 40, 40, 40, 1])}
    energy = np.array([1.0, 0.5, 0.5, 40.0, 1.0])
    is_track = np.array([0, 0, 0, 1, 0])
    metrics = evaluate_predictions(predictions, truth, energy, [0, 5], beta_threshold=0.5, distance_threshold=1.0,
                                   iou_threshold=0.5, is_track=is_track)
    assert (metrics.n_truth, metrics.n_showers, metrics.n_matched) == (2, 2, 2)
    assert metrics.efficiency == 1.0 and metrics.fake_rate == 0.0


def test_efficiency_per_truth_class_by_hand():
    # Objects (energy, class): (20, 0) matched, (30, 0) lost, (15, 1) matched, (5, 2) matched but below 10 GeV,
    # (40, no class: a row of zeros) matched. Above 10 GeV: class 0 finds 1 of 2, class 1 1 of 1, class 2 has
    # no object (no entry), and the classless object counts in the headline only.
    one_hot = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    predictions = {"beta": np.array([0.9, 0.1, 0.9, 0.9, 0.9]), "ccoords": np.array([[0.0], [0.05], [10.0],
                                                                                    [20.0], [30.0]])}
    truth = {"t_idx": np.arange(5), "t_energy": np.array([20.0, 30.0, 15.0, 5.0, 40.0]), "t_pid": one_hot}
    energy = np.array([20.0, 0.1, 15.0, 5.0, 40.0])
    kwargs = dict(beta_threshold=0.5, distance_threshold=1.0, iou_threshold=0.5, energy_threshold=10.0)
    metrics = evaluate_predictions(predictions, truth, energy, [0, 5], class_names=("a", "b", "c"), **kwargs)
    assert metrics.efficiency == pytest.approx(3 / 4)
    assert metrics.class_efficiency == {"a": pytest.approx(1 / 2), "b": pytest.approx(1.0)}
    np.testing.assert_array_equal(metrics.class_counts_above, [2, 1, 0])
    values = metrics.to_dict()
    assert values["efficiency_a"] == pytest.approx(0.5) and values["efficiency_b"] == 1.0
    assert "efficiency_c" not in values
    without_names = evaluate_predictions(predictions, truth, energy, [0, 5], **kwargs)
    assert without_names.class_efficiency == {} and set(without_names.to_dict()) == SCALAR_NAMES
