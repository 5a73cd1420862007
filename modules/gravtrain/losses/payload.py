"""Payload terms of object condensation: energy, energy quantiles, position, time and particle class.

Every payload term is a β-weighted mean over the hits of the whole batch that belong to an object, so the
hits the network marks as likely condensation points dominate the regression.
"""

from __future__ import annotations

import tensorflow as tf

from .objects import atanh_beta_squared, flat_hits

#: Prediction heads read by :func:`payload_terms` (the names of ``gravtrain.layers`` heads).
PAYLOAD_PREDICTION_KEYS = (
    "energy_corr", "energy_low_quantile", "energy_high_quantile", "pos", "time", "time_unc", "pid",
)
#: Truth arrays read by :func:`payload_terms` (the names of the data room's truth).
PAYLOAD_TRUTH_KEYS = ("t_energy", "t_rec_energy", "t_pos", "t_time", "t_pid")
#: τ of the low and high energy quantiles.
ENERGY_QUANTILES = (0.16, 0.84)


def pinball(residual, quantile):
    """ρ_τ(z) = max(τ z, (τ − 1) z), the quantile (pinball) loss of level τ."""
    return tf.maximum(quantile * residual, (quantile - 1.0) * residual)


def payload_weights(beta, t_idx):
    """ξ_i = (1 − n_i) · arctanh(β_i/1.01)², n_i = 1 for noise (``t_idx`` = −1). Shapes: (V,) -> (V,)."""
    is_object = tf.cast(flat_hits(t_idx) >= 0, beta.dtype)
    return is_object * atanh_beta_squared(beta)


def weighted_payload(weights, per_hit_loss):
    """P = Σ_i ξ_i ℓ_i / (Σ_i ξ_i + 1e−6). Shapes: (V,), (V,) -> ()."""
    return tf.reduce_sum(weights * per_hit_loss) / (tf.reduce_sum(weights) + 1e-6)


def _check_keys(what: str, given, required) -> None:
    missing = [name for name in required if name not in given]
    if missing:
        raise KeyError(f"payload_terms: {what} lacks {', '.join(missing)}; it needs {', '.join(required)}.")


def payload_terms(beta, t_idx, predictions: dict, truth: dict) -> dict:
    """The payload terms of a batch: energy, energy quantiles, position, time and classification.

    With ξ_i = (1 − n_i) · arctanh(β_i/1.01)² (n_i = 1 for noise), each term is, over all hits of the batch,

    .. math::
        P = Σ_i ξ_i \\ell_i / (Σ_i ξ_i + 10^{-6})

    with the per-hit losses (E = ``t_energy``, c = ``energy_corr``, E_rec = ``t_rec_energy``):

    - energy: ℓ_i = (E_i − c_i E_rec,i)² / (E_i + 1);
    - energy quantiles: r_i = 1 − sg(c_i) E_rec,i / E_i (sg: stop-gradient; E_i = 0, as for noise, is read as
      1), ℓ_i = ρ_0.16(r_i − low_i) + ρ_0.84(r_i − high_i), ρ_τ(z) = max(τ z, (τ − 1) z);
    - position: ℓ_i = ‖t_pos_i[:2] − pos_i‖² / 100;
    - time: ℓ_i = (t_time_i − time_i)² / (σ_i² + 0.1) + ln(σ_i² + 0.1), σ = ``time_unc``;
    - classification: ℓ_i = −(1 − a_i) Σ_c t_pid_ic ln(pid_ic + 1e−7), with a_i = 1 when the truth class is the
      last one, "ambiguous" (``t_pid_i,-1`` > 0.5): ambiguous hits add 0 to the numerator and keep their ξ_i in
      the denominator.

    Args:
        beta: β; its float dtype is the dtype of the result.
        t_idx: object index, −1 for noise.
        predictions: the heads ``energy_corr``, ``energy_low_quantile``, ``energy_high_quantile``, ``pos``,
            ``time``, ``time_unc`` and ``pid`` (softmax over the classes).
        truth: ``t_energy``, ``t_rec_energy``, ``t_pos``, ``t_time`` and ``t_pid`` (one-hot; classes muon,
            electron, photon, charged_hadron, neutral_hadron, ambiguous).

    Returns:
        dict of scalar tensors ``"energy"``, ``"energy_quantiles"``, ``"position"``, ``"time"``,
        ``"classification"``.

    Shapes:
        beta, t_idx (V, 1) or (V,); energy_corr, energy_*_quantile, time, time_unc, t_energy, t_rec_energy,
        t_time (V, 1) or (V,); pos (V, 2); t_pos (V, 3); pid, t_pid (V, 6) -> dict of ().
    """
    _check_keys("predictions", predictions, PAYLOAD_PREDICTION_KEYS)
    _check_keys("truth", truth, PAYLOAD_TRUTH_KEYS)
    beta = flat_hits(beta)
    dtype = beta.dtype
    weights = payload_weights(beta, t_idx)

    def per_hit(source, name):
        return flat_hits(source[name], dtype)

    true_energy, recorded = per_hit(truth, "t_energy"), per_hit(truth, "t_rec_energy")
    correction = per_hit(predictions, "energy_corr")
    energy = tf.square(true_energy - correction * recorded) / (true_energy + 1.0)

    safe_true_energy = tf.where(true_energy == 0.0, tf.ones_like(true_energy), true_energy)
    residual = 1.0 - tf.stop_gradient(correction) * recorded / safe_true_energy
    low, high = ENERGY_QUANTILES
    quantiles = pinball(residual - per_hit(predictions, "energy_low_quantile"), low) + pinball(
        residual - per_hit(predictions, "energy_high_quantile"), high
    )

    true_position = tf.cast(truth["t_pos"], dtype)[:, :2]
    position = tf.reduce_sum(tf.square(true_position - tf.cast(predictions["pos"], dtype)), axis=-1) / 100.0

    variance = tf.square(per_hit(predictions, "time_unc")) + 0.1
    time = tf.square(per_hit(truth, "t_time") - per_hit(predictions, "time")) / variance + tf.math.log(variance)

    true_class = tf.cast(truth["t_pid"], dtype)
    not_ambiguous = tf.cast(true_class[:, -1] <= 0.5, dtype)
    cross_entropy = -tf.reduce_sum(true_class * tf.math.log(tf.cast(predictions["pid"], dtype) + 1e-7), axis=-1)
    classification = not_ambiguous * cross_entropy

    return {
        "energy": weighted_payload(weights, energy),
        "energy_quantiles": weighted_payload(weights, quantiles),
        "position": weighted_payload(weights, position),
        "time": weighted_payload(weights, time),
        "classification": weighted_payload(weights, classification),
    }
