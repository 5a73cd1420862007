"""The model compiler: a validated Config (Architecture, DenseOptions, BatchNormOptions) → a Keras functional model.

The network, for ``features`` (V, F) and ``row_splits`` (E+1,) of a batch, follows the field's config trainer::

    z      = standardise(asinh-compress(features))                   input_conditioning
    c      = z[:, (x, y, z)][:, :C]  ++  Dense(C-3)(z) if C > 3      cluster_space_seed, cluster_space_seed_projection
    h      = BN(embed_hit_or_track(z, is_track))                     hit_track_embedding, batch_norm_embedding
    for each GravNet iteration i (Architecture.gravnet[i]):
        h  = BN(dense blocks(h))                                     dense_pre_gravnet_i_j, batch_norm_pre_gravnet_i
        g, s, nidx, d² = GravNet([c ++ h, row_splits])               gravnet_i   (its space starts as c)
        g  = BN(regularise(g; d², nidx, positions))                  gravnet_space_regularizer_i, batch_norm_gravnet_i
        g  = BN(message passing(g; nidx, d²))                        message_passing_i, batch_norm_message_passing_i
        h  = BN(dense blocks(g))                                     dense_post_message_passing_i_j,
                                                                     batch_norm_post_message_passing_i
        keep h as o_i
    f      = BN(dense blocks(c ++ o_0 ++ ... ++ o_{n-1}))            concatenate_iterations, dense_final_j,
                                                                     batch_norm_final
    heads  = CondensationHeads(f)                                    condensation_heads
    ccoords= fill-space regularised if General.use_fill_space        fill_space_regularizer

A "dense block" is Dense(n, DenseOptions.activation, DenseOptions.kernel_regularizer), then Dropout when
DenseOptions.dropout > 0, then LayerNormalization when General.use_layer_normalization (which also adds one after
GravNet and after message passing). Layer names are deterministic; indices are those of the config lists
(0-based), so ``dense_pre_gravnet_0_1`` is block ``Architecture.dense_pre_gravnet.1`` of GravNet iteration 0, and
``freeze`` patterns such as ``gravnet_0*`` or ``dense_final_*`` select what they say. Dropout and layer-norm
layers are named after their block (``dense_final_0_dropout``, ``gravnet_0_layer_norm``).
The message passing and its batch norm are left out when ``Architecture.message_passing`` is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import keras
import numpy as np

from gravtrain.config.errors import ConfigError, ConfigIssue
from gravtrain.config.schema import Config
from gravtrain.layers import (
    CondensationHeads,
    DistanceWeightedMessagePassing,
    FeatureColumns,
    FeatureStandardisation,
    FillSpaceRegularizer,
    GravNet,
    GravNetSpaceRegularizer,
    HitTrackEmbedding,
    ScaledGooeyBatchNorm2,
)
from gravtrain.model.stage_options import batch_norm_arguments, check_stage_options

#: The features the builder needs by name: positions for the cluster-space seed and the GravNet regulariser,
#: ``is_track`` to choose the embedding.
POSITION_FEATURES = ("x", "y", "z")
TRACK_FLAG_FEATURE = "is_track"
#: Names of the model inputs, as the batches of ``gravtrain.data`` carry them.
INPUT_NAMES = ("features", "row_splits")


#: ``DenseOptions.kernel_regularizer`` names -> the regulariser of a dense block, given the rate.
KERNEL_REGULARIZERS = {
    "none": lambda rate: None,
    "l1": keras.regularizers.L1,
    "l2": keras.regularizers.L2,
}


class FeatureStatsLike(Protocol):
    """What the builder reads of ``gravtrain.data.FeatureStats``: column names, means, scales and the
    asinh reference scales of the compressed columns."""

    names: Sequence[str]
    mean: np.ndarray
    asinh_scale: np.ndarray

    @property
    def scale(self) -> np.ndarray: ...


def build_model(config: Config, feature_stats: FeatureStatsLike) -> keras.Model:
    """Compile ``config`` into a functional ``keras.Model`` with freshly initialised weights (module docstring).

    Args:
        config: a validated :class:`~gravtrain.config.schema.Config`.
        feature_stats: the training set's per-feature statistics (``gravtrain.data.FeatureStats``); they are
            stored inside the model by its ``input_conditioning`` layer.

    Returns:
        A model called as ``model({"features": (V, F) float32, "row_splits": (E+1,) int32})`` that returns a
        dict of the condensation heads (``gravtrain.layers.HEAD_NAMES``).

    Raises:
        ConfigError: a setting the builder cannot honour (e.g. a pre-model, not built in this version), or a
            batch-norm or loss option, of a section or a stage, that the layers or the loss do not take.
        ValueError: ``feature_stats`` lacks a feature the network needs.
    """
    check_stage_options(config)
    if config.General.pre_model_type != "none":
        raise ConfigError([ConfigIssue(
            path="General.pre-model-type",
            message=f"'{config.General.pre_model_type}' pre-models are not supported by this version of gravtrain's "
                    "model builder; set pre-model-type: none.",
        )])
    names = list(feature_stats.names)
    missing = [name for name in (*POSITION_FEATURES, TRACK_FLAG_FEATURE) if name not in names]
    if missing:
        raise ValueError(f"the feature statistics lack {', '.join(missing)}; the model needs them by name "
                         f"(features present: {', '.join(names)})")
    return _ModelCompiler(config, feature_stats).compile()


class _ModelCompiler:
    """Holds the options while the functional graph is wired; one instance per model."""

    def __init__(self, config: Config, feature_stats: FeatureStatsLike):
        self.config = config
        self.architecture = config.Architecture
        self.dense_options = config.DenseOptions
        self.layer_norm = config.General.use_layer_normalization
        self.names = list(feature_stats.names)
        self.mean = np.asarray(feature_stats.mean, dtype=np.float64)
        self.scale = np.asarray(feature_stats.scale, dtype=np.float64)
        self.asinh_scale = np.asarray(feature_stats.asinh_scale, dtype=np.float64)
        self.batch_norm_arguments = batch_norm_arguments(config)

    def compile(self) -> keras.Model:
        features = keras.Input(shape=(len(self.names),), dtype="float32", name="features")
        row_splits = keras.Input(shape=(), dtype="int32", name="row_splits")
        position_columns = [self.names.index(name) for name in POSITION_FEATURES]

        standardised = FeatureStandardisation(self.names, self.mean, self.scale, self.asinh_scale,
                                              name="input_conditioning")(features)
        positions = FeatureColumns(position_columns, name="hit_positions")(features)
        is_track = FeatureColumns([self.names.index(TRACK_FLAG_FEATURE)], name="track_flag")(features)
        seed = self._cluster_space_seed(standardised, position_columns)

        hidden = HitTrackEmbedding(self.architecture.n_embedding, activation=self.dense_options.activation,
                                   name="hit_track_embedding")([standardised, is_track])
        hidden = self._batch_norm(hidden, "batch_norm_embedding")

        kept = [seed]
        for i, block in enumerate(self.architecture.gravnet):
            hidden = self._dense_blocks(hidden, self.architecture.dense_pre_gravnet, f"dense_pre_gravnet_{i}")
            hidden = self._batch_norm(hidden, f"batch_norm_pre_gravnet_{i}")
            gravnet_input = keras.layers.Concatenate(name=f"gravnet_{i}_input")([seed, hidden])
            hidden, _, nidx, dist_sq = GravNet(
                n_neighbours=block.n, n_dimensions=self.architecture.n_gravnet_space_coordinates,
                n_filters=block.n_filters, n_propagate=block.n_propagate,
                feature_activation=self.dense_options.activation, knn=self.architecture.knn, name=f"gravnet_{i}",
            )([gravnet_input, row_splits])
            hidden = GravNetSpaceRegularizer(self.architecture.gravnet_space_regularizer,
                                             name=f"gravnet_space_regularizer_{i}")(
                [hidden, dist_sq, nidx, positions, row_splits])
            hidden = self._maybe_layer_norm(hidden, f"gravnet_{i}")
            hidden = self._batch_norm(hidden, f"batch_norm_gravnet_{i}")
            if self.architecture.message_passing:
                widths = [message_block.n for message_block in self.architecture.message_passing]
                hidden = DistanceWeightedMessagePassing(widths, activation=self.dense_options.activation,
                                                        name=f"message_passing_{i}")([hidden, nidx, dist_sq])
                hidden = self._maybe_layer_norm(hidden, f"message_passing_{i}")
                hidden = self._batch_norm(hidden, f"batch_norm_message_passing_{i}")
            hidden = self._dense_blocks(hidden, self.architecture.dense_post_message_passing,
                                        f"dense_post_message_passing_{i}")
            hidden = self._batch_norm(hidden, f"batch_norm_post_message_passing_{i}")
            kept.append(hidden)

        final = keras.layers.Concatenate(name="concatenate_iterations")(kept)
        final = self._dense_blocks(final, self.architecture.dense_final, "dense_final")
        final = self._batch_norm(final, "batch_norm_final")
        heads = CondensationHeads(self.architecture.n_cluster_space_coordinates,
                                  fix_distance_scale=self.architecture.fix_distance_scale,
                                  name="condensation_heads")(final)
        outputs = dict(heads)
        if self.config.General.use_fill_space:
            outputs["ccoords"] = FillSpaceRegularizer(self.architecture.fill_space_regularizer,
                                                      name="fill_space_regularizer")([heads["ccoords"], row_splits])
        return keras.Model(inputs={"features": features, "row_splits": row_splits}, outputs=outputs,
                           name=_model_name(self.config.General.name))

    def _cluster_space_seed(self, standardised, position_columns):
        """The first C standardised position columns, plus a learned projection when C > 3."""
        n_coordinates = self.architecture.n_cluster_space_coordinates
        seed = FeatureColumns(position_columns[:n_coordinates], name="cluster_space_seed")(standardised)
        if n_coordinates <= len(position_columns):
            return seed
        extra = keras.layers.Dense(n_coordinates - len(position_columns),
                                   name="cluster_space_seed_projection")(standardised)
        return keras.layers.Concatenate(name="cluster_space_seed_extended")([seed, extra])

    def _dense_blocks(self, x, blocks, prefix: str):
        options = self.dense_options
        regularizer = KERNEL_REGULARIZERS[options.kernel_regularizer](options.kernel_regularizer_rate)
        for j, block in enumerate(blocks):
            name = f"{prefix}_{j}"
            x = keras.layers.Dense(block.n, activation=options.activation, kernel_regularizer=regularizer,
                                   name=name)(x)
            if options.dropout > 0:
                x = keras.layers.Dropout(options.dropout, name=f"{name}_dropout")(x)
            x = self._maybe_layer_norm(x, name)
        return x

    def _maybe_layer_norm(self, x, block_name: str):
        if not self.layer_norm:
            return x
        return keras.layers.LayerNormalization(name=f"{block_name}_layer_norm")(x)

    def _batch_norm(self, x, name: str):
        return ScaledGooeyBatchNorm2(**self.batch_norm_arguments, name=name)(x)


def _model_name(name: str) -> str:
    """A Keras-safe model name from General.name (letters, digits, '_', '-', '.')."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name).strip("_")
    return cleaned or "gravtrain_model"
