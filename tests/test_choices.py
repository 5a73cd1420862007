"""Every choice list of the schema equals the registry of the code that implements it.

The schema (config/) cannot import the rooms that implement its choices, so the two sides are pinned here: a
choice added on one side only (an optimizer in the schema with no Keras class behind it, a kNN backend the
schema does not offer) fails this test instead of failing a run after its data has loaded.
"""

from __future__ import annotations

import keras
import pytest

from gravtrain.config.fields import section_keys
from gravtrain.config.schema import Architecture, Data, DenseOptions, General, LossOptions, Optimizer
from gravtrain.data.sources import SOURCES
from gravtrain.layers.knn import KNN_BACKENDS
from gravtrain.losses import OC_IMPLEMENTATIONS, REPULSION_NORMALIZATIONS
from gravtrain.model.builder import KERNEL_REGULARIZERS, MODEL_FAMILIES, PRE_MODEL_STAGES
from gravtrain.model.optimizer import OPTIMIZERS


def choices(section, yaml_name: str) -> set[str]:
    [info] = [info for info in section_keys(section) if info.yaml_name == yaml_name]
    return set(info.spec.choices)


@pytest.mark.parametrize("section, key, registry", [
    (Architecture, "knn", KNN_BACKENDS),
    (Optimizer, "name", OPTIMIZERS),
    (DenseOptions, "kernel_regularizer", KERNEL_REGULARIZERS),
    (Data, "source", SOURCES),
    (LossOptions, "oc_implementation", OC_IMPLEMENTATIONS),
    (LossOptions, "repulsion_normalization", REPULSION_NORMALIZATIONS),
    (General, "model", MODEL_FAMILIES),
    (General, "pre-model-type", PRE_MODEL_STAGES),
], ids=lambda value: value if isinstance(value, str) else "")
def test_the_schema_offers_exactly_what_the_code_implements(section, key, registry):
    assert choices(section, key) == set(registry)


def test_every_activation_the_schema_offers_is_one_keras_knows():
    for name in choices(DenseOptions, "activation"):
        assert callable(keras.activations.get(name)), name
