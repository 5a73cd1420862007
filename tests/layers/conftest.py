"""Shared inputs and plain-NumPy re-implementations (loops per event and per hit) of the layers' formulas.

The references are exposed through the ``reference`` fixture so test files need no imports between them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.numerics import numeric_gradient


@pytest.fixture(autouse=True)
def seeded_initialisers():
    """Every layer test draws its Keras weights from the same seed, whichever worker runs it after whichever
    test: a gradient check against finite differences is then the same check at every run, not one that an
    unlucky draw (a near-tie in a max aggregation) can fail."""
    import keras

    keras.utils.set_random_seed(20261207)

# Event sizes of the shared ragged batch, for K = 4: an ordinary event, an empty event (repeated row_splits
# value), a single-hit event, an event with fewer hits than K, another ordinary event and a trailing empty one.
EVENT_SIZES = (7, 0, 1, 3, 12, 0)
K = 4


def row_splits_from_sizes(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)


def knn_reference(coords, row_splits, k):
    """(nidx, dist_sq), (V, k+1): self first, then the k nearest other hits of the event, -1 / 0 padded."""
    coords = np.asarray(coords, dtype=np.float64)
    n_hits = coords.shape[0]
    nidx = np.full((n_hits, k + 1), -1, dtype=np.int64)
    dist_sq = np.zeros((n_hits, k + 1))
    for begin, end in zip(row_splits[:-1], row_splits[1:]):
        for i in range(begin, end):
            others = [j for j in range(begin, end) if j != i]
            dists = [float(np.sum((coords[j] - coords[i]) ** 2)) for j in others]
            order = sorted(range(len(others)), key=lambda n: (dists[n], others[n]))[:k]
            nidx[i, 0] = i
            for column, n in enumerate(order, start=1):
                nidx[i, column] = others[n]
                dist_sq[i, column] = dists[n]
    return nidx, dist_sq


def elu(z):
    return np.where(z > 0, z, np.expm1(np.minimum(z, 0)))


def weighted_mean_max(features, neighbours, dists, i):
    """Mean and max over the listed neighbours of hit i of exp(-10 d^2) * f_j; zeros when there are none."""
    if not neighbours:
        return np.zeros(features.shape[1]), np.zeros(features.shape[1])
    weighted = np.stack([np.exp(-10.0 * d) * features[j] for j, d in zip(neighbours, dists)])
    return weighted.mean(axis=0), weighted.max(axis=0)


def gravnet_reference(x, row_splits, k, w_s, w_f, b_f, w_o, b_o):
    """GravNet forward: (out, coords, nidx, dist_sq), one hit at a time."""
    coords = x @ w_s
    nidx, dist_sq = knn_reference(coords, row_splits, k)
    features = elu(x @ w_f + b_f)
    out = np.zeros((x.shape[0], w_o.shape[1]))
    for i in range(x.shape[0]):
        neighbours = [int(j) for j in nidx[i, 1:] if j >= 0]
        dists = [float(np.sum((coords[j] - coords[i]) ** 2)) for j in neighbours]
        mean, maximum = weighted_mean_max(features, neighbours, dists, i)
        joined = np.concatenate([mean - features[i], maximum - features[i], x[i]])
        out[i] = np.maximum(joined @ w_o + b_o, 0.0)
    return out, coords, nidx, dist_sq


def message_passing_reference(x, nidx, dist_sq, kernels, biases):
    """DistanceWeightedMessagePassing forward with elu, one hit at a time; self included, padding excluded."""
    hidden, messages = x, []
    for kernel, bias in zip(kernels, biases):
        transformed = elu(hidden @ kernel + bias)
        message = np.zeros((x.shape[0], 2 * kernel.shape[1]))
        for i in range(x.shape[0]):
            columns = [c for c in range(nidx.shape[1]) if nidx[i, c] >= 0]
            mean, maximum = weighted_mean_max(
                transformed, [int(nidx[i, c]) for c in columns], [dist_sq[i, c] for c in columns], i
            )
            message[i] = np.concatenate([mean - transformed[i], maximum - transformed[i]])
        messages.append(message)
        hidden = message
    return np.concatenate(messages + [x], axis=1)


def batch_norm_reference(x, condition, state, options, training, learn=False):
    """ScaledGooeyBatchNorm2: returns (out, new_state, loss); state = dict(mean, den, viscosity, gamma, bias)."""
    eps = options["epsilon"]
    mask = np.ones(x.shape[0]) if condition is None else (np.ravel(condition) > 0.5).astype(float)
    state = dict(state)
    loss = None
    if training:
        total = mask.sum() + eps
        x_m = np.array([sum(mask[i] * x[i, f] for i in range(len(x))) / total for f in range(x.shape[1])])
        if options["no_gaus"]:
            x_std = np.array(
                [sum(mask[i] * abs(x[i, f] - x_m[f]) for i in range(len(x))) / total for f in range(x.shape[1])]
            )
        else:
            x_std = np.sqrt(
                np.array(
                    [sum(mask[i] * (x[i, f] - x_m[f]) ** 2 for i in range(len(x))) / total for f in range(x.shape[1])]
                )
                + eps
            )
        if learn:
            loss = np.mean((state["mean"] - x_m) ** 2 + (state["den"] - x_std) ** 2)
        else:
            v = state["viscosity"]
            state["mean"] = state["mean"] + (1 - v) * (x_m - state["mean"])
            state["den"] = state["den"] + (1 - v) * (x_std - state["den"])
            state["viscosity"] = v + (options["max_viscosity"] - v) * options["fluidity_decay"]
    out = x.copy()
    for i in range(x.shape[0]):
        if mask[i] > 0.5:
            out[i] = (x[i] - state["mean"]) / (np.abs(state["den"]) + eps) * state["gamma"] + state["bias"]
    return out, state, loss


def assert_same_neighbour_sets(coords, nidx_a, nidx_b, rtol=1e-5):
    """Rows must hold the same neighbours, except where differing neighbours are at (float-)equal distances."""
    coords = np.asarray(coords, dtype=np.float64)
    nidx_a, nidx_b = np.asarray(nidx_a), np.asarray(nidx_b)
    assert nidx_a.shape == nidx_b.shape
    np.testing.assert_array_equal(nidx_a < 0, nidx_b < 0)
    sorted_a, sorted_b = np.sort(nidx_a, axis=1), np.sort(nidx_b, axis=1)
    differing = np.nonzero(np.any(sorted_a != sorted_b, axis=1))[0]
    for row in differing:
        dist_a = np.sort(np.sum((coords[nidx_a[row][nidx_a[row] >= 0]] - coords[row]) ** 2, axis=1))
        dist_b = np.sort(np.sum((coords[nidx_b[row][nidx_b[row] >= 0]] - coords[row]) ** 2, axis=1))
        np.testing.assert_allclose(dist_a, dist_b, rtol=rtol, atol=1e-12, err_msg=f"row {row}")
    assert len(differing) <= max(2, nidx_a.shape[0] // 1000), f"{len(differing)} rows differ"


@pytest.fixture
def reference():
    return SimpleNamespace(
        knn=knn_reference,
        gravnet=gravnet_reference,
        message_passing=message_passing_reference,
        batch_norm=batch_norm_reference,
        numeric_gradient=numeric_gradient,
        assert_same_neighbour_sets=assert_same_neighbour_sets,
        row_splits_from_sizes=row_splits_from_sizes,
    )


@pytest.fixture
def ragged_batch():
    """(x (V, 5) float64, row_splits, K) with V = 23 hits in the events of EVENT_SIZES."""
    rng = np.random.default_rng(1234)
    row_splits = row_splits_from_sizes(EVENT_SIZES)
    x = rng.normal(size=(int(row_splits[-1]), 5))
    return x, row_splits, K
