"""The config schema: every section and key gravtrain reads, with type, default, range and a one-line doc.

This is the single source of truth. Validation (`validate.py`), the reference printed by ``gravtrain schema``,
explicit mode, and the flattened MLflow params are all derived from these classes; nowhere else lists keys.
Key names follow the field's existing config-trainer files so users can bring their configs unchanged.
"""

from __future__ import annotations

from typing import Optional

from gravtrain.config.fields import FILE_STEM, REQUIRED, FrozenDict, key, partial_section, section, to_plain
from gravtrain.config.validate import validate_section

ACTIVATIONS = ("elu", "relu", "selu", "gelu", "silu", "swish", "tanh", "sigmoid", "softplus", "leaky_relu", "linear")


# --------------------------------------------------------------------------------------------- General
@section("Run identity, seeding and the optional pre-model.")
class General:
    name: str = key(
        FILE_STEM, doc="Name of the model; the MLflow run name unless Tracking.run_name is set. Default: the config "
                       "file's name without its extension (required in a config not read from a file).",
    )
    experiment: str = key("gravtrain", doc="MLflow experiment the run is filed under (Tracking.experiment wins).")
    seed: int = key(42, min=0, doc="Seed of Keras, TF, NumPy and the data shuffling; logged with the run.")
    description_string: str = key(
        "", yaml_name="description-string", allow_empty=True,
        doc="Free text about the run; shown as the MLflow run description.",
    )
    model: str = key(
        "object-condensation", choices=("object-condensation", "noise-filter"),
        doc="What the config trains: 'object-condensation' (GravNet, showers) or 'noise-filter' (a small hit "
            "classifier scoring each hit as signal, for use as another config's pre-model).",
    )
    pre_model_type: str = key(
        "none", yaml_name="pre-model-type", choices=("none", "noise-filter", "pre-pooling"),
        doc="A stage in front of the network: 'noise-filter' (a trained noise filter, frozen, drops the hits it "
            "scores below pre-model-threshold) or 'pre-pooling' (learned pooling by pre-pooling-factor, trained "
            "with the network).",
    )
    pre_model_path: Optional[str] = key(
        None, yaml_name="pre-model-path", relative_to_config=True,
        doc="The pre-model: a .keras file (relative to this config file) or an MLflow model URI "
            "(runs:/<run id>/model). Required for noise-filter; for pre-pooling optional initial weights.",
    )
    pre_model_threshold: float = key(
        0.5, yaml_name="pre-model-threshold", min=0.0, max=1.0, max_exclusive=True,
        doc="pre-model-type noise-filter: the hits the filter scores below this are dropped (tracks never are).",
    )
    pre_pooling_factor: float = key(
        4.0, yaml_name="pre-pooling-factor", min=1.0,
        doc="pre-pooling: each event's calorimeter hits are reduced to ceil(hits / factor) representatives "
            "(tracks are kept); neighbourhoods are the ceil(factor) nearest hits.",
    )
    devices: int = key(
        1, min=1,
        doc="Data-parallel training: 1 trains on TensorFlow's default device; N > 1 mirrors the model on the first N "
            "GPUs (tf.distribute.MirroredStrategy). Each step then takes N batches of Training.N.batch_size hits, one "
            "per device, and applies the mean of their gradients; an epoch's last batches short of N are left out.",
    )
    use_fill_space: bool = key(False, doc="Add the fill-space regulariser on cluster space (field default: off).")
    use_layer_normalization: bool = key(False, doc="Add layer normalisation after each block (default: off).")

    def cross_check(self) -> list[tuple[str, str]]:
        if self.model == "noise-filter" and self.pre_model_type != "none":
            return [("pre-model-type", f"is '{self.pre_model_type}' but model is 'noise-filter': a noise filter "
                     "takes every hit and has no pre-model; set pre-model-type: none.")]
        if self.pre_model_type == "noise-filter" and not self.pre_model_path:
            return [("pre-model-path", "required when pre-model-type is 'noise-filter': give the filter's .keras "
                     "file (relative to this config) or its MLflow model URI, runs:/<run id>/model.")]
        if self.pre_model_type == "none" and self.pre_model_path:
            return [("pre-model-path", "is set but pre-model-type is 'none', so it would be ignored: remove it "
                     "or set pre-model-type.")]
        return []


