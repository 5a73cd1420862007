"""The output heads of object condensation, and the hit/track input embedding."""

from __future__ import annotations

import keras
from keras import ops

#: Names of the condensation heads, in output order; the loss and the inference read these names.
HEAD_NAMES = (
    "beta", "ccoords", "dist", "energy_corr", "energy_low_quantile", "energy_high_quantile",
    "pos", "time", "time_unc", "pid",
)
#: Particle classes of the ``pid`` head (the same order as the truth one-hot ``t_pid``).
N_PID_CLASSES = 6


@keras.saving.register_keras_serializable(package="gravtrain")
class CondensationHeads(keras.layers.Layer):
    """Per-hit object-condensation outputs from the last hidden features h (one Dense layer per head).

    With z_head = h · W_head + b_head:

        beta                  = sigmoid(z)                       (V, 1)   condensation confidence β
        ccoords               = z                                (V, C)   cluster-space coordinates x
        dist                  = 1            if fix_distance_scale
                                2·sigmoid(z) otherwise           (V, 1)   distance scale d
        energy_corr           = 1 + elu(z)                       (V, 1)   energy correction; W = b = 0 gives 1
        energy_low_quantile   = z                                (V, 1)   16% quantile of the energy residual
        energy_high_quantile  = z                                (V, 1)   84% quantile of the energy residual
        pos                   = z                                (V, 2)   impact position (x, y)
        time                  = 1 + elu(z)                       (V, 1)
        time_unc              = 1 + elu(z)                       (V, 1)   time uncertainty σ
        pid                   = softmax(z)                       (V, 6)   class probabilities

    ``energy_corr`` starts at exactly 1 (zero kernel and bias), so training starts from the raw deposited
    energy. ``dist`` has no weights when fixed.

    Args:
        n_cluster_space_coordinates: C, dimensions of the cluster space.
        fix_distance_scale: if true, ``dist`` is the constant 1.

    Shapes:
        input (V, F) -> dict of the heads above, by name (``HEAD_NAMES``).
    """

    def __init__(self, n_cluster_space_coordinates: int, fix_distance_scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.n_cluster_space_coordinates = int(n_cluster_space_coordinates)
        self.fix_distance_scale = bool(fix_distance_scale)
        widths = {"beta": 1, "ccoords": self.n_cluster_space_coordinates, "energy_corr": 1,
                  "energy_low_quantile": 1, "energy_high_quantile": 1, "pos": 2, "time": 1, "time_unc": 1,
                  "pid": N_PID_CLASSES}
        if not self.fix_distance_scale:
            widths["dist"] = 1
        zero_start = {"energy_corr"}
        self.dense = {
            name: keras.layers.Dense(
                width, name=f"{name}_dense",
                kernel_initializer="zeros" if name in zero_start else "glorot_uniform",
            )
            for name, width in widths.items()
        }

    def build(self, input_shape):
        for layer in self.dense.values():
            layer.build(input_shape)

    def call(self, h):
        z = {name: layer(h) for name, layer in self.dense.items()}
        beta = ops.sigmoid(z["beta"])
        dist = ops.ones_like(beta) if self.fix_distance_scale else 2.0 * ops.sigmoid(z["dist"])
        return {
            "beta": beta,
            "ccoords": z["ccoords"],
            "dist": dist,
            "energy_corr": 1.0 + ops.elu(z["energy_corr"]),
            "energy_low_quantile": z["energy_low_quantile"],
            "energy_high_quantile": z["energy_high_quantile"],
            "pos": z["pos"],
            "time": 1.0 + ops.elu(z["time"]),
            "time_unc": 1.0 + ops.elu(z["time_unc"]),
            "pid": ops.softmax(z["pid"], axis=-1),
        }

    def compute_output_shape(self, input_shape):
        rows = input_shape[0]
        widths = {"beta": 1, "ccoords": self.n_cluster_space_coordinates, "dist": 1, "energy_corr": 1,
                  "energy_low_quantile": 1, "energy_high_quantile": 1, "pos": 2, "time": 1, "time_unc": 1,
                  "pid": N_PID_CLASSES}
        return {name: (rows, widths[name]) for name in HEAD_NAMES}

    def get_config(self):
        config = super().get_config()
        config.update(n_cluster_space_coordinates=self.n_cluster_space_coordinates,
                      fix_distance_scale=self.fix_distance_scale)
        return config


@keras.saving.register_keras_serializable(package="gravtrain")
class HitTrackEmbedding(keras.layers.Layer):
    """Separate dense embeddings for calorimeter hits and tracks, chosen per row by the ``is_track`` flag.

        out_i = act(x_i · W_track + b_track)   if is_track_i > 0.5
                act(x_i · W_hit   + b_hit)     otherwise

    Tracks and hits measure different things (a momentum versus a deposited energy), so they get their own
    weights; both land in one common feature space. Called on ``[x, is_track]``.

    Args:
        units: width of the common embedding.
        activation: activation of both embeddings.

    Shapes:
        x (V, F), is_track (V, 1) -> (V, units).
    """

    def __init__(self, units: int, activation: str = "elu", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = activation
        self.hit_embedding = keras.layers.Dense(self.units, activation=activation, name="hit_embedding")
        self.track_embedding = keras.layers.Dense(self.units, activation=activation, name="track_embedding")

    def build(self, input_shape):
        x_shape, _ = input_shape
        self.hit_embedding.build(x_shape)
        self.track_embedding.build(x_shape)

    def call(self, inputs):
        x, is_track = inputs
        return ops.where(is_track > 0.5, self.track_embedding(x), self.hit_embedding(x))

    def compute_output_shape(self, input_shape):
        x_shape, _ = input_shape
        return (x_shape[0], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=self.activation)
        return config
