"""Layers of the noise-filter path: a fixed neighbour graph, a frozen model's score, and keeping the hits it
passes while recomputing the event boundaries."""

from __future__ import annotations

import keras
import tensorflow as tf

from .knn import KNN_BACKENDS, select_knn


@keras.saving.register_keras_serializable(package="gravtrain")
class NeighbourGraph(keras.layers.Layer):
    """The k nearest other hits of each hit in a fixed space (no learned projection), inside its event::

        N(i) = the K nearest hits of i's event in x, by squared Euclidean distance d^2_ij = |x_i - x_j|^2

    Args:
        n_neighbours: K, neighbours per hit besides itself.
        knn: kNN backend, one of ``KNN_BACKENDS``.

    Call arguments:
        inputs: ``[x, row_splits]``.

    Returns:
        ``(nidx, dist_sq)`` as from ``select_knn``: the hit itself in column 0, -1 / 0 for padding.

    Shapes:
        x (V, S), row_splits (E+1,) -> nidx (V, K+1) int32, dist_sq (V, K+1).
    """

    def __init__(self, n_neighbours: int, knn: str = "auto", **kwargs):
        super().__init__(**kwargs)
        if knn not in KNN_BACKENDS:
            raise ValueError(f"unknown kNN backend {knn!r}; valid names are: {', '.join(sorted(KNN_BACKENDS))}")
        self.n_neighbours = int(n_neighbours)
        self.knn = knn
        self.supports_jit = knn != "kdtree"

    def call(self, inputs):
        x, row_splits = inputs
        return select_knn(x, row_splits, self.n_neighbours, backend=self.knn)

    def compute_output_spec(self, inputs):
        shape = (inputs[0].shape[0], self.n_neighbours + 1)
        return keras.KerasTensor(shape, dtype="int32"), keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"n_neighbours": self.n_neighbours, "knn": self.knn})
        return config


@keras.saving.register_keras_serializable(package="gravtrain")
class FrozenModelOutput(keras.layers.Layer):
    """One output of a trained model, always in inference mode and never trained (a pre-model)::

        out = model(inputs, training=False)[output]

    Its weights stay non-trainable whatever ``trainable`` is set to (a stage's ``freeze`` patterns unfreeze
    every other layer), and batch-norm statistics inside never move.

    Args:
        model: a Keras model with dict outputs.
        output: the name of the output returned.
    """

    def __init__(self, model: keras.Model, output: str, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.output_name = output
        self.model.trainable = False

    @property
    def trainable(self):
        return False

    @trainable.setter
    def trainable(self, value):  # a pre-model is frozen for good
        pass

    def call(self, inputs):
        return self.model(inputs, training=False)[self.output_name]

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.model.output[self.output_name].shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"model": keras.saving.serialize_keras_object(self.model), "output": self.output_name})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="gravtrain")
class KeepHits(keras.layers.Layer):
    """Keep the hits a score passes, and every track; events keep their order and stay apart::

        keep_i   = s_i >= threshold  or  is_track_i
        index    = the rows i with keep_i, in order                         (K,)
        n'_e     = sum over the hits i of event e of keep_i
        row_splits' = [0, n'_0, n'_0 + n'_1, ...]                           (E+1,)

    Args:
        threshold: the score a hit needs to be kept.
        track_column: the column of the features that flags a track (> 0.5).

    Call arguments:
        inputs: ``[features, row_splits, score]``.

    Returns:
        ``(kept_features, kept_row_splits, index)``: ``index`` (int32) gives each kept row's row in the input.

    Shapes:
        features (V, F), row_splits (E+1,), score (V, 1) -> (K, F), (E+1,), (K,).
    """

    def __init__(self, threshold: float, track_column: int, **kwargs):
        super().__init__(**kwargs)
        self.threshold = float(threshold)
        self.track_column = int(track_column)

    def call(self, inputs):
        features, row_splits, score = inputs
        row_splits = tf.cast(row_splits, tf.int32)
        keep = tf.logical_or(score[:, 0] >= self.threshold, features[:, self.track_column] > 0.5)
        index = tf.cast(tf.reshape(tf.where(keep), [-1]), tf.int32)
        n_events = tf.shape(row_splits)[0] - 1
        event_of_row = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int32)
        kept_per_event = tf.math.unsorted_segment_sum(tf.cast(keep, tf.int32), event_of_row, n_events)
        kept_row_splits = tf.concat([tf.zeros([1], tf.int32), tf.cumsum(kept_per_event)], axis=0)
        return tf.gather(features, index), kept_row_splits, index

    def compute_output_spec(self, inputs):
        features, row_splits, _ = inputs
        return (keras.KerasTensor((None, features.shape[-1]), dtype=features.dtype),
                keras.KerasTensor(row_splits.shape, dtype="int32"),
                keras.KerasTensor((None,), dtype="int32"))

    def get_config(self):
        config = super().get_config()
        config.update({"threshold": self.threshold, "track_column": self.track_column})
        return config