# ------------------------------------------------------------------------------------------------ Data
@section("The embedded toy calorimeter simulator (used when Data.source is 'toy').")
class ToyData:
    n_train_events: int = key(1000, min=1, doc="Events simulated for training.")
    n_val_events: int = key(100, min=1, doc="Events simulated for validation (a separate random stream).")
    n_particles: tuple[int, int] = key((2, 10), min=1, doc="[min, max] particles per event, uniform.")
    energy_range: tuple[float, float] = key(
        (1.0, 200.0), min=0.0, min_exclusive=True, doc="[min, max] particle energy in GeV, log-uniform."
    )
    noise_hits: int = key(200, min=0, doc="Mean number of noise hits per event (Poisson).")
    tracks: bool = key(True, doc="Add one track row per charged particle.")
    true_muon_momentum: bool = key(
        False, doc="A muon's truth energy: false (the field's convention) is what it deposited in the calorimeter's "
        "recorded hits, so muons rarely pass an energy threshold; true is its true energy (momentum).")
    seed: int = key(1, min=0, doc="Simulator seed, separate from General.seed so data stays fixed across runs.")

    def cross_check(self) -> list[tuple[str, str]]:
        problems = []
        if self.n_particles[0] > self.n_particles[1]:
            problems.append(("n_particles", f"min {self.n_particles[0]} is above max {self.n_particles[1]}."))
        if self.energy_range[0] >= self.energy_range[1]:
            problems.append(("energy_range", f"min {self.energy_range[0]:g} must be below max {self.energy_range[1]:g}."))
        return problems


@section("Your own event shards (used when Data.source is 'files').")
class FileData:
    train: tuple[str, ...] = key((), allow_empty=True, doc="Glob patterns of training shards.")
    val: tuple[str, ...] = key((), allow_empty=True, doc="Glob patterns of validation shards.")


@section("Where events come from.")
class Data:
    source: str = key("toy", choices=("toy", "files"), doc="'toy': the embedded simulator; 'files': your shards.")
    toy: ToyData = key(ToyData(), doc="Settings of the toy calorimeter.")
    files: FileData = key(FileData(), doc="Shard glob patterns.")

    def cross_check(self) -> list[tuple[str, str]]:
        if self.source != "files":
            return []
        return [
            ("source", f"is 'files' but files.{part} has no patterns: add glob patterns of your {part} shards.")
            for part in ("train", "val")
            if not getattr(self.files, part)
        ]


# ---------------------------------------------------------------------------------------- Architecture
@section("One GravNet iteration.")
class GravNetBlock:
    n: int = key(min=1, doc="Neighbours K of each hit in the learned space.")
    n_filters: int = key(64, min=1, doc="Width of the GravNet output dense layer.")
    n_propagate: int = key(32, min=1, doc="Features P propagated along the graph.")


@section("One dense or message-passing block.")
class Block:
    n: int = key(min=1, doc="Units of the block.")


