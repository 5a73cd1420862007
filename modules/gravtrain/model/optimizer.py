"""The optimizer of the ``Optimizer`` section, with the learning rate as a variable each stage assigns.

``OPTIMIZERS`` is the registry of the names ``Optimizer.name`` offers (``tests/test_choices.py`` pins the two
together): adding an optimizer is one entry here, its name in the schema's choices, and a test. The other keys
of the section reach the Keras class by their own names, each one that its constructor takes:

- ``clipnorm``: every optimizer; each gradient g is clipped to g · min(1, clipnorm / ‖g‖).
- ``epsilon``: the optimizers that have one (nadam, adam, adamw); sgd has none and ignores it.
- ``weight_decay`` λ: every optimizer, decoupled from the gradient (Keras 3 applies it so for all of them):
  after each step w ← w − lr · λ · w. When it is null the optimizer keeps its own Keras default: no decay for
  nadam, adam and sgd, λ = 0.004 for adamw.
"""

from __future__ import annotations

import inspect

import keras

from gravtrain.config.schema import Optimizer
from gravtrain.model.stage_options import section_values

#: ``Optimizer.name`` -> the Keras class.
OPTIMIZERS = {
    "nadam": keras.optimizers.Nadam,
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
}


def optimizer_arguments(options: Optimizer) -> dict:
    """The keys of ``options`` that the constructor of ``OPTIMIZERS[options.name]`` takes, by name (null ones
    left out, so the optimizer keeps its own default); ``name`` chooses the class and is no argument."""
    parameters = inspect.signature(OPTIMIZERS[options.name]).parameters
    return {name: value for name, value in section_values(options).items()
            if name != "name" and name in parameters and value is not None}


def make_optimizer(options: Optimizer, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer ``options.name`` at ``learning_rate`` with the section's other keys (module docstring)."""
    return OPTIMIZERS[options.name](learning_rate=learning_rate, **optimizer_arguments(options))
