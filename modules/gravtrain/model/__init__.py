"""The model compiler: a validated Config → a Keras functional GravNet / object-condensation model."""

from gravtrain.model.builder import INPUT_NAMES, TRACK_FLAG_FEATURE, build_model
from gravtrain.model.loading import ModelFileError, feature_names, load_model
from gravtrain.model.regularizers import regularizer_values
from gravtrain.model.summary import model_summary

__all__ = [
    "INPUT_NAMES", "ModelFileError", "TRACK_FLAG_FEATURE", "build_model", "feature_names", "load_model", "model_summary",
    "regularizer_values",
]
