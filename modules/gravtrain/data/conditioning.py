"""Feature conditioning: per-feature standardisation computed from the training set and stored with the model.

:class:`FeatureStats` holds each feature's mean and standard deviation over all hits of the training set,
accumulated by streaming over groups of whole events (Chan et al.'s pairwise update, in float64), never
from one batch. It serialises to a plain dict of lists (JSON-ready) so it can travel with the model and
inference uses the same numbers. A feature with (near) zero variance in the training set, such as
``is_track`` when tracks are off, gets scale 1, so standardising it only subtracts the mean.

    standardised = (features - mean) / scale,   scale = std if std > MIN_STD else 1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from gravtrain.data.event_store import EventStore
from gravtrain.data.names import FEATURE_NAMES

MIN_STD = 1e-6


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and standard deviation (population) over ``n_hits`` training hits.

    Attributes:
        names: feature names, in column order.
        mean: (F,) float64, in the features' units.
        std: (F,) float64, in the features' units (0 for a constant feature).
        n_hits: hits the statistics were computed over.
    """

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    n_hits: int

    @classmethod
    def from_feature_chunks(cls, chunks: Iterable[np.ndarray], names: tuple[str, ...] = FEATURE_NAMES) -> "FeatureStats":
        """Stream over (V_i, F) arrays, merging each chunk's count, mean and sum of squared deviations."""
        count, mean, squared_deviations = 0, np.zeros(len(names)), np.zeros(len(names))
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float64)
            if chunk.ndim != 2 or chunk.shape[1] != len(names):
                raise ValueError(f"feature chunk must have shape (n, {len(names)}), got {chunk.shape}")
            n = len(chunk)
            if n == 0:
                continue
            chunk_mean = chunk.mean(axis=0)
            chunk_squared_deviations = ((chunk - chunk_mean) ** 2).sum(axis=0)
            delta = chunk_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            squared_deviations = squared_deviations + chunk_squared_deviations + delta**2 * (count * n / total)
            count = total
        if count == 0:
            raise ValueError("cannot compute feature statistics from zero hits")
        return cls(names=tuple(names), mean=mean, std=np.sqrt(squared_deviations / count), n_hits=count)

    @classmethod
    def neutral(cls, names: tuple[str, ...] = FEATURE_NAMES) -> "FeatureStats":
        """Mean 0 and std 1 for every feature (standardising changes nothing); for building a model without data."""
        return cls(names=tuple(names), mean=np.zeros(len(names)), std=np.ones(len(names)), n_hits=0)

    @classmethod
    def from_store(cls, store: EventStore, events_per_chunk: int = 256) -> "FeatureStats":
        """Statistics over every hit of a training store, streamed in groups of whole events."""
        return cls.from_feature_chunks(store.iter_feature_chunks(events_per_chunk))

    @property
    def scale(self) -> np.ndarray:
        """(F,) divisor: the std, or 1 where the feature is (nearly) constant."""
        return np.where(self.std > MIN_STD, self.std, 1.0)

    def standardise(self, features):
        """(features - mean) / scale, float32; works on NumPy arrays and on TensorFlow / Keras tensors."""
        return (features - self.mean.astype(np.float32)) / self.scale.astype(np.float32)

    def to_dict(self) -> dict:
        """Plain data (lists, ints, strings), JSON-serialisable, for storing with the model."""
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "n_hits": int(self.n_hits)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "FeatureStats":
        """Inverse of :meth:`to_dict`; checks that names, means and stds agree in length."""
        names = tuple(str(n) for n in data["names"])
        mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        if not len(names) == len(mean) == len(std):
            raise ValueError(f"feature stats have {len(names)} names, {len(mean)} means and {len(std)} stds")
        if (std < 0).any() or not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("feature stats must be finite with std >= 0")
        return cls(names=names, mean=mean, std=std, n_hits=int(data["n_hits"]))
