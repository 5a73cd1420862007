"""Feature conditioning: per-feature standardisation computed from the training set and stored with the model.

:class:`FeatureStats` holds each feature's mean and standard deviation over all hits of the training set,
accumulated by streaming over groups of whole events (Chan et al.'s pairwise update, in float64), never
from one batch. It serialises to a plain dict of lists (JSON-ready) so it can travel with the model and
inference uses the same numbers. A feature with (near) zero variance in the training set, such as
``is_track`` when tracks are off, gets scale 1, so standardising it only subtracts the mean.

Energy-like features are first compressed with an inverse hyperbolic sine, then standardised::

    T_j(x) = asinh(x / s_j)  if s_j > 0  else  x             (s_j = ASINH_FEATURES[name_j], else 0)
    standardised_j = (T_j(x_j) - mean_j) / scale_j,   scale_j = std_j if std_j > MIN_STD else 1

with mean and std those of T(x) over the training hits. Why: a hit's energy spans four decades (a cell near
threshold to a 100 GeV track), so a linear standardisation squeezes the calorimeter cells into a sliver: on the
toy calorimeter 98 % of them lie within 0.35 σ of each other while tracks sit at 9 to 50 σ, and the network
sees almost no cell energy. asinh is linear below s and logarithmic above it, and defined for every real value
(calibrated energies may be negative).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from gravtrain.data.event_store import EventStore
from gravtrain.data.names import FEATURE_NAMES

MIN_STD = 1e-6
#: Features compressed with T(x) = asinh(x / s) before standardisation: name -> reference scale s, in the
#: feature's unit (GeV for energy: 10 MeV, about the energy of a toy-calorimeter cell near threshold).
ASINH_FEATURES: dict[str, float] = {"energy": 0.01}


def default_asinh_scale(names: Iterable[str]) -> np.ndarray:
    """(F,) reference scales s_j of ``ASINH_FEATURES`` for the columns ``names``; 0 for the other columns."""
    return np.array([ASINH_FEATURES.get(name, 0.0) for name in names], dtype=np.float64)


def asinh_transform(features, asinh_scale: np.ndarray) -> np.ndarray:
    """T(x) of the module docstring, column by column, in float64: (V, F) -> (V, F)."""
    features = np.asarray(features, dtype=np.float64)
    scale = np.asarray(asinh_scale, dtype=np.float64)
    compressed = np.arcsinh(features / np.where(scale > 0, scale, 1.0))
    return np.where(scale > 0, compressed, features)


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and standard deviation (population) over ``n_hits`` training hits.

    Attributes:
        names: feature names, in column order.
        mean: (F,) float64, of T(x) (the features' units where no transform applies).
        std: (F,) float64, of T(x) (0 for a constant feature).
        n_hits: hits the statistics were computed over.
        asinh_scale: (F,) float64, the reference scales s_j of T (0: the column is not transformed); None
            means no column is.
    """

    names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    n_hits: int
    asinh_scale: np.ndarray | None = None

    def __post_init__(self):
        scale = np.zeros(len(self.names)) if self.asinh_scale is None else np.asarray(self.asinh_scale, np.float64)
        if scale.shape != (len(self.names),) or not np.isfinite(scale).all() or (scale < 0).any():
            raise ValueError(f"asinh_scale must hold {len(self.names)} finite values >= 0, got {scale.tolist()}")
        object.__setattr__(self, "asinh_scale", scale)

    @classmethod
    def from_feature_chunks(cls, chunks: Iterable[np.ndarray], names: tuple[str, ...] = FEATURE_NAMES,
                            asinh_scale: np.ndarray | None = None) -> "FeatureStats":
        """Stream over (V_i, F) arrays of raw features, merging each chunk's count, mean and sum of squared
        deviations of T(x) (no transform when ``asinh_scale`` is None)."""
        count, mean, squared_deviations = 0, np.zeros(len(names)), np.zeros(len(names))
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float64)
            if chunk.ndim != 2 or chunk.shape[1] != len(names):
                raise ValueError(f"feature chunk must have shape (n, {len(names)}), got {chunk.shape}")
            if asinh_scale is not None:
                chunk = asinh_transform(chunk, asinh_scale)
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
        return cls(names=tuple(names), mean=mean, std=np.sqrt(squared_deviations / count), n_hits=count,
                   asinh_scale=asinh_scale)

    @classmethod
    def neutral(cls, names: tuple[str, ...] = FEATURE_NAMES) -> "FeatureStats":
        """Mean 0 and std 1 for every feature (standardising changes nothing); for building a model without data."""
        return cls(names=tuple(names), mean=np.zeros(len(names)), std=np.ones(len(names)), n_hits=0)

    @classmethod
    def from_store(cls, store: EventStore, events_per_chunk: int = 256) -> "FeatureStats":
        """Statistics over every hit of a training store, streamed in groups of whole events, with the
        transforms of ``ASINH_FEATURES``."""
        return cls.from_feature_chunks(store.iter_feature_chunks(events_per_chunk),
                                       asinh_scale=default_asinh_scale(FEATURE_NAMES))

    @property
    def scale(self) -> np.ndarray:
        """(F,) divisor: the std, or 1 where the feature is (nearly) constant."""
        return np.where(self.std > MIN_STD, self.std, 1.0)

    def standardise(self, features) -> np.ndarray:
        """(T(features) - mean) / scale of NumPy features, float32 (the model does the same in its
        ``input_conditioning`` layer)."""
        return ((asinh_transform(features, self.asinh_scale) - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        """Plain data (lists, ints, strings), JSON-serialisable, for storing with the model."""
        return {"names": list(self.names), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "n_hits": int(self.n_hits), "asinh_scale": self.asinh_scale.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> "FeatureStats":
        """Inverse of :meth:`to_dict`; checks that names, means and stds agree in length."""
        names = tuple(str(n) for n in data["names"])
        mean, std = np.asarray(data["mean"], dtype=np.float64), np.asarray(data["std"], dtype=np.float64)
        if not len(names) == len(mean) == len(std):
            raise ValueError(f"feature stats have {len(names)} names, {len(mean)} means and {len(std)} stds")
        if (std < 0).any() or not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("feature stats must be finite with std >= 0")
        return cls(names=names, mean=mean, std=std, n_hits=int(data["n_hits"]), asinh_scale=data.get("asinh_scale"))
