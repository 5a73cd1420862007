"""Distance-weighted aggregation of neighbour features, shared by GravNet and message passing."""

from __future__ import annotations

import tensorflow as tf
from keras import ops

#: w_ij = exp(-DISTANCE_WEIGHT_SCALE * d_ij^2), the GravNet potential.
DISTANCE_WEIGHT_SCALE = 10.0


def weighted_neighbour_mean_max(features, nidx, dist_sq):
    """Mean and max over the real neighbours j of each hit i of w_ij * features_j, w_ij = exp(-10 d^2_ij).

    Columns where ``nidx == -1`` (padding) are excluded. A hit without any real column gets 0 for both.

        mean_i = (1/|N(i)|) sum_{j in N(i)} w_ij f_j        max_i = max_{j in N(i)} w_ij f_j   (elementwise)

    Shapes: features (V, P), nidx (V, K), dist_sq (V, K) -> mean (V, P), max (V, P).
    """
    is_real = nidx >= 0
    weights = ops.where(is_real, ops.exp(-DISTANCE_WEIGHT_SCALE * dist_sq), ops.zeros_like(dist_sq))
    neighbour_features = tf.gather(features, tf.maximum(nidx, 0))  # (V, K, P); padding reads hit 0, weight 0
    weighted = weights[..., None] * neighbour_features
    n_real = ops.sum(ops.cast(is_real, features.dtype), axis=1)[:, None]  # (V, 1)
    mean = ops.sum(weighted, axis=1) / ops.maximum(n_real, 1.0)
    lowest = ops.full_like(weighted, features.dtype.min)
    maximum = tf.reduce_max(ops.where(is_real[..., None], weighted, lowest), axis=1)  # ops.max rejects V = 0
    maximum = ops.where(n_real > 0, maximum, ops.zeros_like(maximum))
    return mean, maximum