@section("The network: GravNet iterations, message passing and dense blocks.")
class Architecture:
    gravnet: tuple[GravNetBlock, ...] = key(doc="GravNet iterations, in order; each item {n: neighbours}.")
    message_passing: tuple[Block, ...] = key(
        allow_empty=True, doc="Widths of the distance-weighted message passing after each GravNet ([] for none)."
    )
    dense_pre_gravnet: tuple[Block, ...] = key(allow_empty=True, doc="Dense blocks before each GravNet.")
    dense_post_message_passing: tuple[Block, ...] = key(
        allow_empty=True, doc="Dense blocks after each message passing."
    )
    dense_final: tuple[Block, ...] = key(allow_empty=True, doc="Dense blocks after concatenating all iterations.")
    n_cluster_space_coordinates: int = key(3, min=2, doc="Dimensions of the cluster space (field default: 3).")
    n_gravnet_space_coordinates: int = key(3, min=1, doc="Dimensions S of each GravNet space (field default: 3).")
    fix_distance_scale: bool = key(True, doc="Fix the dist head to 1 instead of learning it (field default: true).")
    knn: str = key("auto", choices=("auto", "brute", "kdtree"), doc="kNN backend; 'auto' picks by device and size.")
    n_embedding: int = key(32, min=1, doc="Width of the separate hit and track input embeddings.")
    gravnet_space_regularizer: float = key(
        0.01, min=0.0, doc="Strength of the regulariser keeping GravNet-space distances like physical ones (0: off)."
    )
    fill_space_regularizer: float = key(
        0.01, min=0.0, doc="Strength of the cluster-space fill-space regulariser, used when General.use_fill_space."
    )


@section("Options of every dense block.")
class DenseOptions:
    activation: str = key("elu", choices=ACTIVATIONS, doc="Activation of dense blocks (field default: elu).")
    kernel_regularizer: str = key("none", choices=("none", "l1", "l2"), doc="Kernel regulariser of dense blocks.")
    kernel_regularizer_rate: float = key(1e-9, min=0.0, doc="Its strength, used when kernel_regularizer is l1/l2.")
    dropout: float = key(0.0, min=0.0, max=1.0, max_exclusive=True, doc="Dropout rate after dense blocks.")


@section("Scaled gooey batch norm (ScaledGooeyBatchNorm2); defaults are the field's.")
class BatchNormOptions:
    viscosity: float = key(0.01, min=0.0, max=1.0, doc="Initial viscosity v: 0 follows each batch, 1 never moves.")
    fluidity_decay: float = key(1e-4, min=0.0, max=1.0, doc="Per-step rate at which v approaches max_viscosity.")
    max_viscosity: float = key(0.99999, min=0.0, max=1.0, doc="Upper bound of the viscosity.")
    no_gaus: bool = key(True, doc="Scale by the mean absolute deviation instead of the standard deviation.")
    epsilon: float = key(1e-2, min=0.0, min_exclusive=True, doc="Stabiliser ε of the masked mean and the scale.")
    learn: bool = key(False, doc="Learn mean and scale by a loss instead of moving averages.")

    def cross_check(self) -> list[tuple[str, str]]:
        if self.viscosity > self.max_viscosity:
            return [("viscosity", f"{self.viscosity:g} is above max_viscosity {self.max_viscosity:g}.")]
        return []


@section("Object condensation loss and payload weights; defaults follow the field's config-trainer files.")
class LossOptions:
    oc_implementation: str = key("hinge", choices=("basic", "hinge"), doc="Repulsive potential: hinge or exp(-s/2).")
    repulsion_normalization: str = key(
        "object", choices=("object", "event"),
        doc="Divide each object's repulsion by the hits outside it ('object') or, as the paper, by the event's "
            "hits ('event': a neighbour's hits are pushed as hard as the object's own are pulled).",
    )
    q_min: float = key(1.0, min=0.0, min_exclusive=True, doc="Minimum charge q_min (field default: 1.0).")
    beta_loss_scale: float = key(1.0, min=0.0, doc="Weight of the condensation (beta) term.")
    noise_scale: float = key(1.0, min=0.0, doc="Weight of the noise term.")
    use_average_cc_pos: float = key(
        0.9999, min=0.0, max=1.0, doc="Mix u of the beta-weighted mean into the object centre (field: 0.9999)."
    )
    energy_loss_weight: float = key(0.01, min=0.0, doc="Weight of the energy and energy-quantile terms.")
    position_loss_weight: float = key(0.0, min=0.0, doc="Weight of the position term.")
    timing_loss_weight: float = key(0.0, min=0.0, doc="Weight of the timing term.")
    classification_loss_weight: float = key(0.01, min=0.0, doc="Weight of the classification term.")
    too_much_beta_scale: float = key(0.0, min=0.0, doc="Weight of the penalty on objects with several high-beta hits.")
    beta_push: float = key(0.0, min=0.0, doc="Weight of the push raising each object's largest beta to a floor.")


