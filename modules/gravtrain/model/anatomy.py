"""What the rest of gravtrain may ask of a built model, so that no code outside model/ reads or rebuilds a layer
name: the model's kind and the learned spaces of its GravNet iterations.

- kind: the ``General.model`` family it was built as: ``"object-condensation"`` (the condensation heads,
  ``ccoords`` among them) or ``"noise-filter"`` (a ``signal_score`` per hit).
- GravNet spaces: the coordinates s of each iteration's GravNet layer (its second output), in iteration order,
  keyed ``gravnet_<i>``. A model behind pre-pooling has none to offer per hit (its GravNet rows are pooled
  representatives, not the event's hits), nor has a noise filter.
"""

from __future__ import annotations

import keras

from gravtrain.layers import GravNet
from gravtrain.model.builder import PRE_POOLING_LAYER, iteration_of
from gravtrain.model.pre_models import SIGNAL_SCORE


def model_kind(model: keras.Model) -> str:
    """The ``General.model`` family of a built ``model`` (a key of ``builder.MODEL_FAMILIES``): ``"noise-filter"`` for a
    model with a ``signal_score`` output and no condensation heads, else ``"object-condensation"``."""
    outputs = model.output
    return "noise-filter" if SIGNAL_SCORE in outputs and "ccoords" not in outputs else "object-condensation"


def gravnet_space_outputs(model: keras.Model) -> dict[str, object]:
    """The symbolic GravNet-space outputs of a built ``model`` per hit, ``{"gravnet_<i>": (V, S) tensor}`` in
    iteration order; empty for a noise filter and for a model behind pre-pooling (module docstring)."""
    if model_kind(model) != "object-condensation" or any(layer.name == PRE_POOLING_LAYER for layer in model.layers):
        return {}
    layers = [layer for layer in model.layers if isinstance(layer, GravNet) and iteration_of(layer.name) is not None]
    return {f"gravnet_{iteration_of(layer.name)}": layer.output[1]
            for layer in sorted(layers, key=lambda layer: iteration_of(layer.name))}
