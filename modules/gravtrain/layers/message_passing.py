"""Distance-weighted message passing over a given neighbour graph (e.g. GravNet's)."""

from __future__ import annotations

import keras
from keras import ops

from .aggregation import weighted_neighbour_mean_max
from .knn import permute_graph, permute_rows


@keras.saving.register_keras_serializable(package="gravtrain")
class DistanceWeightedMessagePassing(keras.layers.Layer):
    """Distance-weighted message passing (the "DWMP" of the object-condensation GravNet models).

    With h_0 = x and, for each transformation l = 1..L with width n_l::

        g_l = act(W_l h_{l-1} + b_l)
        w_ij = exp(-10 d^2_ij)                        (self has d = 0, so weight 1)
        m_l,i = [mean_j w_ij g_l,j - g_l,i,  max_j w_ij g_l,j - g_l,i]
        h_l = m_l
        out = concat(m_1, ..., m_L, x)

    where j runs over the non-padding columns of ``nidx[i]`` (the hit itself included).

    Given a permutation of the rows in which neighbours are close in memory (GravNet's k-d tree ``order``, and
    its ``inverse``), the graph is read in that order, the L aggregations run on the rows in it, and the messages
    are permuted back: the same outputs (sums per row in the same column order), with gathers that stay in cache.

    Args:
        n_feature_transformation: [n_1, ..., n_L], widths of the Dense layers W_l (list attribute ``transforms``).
        activation: name of the Keras activation ``act``.

    Call arguments:
        inputs: ``[x, nidx, dist_sq]`` or ``[x, nidx, dist_sq, order, inverse]``, e.g. GravNet's graph (and its
            order, ``GravNet(return_order=True)``): ``nidx`` with the hit itself in column 0 and -1 for padding,
            ``dist_sq`` the squared distances d^2_ij, both in the input order.

    Shapes:
        x (V, F), nidx (V, K+1), dist_sq (V, K+1), order (V,), inverse (V,) -> out (V, 2 (n_1 + ... + n_L) + F),
        with V hits, F input features, K neighbours.
    """

    def __init__(self, n_feature_transformation, activation: str = "elu", **kwargs):
        super().__init__(**kwargs)
        keras.activations.get(activation)  # fail early on an unknown name
        self.n_feature_transformation = [int(width) for width in n_feature_transformation]
        self.activation = activation
        self.transforms = [
            keras.layers.Dense(width, activation=activation, dtype=self.dtype_policy, name=f"transform_{i}")
            for i, width in enumerate(self.n_feature_transformation)
        ]

    def build(self, input_shape):
        x_shape = tuple(input_shape[0])
        width = x_shape[-1]
        for transform, n_out in zip(self.transforms, self.n_feature_transformation):
            transform.build(x_shape[:-1] + (width,))
            width = 2 * n_out

    def call(self, inputs):
        x, nidx, dist_sq = inputs[:3]
        ordered = len(inputs) == 5
        if ordered:  # the graph in that order: row p is row order[p], its indices positions in the order
            order, inverse = inputs[3], inputs[4]
            nidx, dist_sq = permute_graph(nidx, order, inverse), permute_rows(dist_sq, order, inverse)
            hidden = permute_rows(x, order, inverse)
        else:
            hidden = x
        messages = []
        for transform in self.transforms:
            transformed = transform(hidden)
            mean, maximum = weighted_neighbour_mean_max(transformed, nidx, dist_sq)
            hidden = ops.concatenate([mean - transformed, maximum - transformed], axis=-1)
            messages.append(hidden)
        if ordered:
            messages = [permute_rows(message, inverse, order) for message in messages]
        return ops.concatenate(messages + [x], axis=-1)

    def compute_output_shape(self, input_shape):
        x_shape = tuple(input_shape[0])
        n_features = x_shape[-1]
        width = None if n_features is None else 2 * sum(self.n_feature_transformation) + n_features
        return x_shape[:-1] + (width,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"n_feature_transformation": list(self.n_feature_transformation), "activation": self.activation}
        )
        return config
