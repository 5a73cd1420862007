"""The sampler and pruner of a sweep, from its ``sampler``, ``seed`` and ``pruner``.

- ``random``: trial ``n`` draws each key from a generator seeded with ``(seed, n, key)``, so the points of a
  random sweep are the same whatever the number of workers or machines and however often it is resumed.
- ``tpe``: Optuna's TPE (its first trials random). With several workers its proposals depend on which trials
  have finished, so a parallel TPE sweep is not reproducible point for point; each worker's sampler is seeded
  with ``seed`` and the worker's number, and ``constant_liar`` keeps parallel workers from proposing the same
  point.
- ``grid``: every point is queued when the study is created; the sampler is never asked.
- ``median`` pruning: after an epoch, a trial whose objective is worse than the median of earlier trials at that
  epoch stops (Optuna's MedianPruner, its first five trials never pruned); with ``pruner_warmup_epochs: W`` not
  before its epoch W + 1.
"""

from __future__ import annotations

import zlib

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution


def _random_sampler(seed: int, worker: int) -> optuna.samplers.BaseSampler:
    return TrialSeededRandomSampler(seed)


def _tpe_sampler(seed: int, worker: int) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=seed * 1000 + worker, constant_liar=True)


#: The sampler of each sweep file's ``sampler`` (`gravtrain.tune.sweep_file.SAMPLERS`; a test keeps the two
#: alike): a grid's points are queued before any trial, so a grid samples as random does beyond them.
SAMPLER_FACTORIES = {"grid": _random_sampler, "random": _random_sampler, "tpe": _tpe_sampler}
#: The pruner of each sweep file's ``pruner`` (`gravtrain.tune.sweep_file.PRUNERS`); a trial reports its objective
#: at epochs 1, 2, ..., so Optuna's warm-up of W + 1 steps lets the first W epochs train whatever they score.
PRUNER_FACTORIES = {
    "none": lambda warmup_epochs: optuna.pruners.NopPruner(),
    "median": lambda warmup_epochs: optuna.pruners.MedianPruner(n_warmup_steps=warmup_epochs + 1),
}


def make_sampler(kind: str, seed: int, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of a sweep's ``sampler`` (`SAMPLER_FACTORIES`); an unknown kind is a ValueError."""
    return _registered(SAMPLER_FACTORIES, "sampler", kind)(seed, worker)


def make_pruner(kind: str, warmup_epochs: int = 0) -> optuna.pruners.BasePruner:
    """The pruner of a sweep's ``pruner`` (`PRUNER_FACTORIES`); an unknown kind is a ValueError."""
    return _registered(PRUNER_FACTORIES, "pruner", kind)(warmup_epochs)


def _registered(registry: dict, what: str, kind: str):
    try:
        return registry[kind]
    except KeyError:
        raise ValueError(f"unknown {what} {kind!r}; one of {', '.join(registry)}") from None


class TrialSeededRandomSampler(optuna.samplers.BaseSampler):
    """Uniform random sampling in which trial ``n``'s value of a key depends only on ``(seed, n, key)``.

    A float range is uniform in x (or in log x), an int range uniform over its points, a choice uniform over
    its values.
    """

    def __init__(self, seed: int):
        self.seed = seed

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, distribution):
        rng = np.random.default_rng([self.seed, trial.number, zlib.crc32(param_name.encode())])
        if isinstance(distribution, CategoricalDistribution):
            return distribution.choices[int(rng.integers(len(distribution.choices)))]
        if isinstance(distribution, IntDistribution):
            n_points = (distribution.high - distribution.low) // distribution.step + 1
            return int(distribution.low + distribution.step * rng.integers(n_points))
        if isinstance(distribution, FloatDistribution):
            if distribution.log:
                return float(np.exp(rng.uniform(np.log(distribution.low), np.log(distribution.high))))
            return float(rng.uniform(distribution.low, distribution.high))
        raise TypeError(f"no sampling for {distribution!r}")
