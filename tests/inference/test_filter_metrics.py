"""Noise filter metrics against hand-counted values, chance, and a pairwise AUC; the clustering of kept hits."""

from __future__ import annotations

import numpy as np
import pytest

from gravtrain.inference import condense, filter_metrics


def pairwise_auc(score, signal):
    """P(s_signal > s_noise) + P(equal) / 2 over every signal-noise pair."""
    s, n = score[signal], score[~signal]
    greater = (s[:, None] > n[None, :]).mean()
    equal = (s[:, None] == n[None, :]).mean()
    return greater + equal / 2


def test_counts_at_the_working_point_and_per_shower_energy():
    # event 0: object 0 (two hits, one dropped), a noise hit kept, a track; event 1: object 0 again (a different
    # shower: showers never merge across events), noise dropped.
    score = np.array([0.9, 0.2, 0.7, 0.0, 0.8, 0.1])
    t_idx = np.array([0, 0, -1, -1, 0, -1])
    energy = np.array([3.0, 1.0, 5.0, 10.0, 2.0, 1.0])
    is_track = np.array([0, 0, 0, 1, 0, 0])
    m = filter_metrics(score, t_idx, energy, np.array([0, 4, 6]), threshold=0.5, is_track=is_track)
    assert m.n_signal == 3 and m.n_noise == 2 and m.n_showers == 2
    assert m.signal_efficiency == pytest.approx(2 / 3)
    assert m.noise_rejection == pytest.approx(1 / 2)
    assert m.hits_kept == pytest.approx(3 / 5)
    assert sorted(m.shower_fractions) == pytest.approx([0.75, 1.0])
    assert m.shower_energy_kept == pytest.approx(0.875)


def test_a_constant_score_is_chance_and_the_auc_is_the_pairwise_probability():
    rng = np.random.default_rng(1)
    t_idx = rng.integers(-1, 4, 400)
    energy = rng.uniform(0.1, 2.0, 400)
    splits = np.array([0, 150, 400])
    constant = filter_metrics(np.full(400, 0.3), t_idx, energy, splits, threshold=0.5)
    assert constant.signal_efficiency + constant.noise_rejection == pytest.approx(1.0)
    assert constant.auc == pytest.approx(0.5)
    score = np.round(rng.uniform(size=400) + 0.3 * (t_idx >= 0), 2)  # ties on purpose
    m = filter_metrics(score, t_idx, energy, splits, threshold=0.5)
    assert m.auc == pytest.approx(pairwise_auc(score, t_idx >= 0), abs=1e-12)
    assert m.roc_noise_kept[0] == 0 and m.roc_signal_kept[-1] == pytest.approx(1.0)


def test_dropped_hits_are_noise_and_the_kept_ones_cluster_as_alone():
    rng = np.random.default_rng(2)
    n = 60
    beta = rng.uniform(size=n)
    ccoords = rng.normal(size=(n, 2))
    splits = np.array([0, 25, 25, 60])
    kept = rng.uniform(size=n) < 0.6
    showers = condense(beta, ccoords, splits, beta_threshold=0.5, distance_threshold=0.7, kept=kept)
    rows = np.flatnonzero(kept)
    alone = condense(beta[rows], ccoords[rows], np.r_[0, np.cumsum(kept)][splits], beta_threshold=0.5,
                     distance_threshold=0.7)
    assert np.all(showers.cluster_ids[~kept] == -1)
    assert np.array_equal(showers.cluster_ids[rows], alone.cluster_ids)
    assert np.array_equal(showers.condensation_points, rows[alone.condensation_points])
