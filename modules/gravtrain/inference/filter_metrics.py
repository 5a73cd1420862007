"""How well a noise filter separates signal from noise, on NumPy arrays of a set of events.

Over the calorimeter hits (tracks are always kept and not scored here), with s_i the signal score, y_i = 1 for
a hit of a truth object (``t_idx >= 0``) and 0 for noise, and the working point τ (kept: s_i >= τ)::

    signal_efficiency = #(kept, y = 1) / #(y = 1)
    noise_rejection   = #(dropped, y = 0) / #(y = 0)
    hits_kept         = #(kept) / #(hits)
    auc               = P(s_signal > s_noise) + P(s_signal = s_noise) / 2     (area under the ROC curve)
    per truth shower k of event e:  f_k = sum_{i in k, kept} E_i / sum_{i in k} E_i
    shower_energy_kept = mean_k f_k,   shower_energy_kept_p05 = the 5 % quantile of f_k

A constant score keeps all hits (efficiency 1, rejection 0) or none (0, 1): efficiency + rejection = 1, and
auc = 0.5. A filter is better than chance when efficiency + rejection > 1. A shower is the hits of one
``t_idx`` within one event: showers of different events never merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gravtrain.inference.ragged import checked_row_splits, per_hit_vector

#: The scalar metrics of :class:`FilterMetrics`, by name (what training logs as ``physics/<name>``).
FILTER_METRIC_NAMES = ("signal_efficiency", "noise_rejection", "hits_kept", "auc", "shower_energy_kept",
                       "shower_energy_kept_p05", "threshold")


@dataclass(frozen=True)
class FilterMetrics:
    """The metrics of the module docstring, plus the ROC curve and each shower's kept energy fraction."""

    threshold: float
    signal_efficiency: float
    noise_rejection: float
    hits_kept: float
    auc: float
    shower_energy_kept: float
    shower_energy_kept_p05: float
    n_signal: int
    n_noise: int
    n_showers: int
    roc_noise_kept: np.ndarray = field(repr=False)   # (T,) false positive rate, one point per distinct score
    roc_signal_kept: np.ndarray = field(repr=False)  # (T,) true positive rate
    shower_fractions: np.ndarray = field(repr=False)  # (K,) f_k

    def to_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in FILTER_METRIC_NAMES}

    def summary(self) -> str:
        return "\n".join([
            f"hits: {self.n_signal} signal, {self.n_noise} noise (calorimeter); {self.n_showers} truth showers",
            f"at score >= {self.threshold:g}: signal efficiency {self.signal_efficiency:.3f}, noise rejection "
            f"{self.noise_rejection:.3f}, hits kept {self.hits_kept:.3f} (a constant score: efficiency + "
            f"rejection = 1; here {self.signal_efficiency + self.noise_rejection:.3f})",
            f"ROC AUC {self.auc:.3f}; energy kept per truth shower: mean {self.shower_energy_kept:.3f}, "
            f"5 % quantile {self.shower_energy_kept_p05:.3f}",
        ])


def filter_metrics(score, t_idx, hit_energy, row_splits, *, threshold: float, is_track=None) -> FilterMetrics:
    """The metrics of the module docstring for V hits of E events.

    Shapes:
        score, t_idx, hit_energy, is_track: (V,) or (V, 1); row_splits (E+1,).
    """
    score = np.asarray(score).reshape(-1).astype(np.float64)
    n_hits = len(score)
    row_splits = checked_row_splits(row_splits, n_hits)
    t_idx = per_hit_vector(t_idx, n_hits, "t_idx", dtype=np.int64)
    energy = per_hit_vector(hit_energy, n_hits, "hit_energy")
    calorimeter = np.ones(n_hits, bool) if is_track is None else per_hit_vector(is_track, n_hits, "is_track") <= 0.5
    event = np.repeat(np.arange(len(row_splits) - 1), np.diff(row_splits))
    score, t_idx, energy, event = score[calorimeter], t_idx[calorimeter], energy[calorimeter], event[calorimeter]
    signal = t_idx >= 0
    kept = score >= threshold
    n_signal, n_noise = int(signal.sum()), int((~signal).sum())
    fpr, tpr, auc = _roc(score, signal)

    fractions = np.zeros(0)
    if n_signal:
        showers, shower_of_hit = np.unique(np.stack([event[signal], t_idx[signal]], axis=1), axis=0,
                                           return_inverse=True)
        shower_of_hit = shower_of_hit.reshape(-1)
        total = np.bincount(shower_of_hit, weights=energy[signal], minlength=len(showers))
        kept_energy = np.bincount(shower_of_hit, weights=energy[signal] * kept[signal], minlength=len(showers))
        fractions = np.divide(kept_energy, total, out=np.ones_like(total), where=total > 0)
    return FilterMetrics(
        threshold=float(threshold),
        signal_efficiency=float(kept[signal].mean()) if n_signal else float("nan"),
        noise_rejection=float((~kept[~signal]).mean()) if n_noise else float("nan"),
        hits_kept=float(kept.mean()) if len(kept) else float("nan"),
        auc=auc, shower_energy_kept=float(fractions.mean()) if len(fractions) else float("nan"),
        shower_energy_kept_p05=float(np.quantile(fractions, 0.05)) if len(fractions) else float("nan"),
        n_signal=n_signal, n_noise=n_noise, n_showers=len(fractions),
        roc_noise_kept=fpr, roc_signal_kept=tpr, shower_fractions=fractions,
    )


def _roc(score: np.ndarray, signal: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The ROC curve (noise kept, signal kept) over every distinct threshold, from (0, 0) to (1, 1), and its
    area (trapezoids, which counts ties as half)."""
    n_signal, n_noise = int(signal.sum()), int((~signal).sum())
    if not n_signal or not n_noise:
        return np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")
    order = np.argsort(-score, kind="stable")
    sorted_score, sorted_signal = score[order], signal[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_score)), len(score) - 1]
    tp = np.cumsum(sorted_signal)[last_of_value]
    fp = np.cumsum(~sorted_signal)[last_of_value]
    tpr = np.r_[0.0, tp / n_signal]
    fpr = np.r_[0.0, fp / n_noise]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))
