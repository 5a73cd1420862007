"""The regularisers inside a built model, as named metrics."""

from __future__ import annotations

import keras

from gravtrain.layers import FillSpaceRegularizer, GravNetSpaceRegularizer

REGULARIZER_METRIC_PREFIX = "regularizer/"


def regularizer_values(model: keras.Model) -> dict:
    """``{"regularizer/<layer name>": value}`` for each GravNet-space and fill-space regulariser of ``model``.

    Each value is the layer's ``value`` variable: the unscaled L of its last call (read it after the forward
    pass, in the same ``tf.function``, to get this batch's value).
    """
    return {
        f"{REGULARIZER_METRIC_PREFIX}{layer.name}": layer.value
        for layer in model.layers
        if isinstance(layer, (GravNetSpaceRegularizer, FillSpaceRegularizer))
    }
