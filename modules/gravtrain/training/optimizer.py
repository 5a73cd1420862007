"""The optimizer of the ``Optimizer`` section, with the learning rate as a variable each stage assigns."""

from __future__ import annotations

import keras

from gravtrain.config.schema import Optimizer

#: Optimizer names of the schema -> Keras classes.
OPTIMIZERS = {"nadam": keras.optimizers.Nadam, "adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def make_optimizer(options: Optimizer, learning_rate: float) -> keras.optimizers.Optimizer:
    """``options.name`` with ``clipnorm`` (each gradient clipped to that norm) and, for Adam/Nadam, ``epsilon``."""
    kwargs = {"learning_rate": learning_rate, "clipnorm": options.clipnorm}
    if options.name in ("adam", "nadam"):
        kwargs["epsilon"] = options.epsilon
    return OPTIMIZERS[options.name](**kwargs)