@section("The optimizer (a Keras optimizer; each key below reaches it by its own name).")
class Optimizer:
    name: str = key("nadam", choices=("nadam", "adam", "adamw", "sgd"), doc="Optimizer (field default: nadam).")
    clipnorm: float = key(1.0, min=0.0, min_exclusive=True, doc="Clip each gradient to this norm.")
    epsilon: float = key(1e-7, min=0.0, min_exclusive=True,
                         doc="Epsilon of nadam, adam and adamw (Keras default); sgd has none and ignores it.")
    weight_decay: Optional[float] = key(
        None, min=0.0, max=1.0,
        doc="Decoupled weight decay λ of every optimizer: after each step w <- w - lr*λ*w. null: the optimizer's "
            "Keras default (adamw: 0.004; nadam, adam, sgd: no decay).",
    )


BatchNormOverrides = partial_section(BatchNormOptions, "Per-stage overrides of BatchNormOptions keys.")
LossOverrides = partial_section(LossOptions, "Per-stage overrides of LossOptions keys.")


@section("End a stage when the validation loss stops improving.")
class EarlyStopping:
    patience: int = key(min=1, doc="Epochs without an improvement of at least min_delta before the stage ends.")
    min_delta: float = key(0.0, min=0.0, doc="Smallest decrease of the validation loss that counts as one.")


@section("End a stage once the exponentially smoothed training loss falls below a value.")
class StopBelow:
    value: float = key(doc="The stage ends when the smoothed training loss s is below this.")
    smoothing: float = key(0.99, min=0.0, max=1.0, max_exclusive=True,
                           doc="Smoothing constant a of s <- a*s + (1-a)*loss, updated every batch.")


@section("One training stage: a block of epochs with its own learning rate and batch size.")
class Stage:
    name: Optional[str] = key(None, doc="Stage name; default stage_N (1-based position).")
    epochs: int = key(min=1, doc="Epochs of this stage, added to those of the stages before.")
    batch_size: int = key(min=1, doc="Batch budget in hits: whole events are packed until the next would exceed it.")
    learning_rate: float = key(min=0.0, min_exclusive=True, doc="Learning rate of this stage.")
    freeze: tuple[str, ...] = key((), allow_empty=True, doc="Glob patterns of layer names frozen in this stage.")
    recompute: bool = key(
        False, doc="Recompute each GravNet iteration in the backward pass instead of keeping its tensors: the same "
                   "training to float rounding in about 40 % of the memory per hit, for 16-32 % more time per "
                   "step (configs/hgcal.yaml, benchmarks/RESULTS.md). For batches that do not fit otherwise.",
    )
    BatchNormOptions: BatchNormOverrides = key(BatchNormOverrides(), doc="BatchNormOptions keys changed in this stage.")
    LossOptions: LossOverrides = key(LossOverrides(), doc="LossOptions keys changed in this stage.")
    early_stopping: Optional[EarlyStopping] = key(None, doc="End the stage early on a validation plateau (off).")
    stop_below: Optional[StopBelow] = key(None, doc="End the stage early at a training-loss target (off).")


