"""The model compiler: a validated Config → a Keras functional GravNet / object-condensation model."""

from gravtrain.model.builder import INPUT_NAMES, build_model
from gravtrain.model.summary import model_summary

__all__ = ["INPUT_NAMES", "build_model", "model_summary"]
