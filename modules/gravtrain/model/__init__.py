"""The one place where config values become objects: a validated Config → the Keras functional GravNet /
object-condensation model (or a noise filter), its pre-model, the loss, the optimizer and the batch-norm and loss
options of each stage, and the devices they live on (``General.devices``)."""

from gravtrain.losses import NOISE_FILTER_TERM_NAMES, NoiseFilterLoss, ObjectCondensationLoss
from gravtrain.losses.total import LOSS_TERM_NAMES
from gravtrain.model.builder import (
    HIT_INDEX, HIT_ROW_SPLITS, INPUT_NAMES, TRACK_FLAG_FEATURE, build_model, iteration_of, pre_model_of,
    recomputing_forward,
)
from gravtrain.model.anatomy import gravnet_space_outputs, model_kind
from gravtrain.model.freezing import apply_freeze, check_freeze_patterns
from gravtrain.model.devices import creation_scope, data_parallel_strategy, replica_devices
from gravtrain.model.loading import ModelFileError, feature_names, load_model
from gravtrain.model.pre_models import SIGNAL_SCORE, PreModel, PreModelFetch, load_pre_model, weights_sha256
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
from gravtrain.model.training_parts import TrainingParts, build_training_parts

__all__ = [
    "HIT_INDEX", "HIT_ROW_SPLITS", "NOISE_FILTER_TERM_NAMES", "NoiseFilterLoss", "PreModel", "PreModelFetch", "SIGNAL_SCORE", "load_pre_model", "pre_model_of", "weights_sha256",
    "INPUT_NAMES", "LOSS_TERM_NAMES", "ModelFileError", "OPTIMIZERS", "ObjectCondensationLoss", "TRACK_FLAG_FEATURE",
    "gravnet_space_outputs", "model_kind", "apply_freeze", "check_freeze_patterns",
    "apply_batch_norm_options", "batch_norm_layers", "batch_norm_options", "build_loss", "build_model",
    "check_stage_options", "creation_scope", "data_parallel_strategy", "feature_names", "iteration_of",
    "load_model", "loss_options", "make_optimizer", "model_summary",
    "recomputing_forward", "regularizer_values", "replica_devices", "TrainingParts", "build_training_parts",
]
