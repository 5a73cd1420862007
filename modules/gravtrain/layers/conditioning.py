"""Input conditioning layers: per-feature standardisation stored in the model, and column selection by index."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="gravtrain")
class FeatureStandardisation(keras.layers.Layer):
    """Standardises each input column with fixed statistics that travel inside the saved model.

        T_j(x) = asinh(x / s_j)  if s_j > 0  else  x
        out_ij = (T_j(x_ij) - mean_j) / scale_j

    (the conditioning of ``gravtrain.data.conditioning``: energy-like columns are compressed by T first).

    The statistics come from the training set (``gravtrain.data.FeatureStats``) and are part of the layer's
    config, so a loaded model standardises exactly as it did in training, and ``names`` tells which data
    columns it expects, in order.

    Args:
        names: feature names, one per column.
        mean: (F,) column means.
        scale: (F,) column divisors, all > 0.
        asinh_scale: (F,) reference scales s_j >= 0 of T; None (or 0) leaves a column linear.

    Shapes:
        x (V, F) -> (V, F).
    """

    def __init__(self, names, mean, scale, asinh_scale=None, **kwargs):
        super().__init__(**kwargs)
        self.names = [str(name) for name in names]
        self.mean_values = [float(value) for value in mean]
        self.scale_values = [float(value) for value in scale]
        self.asinh_scale_values = [0.0] * len(self.names) if asinh_scale is None else \
            [float(value) for value in asinh_scale]
        if not len(self.names) == len(self.mean_values) == len(self.scale_values) == len(self.asinh_scale_values):
            raise ValueError(f"{len(self.names)} names, {len(self.mean_values)} means, {len(self.scale_values)} "
                             f"scales and {len(self.asinh_scale_values)} asinh scales: they must agree")
        if not all(value > 0 for value in self.scale_values):
            raise ValueError("every scale must be > 0")
        if not all(value >= 0 for value in self.asinh_scale_values):
            raise ValueError("every asinh scale must be >= 0")

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != len(self.names):
            raise ValueError(f"input has {input_shape[-1]} columns, the statistics describe {len(self.names)}")

    def call(self, x):
        mean = ops.convert_to_tensor(np.asarray(self.mean_values), dtype=x.dtype)
        scale = ops.convert_to_tensor(np.asarray(self.scale_values), dtype=x.dtype)
        asinh_scale = np.asarray(self.asinh_scale_values)
        if (asinh_scale > 0).any():
            compressed = ops.arcsinh(x / ops.convert_to_tensor(np.where(asinh_scale > 0, asinh_scale, 1.0), x.dtype))
            x = ops.where(ops.convert_to_tensor(asinh_scale > 0), compressed, x)
        return (x - mean) / scale

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(names=self.names, mean=self.mean_values, scale=self.scale_values,
                      asinh_scale=self.asinh_scale_values)
        return config


@keras.saving.register_keras_serializable(package="gravtrain")
class FeatureColumns(keras.layers.Layer):
    """Selects columns by index: ``out[:, j] = x[:, columns[j]]``.

    Args:
        columns: column indices, in output order.

    Shapes:
        x (V, F) -> (V, len(columns)).
    """

    def __init__(self, columns, **kwargs):
        super().__init__(**kwargs)
        self.columns = [int(column) for column in columns]
        if not self.columns:
            raise ValueError("select at least one column")

    def call(self, x):
        return ops.take(x, self.columns, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.columns))

    def get_config(self):
        config = super().get_config()
        config["columns"] = self.columns
        return config
