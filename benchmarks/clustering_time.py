"""Wall time of ``condensation_clusters`` on CPU for one event of 1k, 10k and 100k hits.

The event imitates a trained model's output: objects of ~50 hits each, spread as Gaussian blobs (σ = 0.3) in a
3-D cluster space with ~10 units between neighbouring centres, plus 10 % noise hits spread uniformly. Each object
has one condensation hit with β ≈ 0.95 near its centre, and ~2 % of all hits (``--secondary-fraction``) carry a
secondary β in (0.5, 0.9), so ~4 % of the hits are candidates (β > 0.5); clustering uses distance_threshold 1
with d = 1. A large ``--secondary-fraction`` (e.g. 0.5) imitates a poorly trained model with many candidates.

Usage::

    python benchmarks/clustering_time.py [--sizes 1000 10000 100000] [--repeats 3] [--secondary-fraction 0.02]
        [--out benchmarks/results/clustering_time.json]

Prints one JSON line per size (median and min of ``--repeats`` timed runs) and writes the list to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from gravtrain.inference import condense

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "clustering_time.json"
HITS_PER_OBJECT = 50
NOISE_FRACTION = 0.1
BETA_THRESHOLD = 0.5
DISTANCE_THRESHOLD = 1.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--secondary-fraction", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args()


def synthetic_event(n_hits: int, secondary_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(beta (V,), ccoords (V, 3)) for one event as described in the module docstring."""
    n_noise = int(NOISE_FRACTION * n_hits)
    n_object_hits = n_hits - n_noise
    n_objects = max(1, n_object_hits // HITS_PER_OBJECT)
    box = 10.0 * n_objects ** (1 / 3)
    centres = rng.uniform(0, box, size=(n_objects, 3))
    owner = np.sort(rng.integers(0, n_objects, size=n_object_hits))
    ccoords = np.concatenate([centres[owner] + rng.normal(scale=0.3, size=(n_object_hits, 3)),
                              rng.uniform(0, box, size=(n_noise, 3))])
    beta = rng.uniform(0, 0.3, size=n_hits)
    _, first_hit = np.unique(owner, return_index=True)
    beta[first_hit] = rng.uniform(0.9, 1.0, size=len(first_hit))
    ccoords[first_hit] = centres[owner[first_hit]] + rng.normal(scale=0.05, size=(len(first_hit), 3))
    secondary = rng.choice(n_object_hits, size=int(secondary_fraction * n_object_hits), replace=False)
    beta[secondary] = np.maximum(beta[secondary], rng.uniform(0.5, 0.9, size=len(secondary)))
    order = rng.permutation(n_hits)  # hits of an object are not contiguous in real events
    return beta[order], ccoords[order]


def time_size(n_hits: int, repeats: int, secondary_fraction: float, rng: np.random.Generator) -> dict:
    beta, ccoords = synthetic_event(n_hits, secondary_fraction, rng)
    row_splits = np.array([0, n_hits])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = condense(beta, ccoords, row_splits, beta_threshold=BETA_THRESHOLD,
                          distance_threshold=DISTANCE_THRESHOLD)
        seconds.append(time.perf_counter() - start)
    return {
        "benchmark": "condensation_clustering_time",
        "n_hits": n_hits,
        "n_candidates": int(np.sum(beta > BETA_THRESHOLD)),
        "candidate_fraction": round(float(np.mean(beta > BETA_THRESHOLD)), 4),
        "n_showers": result.n_showers,
        "noise_hits": int(np.sum(result.cluster_ids < 0)),
        "seconds_median": round(float(np.median(seconds)), 4),
        "seconds_min": round(float(np.min(seconds)), 4),
        "repeats": repeats,
        "machine": machine(),
    }


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    condense(np.array([0.9]), np.zeros((1, 3)), np.array([0, 1]), beta_threshold=0.5, distance_threshold=1.0)
    results = []
    for n_hits in args.sizes:
        result = time_size(n_hits, args.repeats, args.secondary_fraction, rng)
        print(json.dumps(result), flush=True)
        results.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
