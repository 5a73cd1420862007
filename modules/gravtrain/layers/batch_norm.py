"""ScaledGooeyBatchNorm2: batch normalisation with a slowly stiffening ("gooey") moving average."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="gravtrain")
class ScaledGooeyBatchNorm2(keras.layers.Layer):
    """Batch normalisation whose moving statistics follow the batches less and less (viscosity v grows to v_max).

    Rows with condition c_i > 0.5 (all rows without a condition) are normalised; the others pass through
    unchanged. With the row mask c_i = 1[condition_i > 0.5] and the masked mean over the batch::

        m(z) = sum_i c_i z_i / (sum_i c_i + eps)

    In training with ``learn=False``::

        x_m = m(x)
        x_std = m(|x - x_m|)                      if no_gaus
        x_std = sqrt(m((x - x_m)^2) + eps)        otherwise
        mean <- mean + (1 - v)(x_m - mean)
        den  <- den + (1 - v)(x_std - den)
        v    <- v + (v_max - v) * fluidity_decay

    With ``learn=True`` there is no moving update: ``mean`` and ``den`` are trainable and, in training, the layer
    adds the loss ``mean_features((mean - x_m)^2 + (den - x_std)^2)`` (x_m and x_std under stop-gradient, so this
    loss moves the statistics, not the network). In training and inference, with the statistics as updated::

        out = (x - stop_gradient(mean)) / (|stop_gradient(den)| + eps) * gamma + bias

    A layer with ``trainable = False`` behaves as in inference (no update, no loss).

    Args:
        viscosity: initial v, the inertia of the moving statistics (state attribute ``viscosity``).
        fluidity_decay: rate at which v approaches v_max per training step.
        max_viscosity: v_max.
        no_gaus: use the mean absolute deviation (True) or the standard deviation (False) as x_std.
        epsilon: eps, in the masked mean, the Gaussian std and the denominator.
        learn: learn ``mean`` and ``den`` by gradient descent instead of the moving update.

    The five options other than ``learn`` live in non-trainable variables: ``set_options`` (whose keyword
    arguments are exactly these five) changes them between training stages without rebuilding the layer or
    retracing compiled functions. ``learn`` decides which weights are trainable, so it is fixed at construction.

    State: ``mean`` (F,) init 0, ``den`` (F,) init 1, ``viscosity`` () init ``viscosity``, trainable ``gamma`` (F,)
    init 1 and ``bias`` (F,) init 0.

    Call arguments:
        inputs: ``x`` or ``[x, condition]``; ``condition`` (V,) or (V, 1).
        training: Python bool; statistics are measured and updated only in training.

    Shapes:
        x (V, F) [, condition (V,) or (V, 1)] -> out (V, F), with V hits and F features.
    """

    def __init__(
        self,
        viscosity: float = 0.01,
        fluidity_decay: float = 1e-4,
        max_viscosity: float = 0.99999,
        no_gaus: bool = True,
        epsilon: float = 1e-2,
        learn: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # The options held in variables (changed in place by ``set_options``): every argument but ``learn``.
        self.options = {
            "viscosity": float(viscosity),
            "fluidity_decay": float(fluidity_decay),
            "max_viscosity": float(max_viscosity),
            "no_gaus": bool(no_gaus),
            "epsilon": float(epsilon),
        }
        self.learn = bool(learn)
        self.mean = self.den = self.viscosity = self.gamma = self.bias = None
        self._option_variables = {}

    def build(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        n_features = (x_shape[-1],)

        def scalar(name, value):
            # From a float64 array, so a float64 layer holds the value exactly (keras' Constant rounds to float32).
            def initializer(shape, dtype=None):
                return ops.convert_to_tensor(np.full(shape, float(value)), dtype=dtype)

            return self.add_weight(shape=(), initializer=initializer, trainable=False, name=name, aggregation="mean")

        # aggregation "mean": a model mirrored on several devices averages their updates into every copy.
        self.mean = self.add_weight(shape=n_features, initializer="zeros", trainable=self.learn, name="mean",
                                    aggregation="mean")
        self.den = self.add_weight(shape=n_features, initializer="ones", trainable=self.learn, name="den",
                                   aggregation="mean")
        self.viscosity = scalar("viscosity", self.options["viscosity"])
        self.gamma = self.add_weight(shape=n_features, initializer="ones", trainable=True, name="gamma")
        self.bias = self.add_weight(shape=n_features, initializer="zeros", trainable=True, name="bias")
        for name, value in self.options.items():
            if name != "viscosity":  # the viscosity is the state v, created above
                self._option_variables[name] = scalar(name, value)

    def set_options(
        self,
        *,
        viscosity: float | None = None,
        fluidity_decay: float | None = None,
        max_viscosity: float | None = None,
        no_gaus: bool | None = None,
        epsilon: float | None = None,
    ):
        """Change the given options in place (None: unchanged); they mean what the constructor's arguments mean.

        Setting ``viscosity`` resets the state v. Compiled functions see the new values without retracing.
        """
        # The keyword arguments, by name: this signature is the one list of the options a stage may change.
        changes = {name: value for name, value in locals().items() if name != "self" and value is not None}
        for name, value in changes.items():
            value = bool(value) if name == "no_gaus" else float(value)
            self.options[name] = value
            if self.built:
                variable = self.viscosity if name == "viscosity" else self._option_variables[name]
                variable.assign(float(value))

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            x, condition = inputs
            if len(condition.shape) == 1:
                condition = condition[:, None]
            is_normalised = ops.cast(condition, x.dtype) > 0.5
        else:
            x, is_normalised = inputs, None
        training = bool(training) and self.trainable
        epsilon = ops.cast(self._option_variables["epsilon"], x.dtype)

        if training:
            x_m, x_std = self._batch_statistics(x, is_normalised, epsilon)
            if self.learn:
                x_m, x_std = ops.stop_gradient(x_m), ops.stop_gradient(x_std)
                self.add_loss(
                    ops.mean(
                        ops.square(ops.cast(self.mean, x.dtype) - x_m)
                        + ops.square(ops.cast(self.den, x.dtype) - x_std)
                    )
                )
            else:
                self._update_moving_statistics(x_m, x_std)

        mean = ops.stop_gradient(ops.cast(self.mean, x.dtype))
        den = ops.stop_gradient(ops.cast(self.den, x.dtype))
        out = (x - mean) / (ops.abs(den) + epsilon) * ops.cast(self.gamma, x.dtype) + ops.cast(self.bias, x.dtype)
        if is_normalised is not None:
            out = ops.where(is_normalised, out, x)
        return out

    def _batch_statistics(self, x, is_normalised, epsilon):
        """Masked batch mean x_m (F,) and spread x_std (F,)."""
        if is_normalised is None:
            weights = ops.ones_like(x[:, :1])
        else:
            weights = ops.cast(is_normalised, x.dtype)
        total = ops.sum(weights) + epsilon

        def masked_mean(z):
            return ops.sum(weights * z, axis=0) / total

        x_m = masked_mean(x)
        deviation = x - x_m
        absolute = masked_mean(ops.abs(deviation))
        gaussian = ops.sqrt(masked_mean(ops.square(deviation)) + epsilon)
        no_gaus = self._option_variables["no_gaus"] > 0.5
        return x_m, ops.where(no_gaus, absolute, gaussian)

    def _update_moving_statistics(self, x_m, x_std):
        v = self.viscosity
        variable_dtype = self.mean.dtype
        fluidity = 1.0 - ops.cast(v, variable_dtype)
        self.mean.assign(self.mean + fluidity * (ops.cast(x_m, variable_dtype) - self.mean))
        self.den.assign(self.den + fluidity * (ops.cast(x_std, variable_dtype) - self.den))
        max_viscosity = self._option_variables["max_viscosity"]
        self.viscosity.assign(v + (max_viscosity - v) * self._option_variables["fluidity_decay"])

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape[0], (list, tuple)):
            return tuple(input_shape[0])
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(self.options)
        config["learn"] = self.learn
        return config
