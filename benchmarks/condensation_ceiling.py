"""Where does a trained model lose its showers: in the seeds (beta) or in the cluster coordinates? (JSON)

For a saved model and a config's validation events, efficiencies above ``Evaluation.energy_threshold``:

- ``model``: the model's own condensation (the config's ``Evaluation`` thresholds), as ``gravtrain evaluate``;
- ``oracle_seeds``: every true object's condensation point is given (its most energetic calorimeter hit,
  ``t_is_unique``), and every calorimeter hit joins the nearest of them in the model's cluster space if it lies
  within d (for each d of ``--distances``). This is what perfect seeds would reach with these coordinates: when
  the model is close to it, a better beta cannot help and only better-separated coordinates can;
- ``by_neighbour_distance``: the model's efficiency in bins of the distance Delta R (eta, phi) from an object's
  seed to the nearest other object of its event (merges of neighbours show as a rise with Delta R);
- ``by_species``: the model's efficiency per species of the truth (``t_pid``);
- ``failures``: why each lost object above the threshold is lost, and why each fake shower above it is a fake
  (``failure_modes``): merged (its largest share of deposits lies in a shower that another object dominates),
  split (in a shower of its own, holding less than half of its deposits), other (its shower holds most of it and
  is its own, yet their energy IoU stays below the threshold), not clustered; a fake shower is a merge of
  objects (none holds half of its energy), a split-off piece of a found object or of a lost one, or mostly
  noise. Counts overall and per species.

Tracks are left out of the oracle's clusters and weigh nothing in the IoU, as in the metrics.

Usage::

    python benchmarks/condensation_ceiling.py --model checkpoints/RUN_ID/model.keras [--config configs/toy.yaml]
        [--set KEY=VALUE ...] [--distances 0.5 0.8 1.2] [--out benchmarks/results/condensation_ceiling.json]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "condensation_ceiling.json"
NEIGHBOUR_BINS = (0.0, 0.05, 0.1, 0.2, 0.4, np.inf)


def oracle_clusters(ccoords, t_idx, is_unique, is_track, row_splits, distance: float) -> np.ndarray:
    """Cluster ids when each object's ``t_is_unique`` hit is its seed and every calorimeter hit joins the
    nearest seed of its event in ``ccoords`` within ``distance`` (else -1); tracks are -1."""
    cluster_ids = np.full(len(t_idx), -1, dtype=np.int64)
    next_id = 0
    for start, stop in zip(row_splits[:-1], row_splits[1:]):
        seeds = np.flatnonzero(is_unique[start:stop] & ~is_track[start:stop] & (t_idx[start:stop] >= 0))
        if len(seeds) == 0:
            continue
        coords = ccoords[start:stop]
        distances = np.linalg.norm(coords[:, None, :] - coords[seeds][None, :, :], axis=-1)
        nearest = distances.argmin(axis=1)
        joined = (distances.min(axis=1) < distance) & ~is_track[start:stop]
        cluster_ids[start:stop] = np.where(joined, nearest + next_id, -1)
        next_id += len(seeds)
    return cluster_ids


def nearest_neighbour_distance(eta, phi, seeds: np.ndarray, events: np.ndarray) -> np.ndarray:
    """For each object (its seed hit index), Delta R to the nearest other object's seed of the same event."""
    result = np.full(len(seeds), np.inf)
    for event in np.unique(events):
        members = np.flatnonzero(events == event)
        if len(members) < 2:
            continue
        hits = seeds[members]
        d_eta = eta[hits][:, None] - eta[hits][None, :]
        d_phi = (phi[hits][:, None] - phi[hits][None, :] + np.pi) % (2 * np.pi) - np.pi
        distance = np.hypot(d_eta, d_phi)
        np.fill_diagonal(distance, np.inf)
        result[members] = distance.min(axis=1)
    return result


def failure_modes(object_ids, cluster_ids, deposits, matched_objects, matched_showers, objects_above,
                  showers_above, species=None) -> dict:
    """Counts of why the lost objects and the fake showers above the threshold fail (module docstring).

    Args:
        object_ids, cluster_ids: (V,) truth object and predicted shower of each hit (-1: none), numbered across
            the batch.
        deposits: (V,) calorimeter energy of each hit (tracks 0).
        matched_objects, matched_showers: the matched pairs.
        objects_above, showers_above: (K,) and (S,) bool, the objects and showers above the energy threshold.
        species: optional (K,) names of the objects' species, for the per-species counts of the lost ones.
    """
    n_objects, n_showers = len(objects_above), len(showers_above)
    both = (object_ids >= 0) & (cluster_ids >= 0)
    shared = np.zeros((n_objects, n_showers))
    np.add.at(shared, (object_ids[both], cluster_ids[both]), deposits[both])
    object_energy = np.bincount(object_ids[object_ids >= 0], deposits[object_ids >= 0], minlength=n_objects)
    shower_energy = np.bincount(cluster_ids[cluster_ids >= 0], deposits[cluster_ids >= 0], minlength=n_showers)
    found, kept = np.zeros(n_objects, bool), np.zeros(n_showers, bool)
    found[matched_objects], kept[matched_showers] = True, True
    lost, lost_by_species, fakes = {}, {}, {}
    for k in np.flatnonzero(objects_above & ~found):
        best = int(np.argmax(shared[k])) if n_showers else 0
        if not n_showers or shared[k, best] <= 0:
            why = "not clustered"
        elif shared[k, best] < 0.5 * shower_energy[best]:
            why = "merged"
        elif shared[k, best] < 0.5 * object_energy[k]:
            why = "split"
        else:
            why = "other"
        lost[why] = lost.get(why, 0) + 1
        if species is not None:
            lost_by_species.setdefault(str(species[k]), {}).setdefault(why, 0)
            lost_by_species[str(species[k])][why] += 1
    for s in np.flatnonzero(showers_above & ~kept):
        owner = int(np.argmax(shared[:, s])) if n_objects else 0
        if not n_objects or shared[:, s].sum() < 0.5 * shower_energy[s]:
            why = "mostly noise"
        elif shared[owner, s] < 0.5 * shower_energy[s]:
            why = "merge of objects"
        else:
            why = "piece of a found object" if found[owner] else "piece of a lost object"
        fakes[why] = fakes.get(why, 0) + 1
    return {"lost": lost, "lost_by_species": lost_by_species, "fakes": fakes,
            "n_lost": int((objects_above & ~found).sum()), "n_fakes": int((showers_above & ~kept).sum())}


