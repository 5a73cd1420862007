"""Plain NumPy re-implementations of the loss, written per event and per object with Python loops.

They follow the formulas of issue 6 (and of the docstrings of ``gravtrain.losses``) symbol by symbol, with no
vectorisation, so they serve as the ground truth of the TensorFlow implementation.
"""

from __future__ import annotations

import math

import numpy as np

HIGH_BETA_THRESHOLD = 0.5
BETA_PUSH_FLOOR = 0.5


def potential(s: float, implementation: str) -> float:
    if implementation == "hinge":
        return max(0.0, 1.0 - math.sqrt(s + 1e-6))
    return math.exp(-s / 2.0)


def condensation_reference(beta, ccoords, t_idx, row_splits, *, q_min, implementation, use_average_cc_pos,
                           dist=None, spectator_weight=None, repulsion_normalization="object",
                           is_track=None) -> dict:
    """attractive, repulsive, beta, noise, too_much_beta, beta_push: per event, then mean over non-empty events."""
    beta = np.ravel(beta).astype(np.float64)
    x = np.asarray(ccoords, dtype=np.float64)
    t = np.ravel(t_idx)
    d = np.ones(len(beta)) if dist is None else np.ravel(dist)
    sw = np.zeros(len(beta)) if spectator_weight is None else np.ravel(spectator_weight)
    track = np.zeros(len(beta), bool) if is_track is None else np.ravel(is_track) > 0.5
    u = use_average_cc_pos
    names = ("attractive", "repulsive", "beta", "noise", "too_much_beta", "beta_push")
    per_event = {name: [] for name in names}
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        hits = list(range(begin, end))
        if not hits:
            continue
        q = {i: (math.atanh(beta[i] / 1.01) ** 2 + q_min) * (1.0 - sw[i]) for i in hits}
        objects = sorted({int(t[i]) for i in hits if t[i] >= 0})
        sums = dict.fromkeys(names, 0.0)
        for k in objects:
            members = [i for i in hits if t[i] == k]
            others = [i for i in hits if t[i] != k]
            # Tracks are condensation points only of an object made of tracks alone.
            candidates = [i for i in members if not track[i]] or members
            alpha = candidates[0]
            for i in candidates:
                if q[i] > q[alpha]:
                    alpha = i
            beta_sum = sum(beta[i] for i in members)
            weighted = sum(beta[i] * x[i] for i in members) / (beta_sum + 1e-6)
            centre = (1.0 - u) * x[alpha] + u * weighted

            def scaled(i):
                return float(np.sum((x[i] - centre) ** 2)) / (d[alpha] ** 2 + 1e-4)

            sums["attractive"] += q[alpha] * sum(q[i] * scaled(i) for i in members) / len(members)
            if others:
                repulsion = sum(q[i] * potential(scaled(i), implementation) for i in others)
                norm = len(others) if repulsion_normalization == "object" else len(hits) / len(objects)
                sums["repulsive"] += q[alpha] * repulsion / norm
            sums["beta"] += 1.0 - beta[alpha]
            sums["too_much_beta"] += sum(
                max(0.0, beta[i] - HIGH_BETA_THRESHOLD) / (1.0 - HIGH_BETA_THRESHOLD) for i in members if i != alpha
            )
            sums["beta_push"] += max(0.0, BETA_PUSH_FLOOR - max(beta[i] for i in members))
        for name in ("attractive", "repulsive", "beta", "too_much_beta", "beta_push"):
            per_event[name].append(sums[name] / len(objects) if objects else 0.0)
        noise = [i for i in hits if t[i] < 0]
        per_event["noise"].append(sum(beta[i] for i in noise) / len(noise) if noise else 0.0)
    return {name: (sum(values) / len(values) if values else 0.0) for name, values in per_event.items()}


def payload_reference(beta, t_idx, predictions, truth) -> dict:
    """energy, energy_quantiles, position, time, classification: ξ-weighted means over all hits of the batch."""
    beta, t = np.ravel(beta), np.ravel(t_idx)
    p = {name: np.asarray(value, dtype=np.float64) for name, value in predictions.items()}
    y = {name: np.asarray(value, dtype=np.float64) for name, value in truth.items()}

    def rho(z, tau):
        return max(tau * z, (tau - 1.0) * z)

    names = ("energy", "energy_quantiles", "position", "time", "classification")
    numerators, weight_sum = dict.fromkeys(names, 0.0), 0.0
    for i in range(len(beta)):
        xi = (0.0 if t[i] < 0 else 1.0) * math.atanh(beta[i] / 1.01) ** 2
        weight_sum += xi
        true_energy, recorded, corr = y["t_energy"][i, 0], y["t_rec_energy"][i, 0], p["energy_corr"][i, 0]
        losses = {"energy": (true_energy - corr * recorded) ** 2 / (true_energy + 1.0)}
        r = 1.0 - corr * recorded / (true_energy if true_energy != 0.0 else 1.0)
        losses["energy_quantiles"] = rho(r - p["energy_low_quantile"][i, 0], 0.16) + rho(
            r - p["energy_high_quantile"][i, 0], 0.84
        )
        losses["position"] = sum((y["t_pos"][i, c] - p["pos"][i, c]) ** 2 for c in range(2)) / 100.0
        variance = p["time_unc"][i, 0] ** 2 + 0.1
        losses["time"] = (y["t_time"][i, 0] - p["time"][i, 0]) ** 2 / variance + math.log(variance)
        ambiguous = y["t_pid"][i, 5] > 0.5
        losses["classification"] = 0.0 if ambiguous else -sum(
            y["t_pid"][i, c] * math.log(p["pid"][i, c] + 1e-7) for c in range(6)
        )
        for name in names:
            numerators[name] += xi * losses[name]
    return {name: numerators[name] / (weight_sum + 1e-6) for name in names}


def total_reference(batch, options) -> float:
    """The total loss of issue 6 plus the two extra terms, from the references above."""
    terms = condensation_reference(
        batch["beta"], batch["ccoords"], batch["t_idx"], batch["row_splits"], q_min=options["q_min"],
        implementation=options["oc_implementation"], use_average_cc_pos=options["use_average_cc_pos"],
        dist=batch["predictions"].get("dist"), spectator_weight=batch["truth"].get("t_spectator"),
        repulsion_normalization=options["repulsion_normalization"], is_track=batch.get("is_track"),
    )
    terms.update(payload_reference(batch["beta"], batch["t_idx"], batch["predictions"], batch["truth"]))
    return (
        terms["attractive"] + terms["repulsive"] + options["beta_loss_scale"] * terms["beta"]
        + options["noise_scale"] * terms["noise"]
        + options["energy_loss_weight"] * (terms["energy"] + terms["energy_quantiles"])
        + options["position_loss_weight"] * terms["position"] + options["timing_loss_weight"] * terms["time"]
        + options["classification_loss_weight"] * terms["classification"]
        + options["too_much_beta_scale"] * terms["too_much_beta"] + options["beta_push"] * terms["beta_push"]
    )
