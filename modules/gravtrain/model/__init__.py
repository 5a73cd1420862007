"""The one place where config values become objects: a validated Config → the Keras functional GravNet /
object-condensation model, the loss, the optimizer and the batch-norm and loss options of each stage."""

from gravtrain.losses import ObjectCondensationLoss
from gravtrain.losses.total import LOSS_TERM_NAMES
from gravtrain.model.builder import INPUT_NAMES, TRACK_FLAG_FEATURE, build_model
from gravtrain.model.loading import ModelFileError, feature_names, load_model
from gravtrain.model.optimizer import OPTIMIZERS, make_optimizer
from gravtrain.model.regularizers import regularizer_values
from gravtrain.model.stage_options import (
    apply_batch_norm_options,
    batch_norm_layers,
    batch_norm_options,
    build_loss,
    check_stage_options,
    loss_options,
)
from gravtrain.model.summary import model_summary

__all__ = [
    "INPUT_NAMES", "LOSS_TERM_NAMES", "ModelFileError", "OPTIMIZERS", "ObjectCondensationLoss", "TRACK_FLAG_FEATURE",
    "apply_batch_norm_options", "batch_norm_layers", "batch_norm_options", "build_loss", "build_model",
    "check_stage_options", "feature_names", "load_model", "loss_options", "make_optimizer", "model_summary",
    "regularizer_values",
]