def measure(config, model_path: str, distances: tuple[float, ...]) -> dict:
    from gravtrain.data import FEATURE_NAMES, load_event_sets
    from gravtrain.data.names import PID_NAMES
    from gravtrain.evaluation.runner import predict_events
    from gravtrain.inference import calorimeter_deposits, condense, match_showers, shower_energies
    from gravtrain.model import load_model

    _, val = load_event_sets(config.Data)
    evaluation = config.Evaluation
    predictions = predict_events(load_model(model_path), val)
    column = {name: val.features[:, index] for index, name in enumerate(FEATURE_NAMES)}
    is_track = column["is_track"] > 0.5
    deposits = calorimeter_deposits(column["energy"], is_track)
    t_idx = val.truth["t_idx"].ravel()
    row_splits = val.row_splits

    def matched_objects(cluster_ids, n_showers=None):
        match = match_showers(t_idx, cluster_ids, deposits, row_splits, iou_threshold=evaluation.iou_threshold,
                              n_showers=int(cluster_ids.max(initial=-1)) + 1 if n_showers is None else n_showers)
        matched = np.zeros(match.truth.n_objects, bool)
        matched[match.matched_objects] = True
        return match.truth, matched, match

    condensation = condense(predictions["beta"], predictions["ccoords"], row_splits,
                            beta_threshold=evaluation.beta_threshold,
                            distance_threshold=evaluation.distance_threshold, dist=predictions.get("dist"),
                            is_track=is_track)
    truth, matched, match = matched_objects(condensation.cluster_ids, condensation.n_showers)
    energy = val.truth["t_energy"].ravel()[truth.first_hits]
    above = energy > evaluation.energy_threshold
    species = np.argmax(val.truth["t_pid"][truth.first_hits], axis=1)
    shower_energy = shower_energies(deposits, condensation, predictions.get("energy_corr"))
    failures = failure_modes(truth.object_ids, condensation.cluster_ids, deposits, match.matched_objects,
                             match.matched_showers, above, shower_energy > evaluation.energy_threshold,
                             species=np.asarray(PID_NAMES)[species])

    def efficiency(flags, selection=None):
        chosen = above if selection is None else above & selection
        return {"efficiency": float(flags[chosen].mean()) if chosen.any() else None, "n_objects": int(chosen.sum())}

    is_unique = val.truth["t_is_unique"].ravel() > 0.5
    oracle = {}
    for distance in distances:
        oracle_truth, oracle_matched, _ = matched_objects(
            oracle_clusters(predictions["ccoords"], t_idx, is_unique, is_track, row_splits, distance))
        assert np.array_equal(oracle_truth.first_hits, truth.first_hits)
        oracle[f"{distance:g}"] = efficiency(oracle_matched)

    seeds = np.full(truth.n_objects, -1)
    unique_hits = np.flatnonzero(is_unique & ~is_track & (truth.object_ids >= 0))
    seeds[truth.object_ids[unique_hits]] = unique_hits
    has_seed = seeds >= 0
    events = np.searchsorted(row_splits, np.where(has_seed, seeds, truth.first_hits), side="right") - 1
    phi = np.arctan2(column["y"], column["x"])
    neighbour = np.full(truth.n_objects, np.inf)
    neighbour[has_seed] = nearest_neighbour_distance(column["eta"], phi, seeds[has_seed], events[has_seed])
    by_neighbour = {f"[{low:g}, {high:g})": efficiency(matched, has_seed & (neighbour >= low) & (neighbour < high))
                    for low, high in zip(NEIGHBOUR_BINS[:-1], NEIGHBOUR_BINS[1:])}
    by_species = {PID_NAMES[index]: efficiency(matched, species == index) for index in np.unique(species)}
    return {"model": efficiency(matched), "oracle_seeds": oracle, "by_neighbour_distance": by_neighbour,
            "by_species": by_species, "failures": failures, "energy_threshold": evaluation.energy_threshold,
            "beta_threshold": evaluation.beta_threshold, "distance_threshold": evaluation.distance_threshold,
            "n_events": int(len(row_splits) - 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the saved model (.keras)")
    parser.add_argument("--config", default=str(REPO / "configs" / "toy.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--distances", type=float, nargs="+", default=[0.5, 0.8, 1.2])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from gravtrain.config import load_config

    result = measure(load_config(args.config, args.overrides), args.model, tuple(args.distances))
    result.update(model_path=args.model, config=args.config, overrides=args.overrides)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    log = logging.getLogger("condensation_ceiling")
    log.info("above %g GeV: model %.3f; oracle seeds %s", result["energy_threshold"], result["model"]["efficiency"],
             ", ".join(f"d {d}: {v['efficiency']:.3f}" for d, v in result["oracle_seeds"].items()))
    failures = result["failures"]
    log.info("lost %d: %s; fakes %d: %s", failures["n_lost"], failures["lost"], failures["n_fakes"], failures["fakes"])
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