# ------------------------------------------------------------------------------------ the rest
@section("How often training records metrics and refreshes plots.")
class Plotting:
    record_frequency: int = key(10, min=1, doc="Batches between metric records.")
    plot_frequency: int = key(200, min=1, doc="Batches between plot updates.")
    log_frequency: int = key(
        0, min=0, doc="When the output is not a terminal (a batch job's log file), where no progress bar is drawn: "
                      "batches between log lines of the running losses and hits/s; 0: only the line per epoch.",
    )
    physics_frequency: int = key(
        1, min=0, doc="Epochs between physics metrics (physics/*) on the validation events during training; "
                      "0: only after the last stage. Each costs a pass over the validation events plus clustering.",
    )


@section("Condensation clustering and truth matching used to score a model.")
class Evaluation:
    beta_threshold: float = key(0.1, min=0.0, max=1.0, min_exclusive=True, max_exclusive=True,
                                doc="Hits above this beta may become condensation points (field: 0.1).")
    distance_threshold: float = key(0.5, min=0.0, min_exclusive=True,
                                    doc="Radius, in units of the point's dist, that a shower takes hits within.")
    iou_threshold: float = key(0.5, min=0.0, max=1.0, min_exclusive=True,
                               doc="Minimum energy-weighted IoU for a truth object and a shower to match.")
    energy_threshold: float = key(
        10.0, min=0.0, doc="GeV. The headline efficiency counts truth objects above it, the fake rate showers "
                           "above it, response and resolution matches above it; the *_all metrics use no cut.",
    )
    noise_filter_threshold: float = key(
        0.5, min=0.0, max=1.0, max_exclusive=True,
        doc="General.model noise-filter: the score at which its signal efficiency, noise rejection and kept "
            "shower energy are reported (the pre-model-threshold you mean to use it with).",
    )


@section("MLflow tracking.")
class Tracking:
    tracking_uri: str = key("mlruns", doc="Store: a directory (relative to where you run), sqlite:/// or http(s)://."
                                          " The MLFLOW_TRACKING_URI environment variable wins.")
    experiment: Optional[str] = key(None, doc="Experiment name; default General.experiment.")
    run_name: Optional[str] = key(None, doc="Run name; default General.name.")
    tags: dict[str, str] = key({}, allow_empty=True, doc="Extra tags set on the run.")
    checkpoint_dir: str = key("checkpoints", doc="Directory (relative to where you run) of the checkpoints; one "
                                                 "subdirectory per run, named by its run ID.")


@section("A whole gravtrain config file.")
class Config:
    General: General = key(doc=General.__section_doc__)
    Data: Data = key(Data(), doc=Data.__section_doc__)
    Architecture: Architecture = key(doc=Architecture.__section_doc__)
    DenseOptions: DenseOptions = key(DenseOptions(), doc=DenseOptions.__section_doc__)
    BatchNormOptions: BatchNormOptions = key(BatchNormOptions(), doc=BatchNormOptions.__section_doc__)
    LossOptions: LossOptions = key(LossOptions(), doc=LossOptions.__section_doc__)
    Optimizer: Optimizer = key(Optimizer(), doc=Optimizer.__section_doc__)
    Training: tuple[Stage, ...] = key(doc="The training stages, in order (a non-empty list).")
    Plotting: Plotting = key(Plotting(), doc=Plotting.__section_doc__)
    Evaluation: Evaluation = key(Evaluation(), doc=Evaluation.__section_doc__)
    Tracking: Tracking = key(Tracking(), doc=Tracking.__section_doc__)

    def stage_name(self, index: int) -> str:
        """The name of stage ``index`` (0-based): its ``name`` or ``stage_<index+1>``."""
        return self.Training[index].name or f"stage_{index + 1}"

    def to_dict(self) -> dict:
        """The config as plain YAML-ready data (dicts, lists, scalars), keys as written in YAML."""
        return to_plain(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Validate plain data (e.g. from `to_dict`) into a Config; raises ConfigError."""
        return validate_section(cls, data).config


__all__ = ["Config", "FrozenDict", "REQUIRED", "Stage", "ACTIVATIONS"]
