"""The GravNet layer: learned space, kNN graph per event, distance-weighted feature exchange."""

from __future__ import annotations

import keras
from keras import ops

from .aggregation import weighted_neighbour_mean_max
from .knn import KNN_BACKENDS, permute_graph, permute_rows, select_knn_spatially_ordered


@keras.saving.register_keras_serializable(package="gravtrain")
class IdentityWithNoise(keras.initializers.Initializer):
    """Kernel initialiser: identity on the first min(F, S) input columns, plus Gaussian noise.

    ``W[i, i] = 1`` for ``i < min(F, S)``, ``W[i, j] += N(0, stddev)`` everywhere. For a (F, S) kernel, the learned
    space starts as the first S input features.
    """

    def __init__(self, stddev: float = 0.01, seed=None):
        self.stddev = stddev
        self.seed = seed

    def __call__(self, shape, dtype=None):
        n_in, n_out = shape
        identity = ops.eye(n_in, n_out, dtype=dtype)
        return identity + keras.random.normal(shape, stddev=self.stddev, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gravtrain")
class GravNet(keras.layers.Layer):
    """GravNet layer (Qasim, Kieseler, Iiyama, Pierini, "Learning representations of irregular particle-detector
    geometry with distance-weighted graph networks", Eur. Phys. J. C 79 (2019) 608, arXiv:1902.07987).

    For hits x_i of one event (a hit never sees hits of another event)::

        s_i = W_s x_i                                           (learned space, no bias)
        f_i = act(W_f x_i + b_f)                                (features to propagate)
        N(i) = the K nearest other hits of i's event in s        (padding excluded)
        w_ij = exp(-10 |s_i - s_j|^2)
        mean_i = (1/|N(i)|) sum_{j in N(i)} w_ij f_j            (0 if N(i) is empty)
        max_i  = max_{j in N(i)} w_ij f_j, elementwise           (0 if N(i) is empty)
        out_i = relu(W_o [mean_i - f_i, max_i - f_i, x_i] + b_o)

    With the k-d tree backend the graph, distances and aggregation run on each event's hits in the tree's order
    (``select_knn_spatially_ordered``: neighbours close in memory), and the results are permuted back; the
    outputs are those of the formula above in the input order.

    Args:
        n_neighbours: K, neighbours per hit besides itself.
        n_dimensions: S, dimensions of the learned space s (``coordinate_projection``, W_s). W_s starts as the
            identity on the first S input columns plus small noise.
        n_filters: F_out, output features (``output_dense``, W_o, b_o).
        n_propagate: P (F_LR in the paper), propagated features f (``feature_projection``, W_f, b_f).
        feature_activation: name of the Keras activation ``act`` applied to f.
        knn: kNN backend, one of ``KNN_BACKENDS`` (``"auto"``, ``"brute"``, ``"kdtree"``).
        return_order: also return the order the graph was built in and its inverse, so that a layer reading the
            graph (``DistanceWeightedMessagePassing``) can run in it too.

    Call arguments:
        inputs: ``[x, row_splits]``; ``row_splits`` (E+1,) integer event boundaries.

    Returns:
        ``(out, coords, nidx, dist_sq)``: ``coords = s``; ``nidx`` and ``dist_sq`` as from ``select_knn``
        (K+1 columns, the hit itself first, -1 / 0 for padding). With ``return_order`` also ``order`` and
        ``inverse`` of ``select_knn_spatially_ordered`` (the identity where the hits were not reordered).

    Shapes:
        x (V, F), row_splits (E+1,) -> out (V, F_out), coords (V, S), nidx (V, K+1) int32, dist_sq (V, K+1),
        with V hits, F input features, K neighbours.

    Example:
        >>> x = keras.Input((8,)); row_splits = keras.Input((), dtype="int32")
        >>> out, coords, nidx, dist_sq = GravNet(16, 4, 32, 16)([x, row_splits])
    """

    def __init__(
        self,
        n_neighbours: int,
        n_dimensions: int,
        n_filters: int,
        n_propagate: int,
        feature_activation: str = "elu",
        knn: str = "auto",
        return_order: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if knn not in KNN_BACKENDS:
            raise ValueError(
                f"unknown kNN backend {knn!r}; valid names are: {', '.join(sorted(KNN_BACKENDS))}"
            )
        keras.activations.get(feature_activation)  # fail early on an unknown name
        self.n_neighbours = int(n_neighbours)
        self.n_dimensions = int(n_dimensions)
        self.n_filters = int(n_filters)
        self.n_propagate = int(n_propagate)
        self.feature_activation = feature_activation
        self.knn = knn
        self.return_order = bool(return_order)
        # Keras' jit_compile="auto" must not XLA-compile a model whose kNN runs in SciPy.
        self.supports_jit = knn != "kdtree"
        self.coordinate_projection = keras.layers.Dense(
            self.n_dimensions,
            use_bias=False,
            kernel_initializer=IdentityWithNoise(),
            dtype=self.dtype_policy,
            name="coordinate_projection",
        )
        self.feature_projection = keras.layers.Dense(
            self.n_propagate,
            activation=feature_activation,
            dtype=self.dtype_policy,
            name="feature_projection",
        )
        self.output_dense = keras.layers.Dense(
            self.n_filters, activation="relu", dtype=self.dtype_policy, name="output_dense"
        )

    def build(self, input_shape):
        x_shape = tuple(input_shape[0])
        n_features = x_shape[-1]
        self.coordinate_projection.build(x_shape)
        self.feature_projection.build(x_shape)
        self.output_dense.build(x_shape[:-1] + (2 * self.n_propagate + n_features,))

    def call(self, inputs):
        x, row_splits = inputs
        coords = self.coordinate_projection(x)
        # The graph and the aggregation over it run on the hits in k-d tree order (see
        # `select_knn_spatially_ordered`; neighbours close in memory); the results go back to the input order.
        order, inverse, nidx, dist_sq = select_knn_spatially_ordered(coords, row_splits, self.n_neighbours,
                                                                     backend=self.knn)
        features = self.feature_projection(x)
        # Column 0 is the hit itself: GravNet aggregates over the other hits only.
        mean, maximum = weighted_neighbour_mean_max(permute_rows(features, order, inverse), nidx, dist_sq,
                                                    first_column=1)
        mean, maximum = permute_rows(mean, inverse, order), permute_rows(maximum, inverse, order)
        out = self.output_dense(ops.concatenate([mean - features, maximum - features, x], axis=-1))
        # The graph in the input order: row i is ordered row inverse[i], its indices mapped back through order.
        outputs = (out, coords, permute_graph(nidx, inverse, order), permute_rows(dist_sq, inverse, order))
        return outputs + (order, inverse) if self.return_order else outputs

    def compute_output_shape(self, input_shape):
        n_hits = tuple(input_shape[0])[0]
        shapes = (
            (n_hits, self.n_filters),
            (n_hits, self.n_dimensions),
            (n_hits, self.n_neighbours + 1),
            (n_hits, self.n_neighbours + 1),
        )
        return shapes + ((n_hits,), (n_hits,)) if self.return_order else shapes

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([inputs[0].shape, inputs[1].shape])
        dtypes = (self.compute_dtype, self.compute_dtype, "int32", self.compute_dtype, "int32", "int32")
        return tuple(keras.KerasTensor(shape, dtype=dtype) for shape, dtype in zip(shapes, dtypes))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_neighbours": self.n_neighbours,
                "n_dimensions": self.n_dimensions,
                "n_filters": self.n_filters,
                "n_propagate": self.n_propagate,
                "feature_activation": self.feature_activation,
                "knn": self.knn,
                "return_order": self.return_order,
            }
        )
        return config
