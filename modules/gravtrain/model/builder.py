"""The model compiler: a validated Config (Architecture, DenseOptions, BatchNormOptions) → a Keras functional model.

The network, for ``features`` (V, F) and ``row_splits`` (E+1,) of a batch, follows the field's config trainer::

    z      = standardise(asinh-compress(features))                   input_conditioning
    c      = z[:, (x, y, z)][:, :C]  ++  Dense(C-3)(z) if C > 3      cluster_space_seed, cluster_space_seed_projection
    h      = BN(embed_hit_or_track(z, is_track))                     hit_track_embedding, batch_norm_embedding
    for each GravNet iteration i (Architecture.gravnet[i]):
        h  = BN(dense blocks(h))                                     dense_pre_gravnet_i_j, batch_norm_pre_gravnet_i
        g, s, nidx, d², π = GravNet([c ++ h, row_splits])            gravnet_i   (its space starts as c)
        g  = BN(regularise(g; d², nidx, positions))                  gravnet_space_regularizer_i, batch_norm_gravnet_i
        g  = BN(message passing(g; nidx, d², π))                     message_passing_i, batch_norm_message_passing_i
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
π is the order of GravNet's graph (the k-d tree's, neighbours close in memory; ``return_order``), in which
message passing reads it too. The message passing and its batch norm are left out when
``Architecture.message_passing`` is empty.
The layers of iteration i, from ``dense_pre_gravnet_i_0`` to ``batch_norm_post_message_passing_i``
(`iteration_of`), are what ``Training.N.recompute`` runs again in the backward pass (`recomputing_forward`).

A pre-model (``General.pre-model-type``) stands in front of that network:

- ``noise-filter``: ``s = filter(features)`` (frozen, ``pre_model``); the hits with s below
  ``pre-model-threshold`` are dropped (tracks never are) and row_splits recomputed (``pre_model_selection``); the
  network runs on the kept hits. Extra outputs: ``hit_index`` (K,), the batch row of each output row,
  ``hit_row_splits`` (E+1,) and ``pre_model_score`` (V, 1) of every hit.
- ``pre-pooling``: ``LearnedPooling`` (``pre_pooling``) reduces each event by ``pre-pooling-factor``; the network
  runs on the representatives, and every head is mapped back to all hits (``<head>_to_hits``): a hit takes the
  outputs of its representative.

With ``General.model: noise-filter`` the same sections build a hit classifier instead (``build_noise_filter``)::

    z      = standardise(asinh-compress(features))                   input_conditioning
    p      = z[:, (x, y, z)]                                         hit_positions_standardised
    h      = BN(embed_hit_or_track(z, is_track))                     hit_track_embedding, batch_norm_embedding
    for each Architecture.gravnet item i (its n: the neighbours K):
        h  = BN(dense blocks(h))                                     dense_pre_gravnet_i_j, batch_norm_pre_gravnet_i
        nidx, d² = kNN_K(p)                                          neighbour_graph_i (the input space, fixed)
        h  = BN(message passing(h; nidx, d²))                        message_passing_i, batch_norm_message_passing_i
        h  = BN(dense blocks(h))                                     dense_post_message_passing_i_j, ...
    s      = sigmoid(Dense(1)(BN(dense blocks(h))))                  dense_final_j, batch_norm_final, signal_score

It reads no GravNet-only key (n_filters, n_propagate, the space dimensions and regularisers, fill space).
"""

from __future__ import annotations

import re
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
    GatherRows,
    KeepHits,
    LearnedPooling,
    NeighbourGraph,
    FrozenModelOutput,
    ScaledGooeyBatchNorm2,
)
from gravtrain.model.pre_models import SIGNAL_SCORE, PreModel, PreModelFetch, load_pre_model
from gravtrain.model.recompute import RecomputingForward
from gravtrain.model.stage_options import batch_norm_arguments, check_stage_options

#: The features the builder needs by name: positions for the cluster-space seed and the GravNet regulariser,
#: ``is_track`` to choose the embedding.
POSITION_FEATURES = ("x", "y", "z")
TRACK_FLAG_FEATURE = "is_track"
#: The additive feature that pre-pooling sums over the hits a representative stands for.
ENERGY_FEATURE = "energy"
#: Outputs of a model behind a noise filter: the batch row of each output row, and their event boundaries.
HIT_INDEX = "hit_index"
HIT_ROW_SPLITS = "hit_row_splits"
#: Names of the model inputs, as the batches of ``gravtrain.data`` carry them.
INPUT_NAMES = ("features", "row_splits")


#: The layers of GravNet iteration i (of either model family) are named ``<prefix>_<i>`` or ``<prefix>_<i>_...``
#: with these prefixes: what ``Training.N.recompute`` recomputes as one segment (`iteration_of`).
ITERATION_LAYER_PREFIXES = (
    "dense_pre_gravnet", "batch_norm_pre_gravnet", "gravnet", "gravnet_space_regularizer", "batch_norm_gravnet",
    "neighbour_graph", "message_passing", "batch_norm_message_passing", "dense_post_message_passing",
    "batch_norm_post_message_passing",
)
_ITERATION_LAYER = re.compile(rf"^(?:{'|'.join(ITERATION_LAYER_PREFIXES)})_(\d+)(?:_.*)?$")


def iteration_of(layer_name: str) -> int | None:
    """The GravNet iteration that the layer ``layer_name`` belongs to (module docstring), or None: the layers
    before the first iteration and after the last (conditioning, embedding, final dense blocks, heads) and those
    of pre-models."""
    match = _ITERATION_LAYER.match(layer_name)
    return int(match.group(1)) if match else None


def recomputing_forward(model: keras.Model) -> RecomputingForward:
    """The forward pass of a built ``model`` with each iteration recomputed in the backward pass
    (`gravtrain.model.recompute`; ``Training.N.recompute``)."""
    return RecomputingForward(model, iteration_of)


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


def build_model(config: Config, feature_stats: FeatureStatsLike, *, pre_model: PreModel | None = None,
                fetch: PreModelFetch | None = None) -> keras.Model:
    """Compile ``config`` into a functional ``keras.Model`` with freshly initialised weights (module docstring).

    Args:
        config: a validated :class:`~gravtrain.config.schema.Config`.
        feature_stats: the training set's per-feature statistics (``gravtrain.data.FeatureStats``); they are
            stored inside the model by its ``input_conditioning`` layer.
        pre_model: the pre-model ``config`` names (:func:`pre_model_of`); loaded here when not given.
        fetch: downloads a pre-model named by a URI (:data:`~gravtrain.model.pre_models.PreModelFetch`).

    Returns:
        A model called as ``model({"features": (V, F) float32, "row_splits": (E+1,) int32})`` that returns a
        dict of the condensation heads (``gravtrain.layers.HEAD_NAMES``) and, with a noise-filter pre-model,
        ``hit_index``, ``hit_row_splits`` and ``pre_model_score``; a noise filter returns ``signal_score``.

    Raises:
        ConfigError: a setting the builder cannot honour: a batch-norm or loss option, of a section or a stage,
            that the layers or the loss do not take; a pre-model that cannot be loaded or does not fit; a noise
            filter without message passing.
        ValueError: ``feature_stats`` lacks a feature the network needs.
    """
    check_stage_options(config)
    names = list(feature_stats.names)
    missing = [name for name in (*POSITION_FEATURES, TRACK_FLAG_FEATURE) if name not in names]
    if missing:
        raise ValueError(f"the feature statistics lack {', '.join(missing)}; the model needs them by name "
                         f"(features present: {', '.join(names)})")
    if pre_model is None:
        pre_model = pre_model_of(config, names, fetch=fetch)
    return MODEL_FAMILIES[config.General.model](config, feature_stats, pre_model).compile()


def pre_model_of(config: Config, data_features, *, fetch: PreModelFetch | None = None) -> PreModel | None:
    """The pre-model ``config`` names, loaded and checked against the data's features (``ConfigError`` if it
    cannot be); None without one. A pre-pooling model is any gravtrain model with a ``pre_pooling`` layer. ``fetch``
    downloads one a URI names (:data:`~gravtrain.model.pre_models.PreModelFetch`)."""
    kind = config.General.pre_model_type
    if kind == "none" or (kind == "pre-pooling" and not config.General.pre_model_path):
        return None
    if kind == "noise-filter":
        return load_pre_model(config, data_features, fetch=fetch)
    loaded = load_pre_model(config, data_features, expect_output=None, fetch=fetch)
    try:
        loaded.model.get_layer(PRE_POOLING_LAYER)
    except ValueError:
        raise ConfigError([ConfigIssue(path="General.pre-model-path", message=(
            f"'{loaded.source}' has no '{PRE_POOLING_LAYER}' layer to take initial weights from; give a model "
            "trained with pre-model-type: pre-pooling, or remove pre-model-path."))]) from None
    return loaded


#: The name of the learned pooling layer (pre-model-type: pre-pooling); its weights are what pre-model-path gives.
PRE_POOLING_LAYER = "pre_pooling"


class _ModelCompiler:
    """Holds the options while the functional graph is wired; one instance per model."""

    def __init__(self, config: Config, feature_stats: FeatureStatsLike, pre_model: PreModel | None = None):
        self.config = config
        self.architecture = config.Architecture
        self.dense_options = config.DenseOptions
        self.layer_norm = config.General.use_layer_normalization
        self.names = list(feature_stats.names)
        self.mean = np.asarray(feature_stats.mean, dtype=np.float64)
        self.scale = np.asarray(feature_stats.scale, dtype=np.float64)
        self.asinh_scale = np.asarray(feature_stats.asinh_scale, dtype=np.float64)
        self.batch_norm_arguments = batch_norm_arguments(config)
        self.pre_model = pre_model

    def compile(self) -> keras.Model:
        features = keras.Input(shape=(len(self.names),), dtype="float32", name="features")
        row_splits = keras.Input(shape=(), dtype="int32", name="row_splits")
        outputs = getattr(self, PRE_MODEL_STAGES[self.config.General.pre_model_type])(features, row_splits)
        return keras.Model(inputs={"features": features, "row_splits": row_splits}, outputs=outputs,
                           name=_model_name(self.config.General.name))

    def _standardise(self, features, name: str):
        return FeatureStandardisation(self.names, self.mean, self.scale, self.asinh_scale, name=name)(features)

    def _behind_noise_filter(self, features, row_splits) -> dict:
        score = FrozenModelOutput(self.pre_model.model, SIGNAL_SCORE, name="pre_model")(
            {"features": features, "row_splits": row_splits})
        kept, kept_row_splits, index = KeepHits(self.config.General.pre_model_threshold,
                                                self.names.index(TRACK_FLAG_FEATURE),
                                                name="pre_model_selection")([features, row_splits, score])
        outputs = self._network(kept, kept_row_splits)
        outputs.update({HIT_INDEX: index, HIT_ROW_SPLITS: kept_row_splits, "pre_model_score": score})
        return outputs

    def _behind_pooling(self, features, row_splits) -> dict:
        standardised = self._standardise(features, "pre_pooling_conditioning")
        pooling = LearnedPooling(
            self.config.General.pre_pooling_factor,
            position_columns=[self.names.index(name) for name in POSITION_FEATURES],
            track_column=self.names.index(TRACK_FLAG_FEATURE), sum_columns=[self.names.index(ENERGY_FEATURE)],
            knn=self.architecture.knn, name=PRE_POOLING_LAYER)
        pooled, pooled_row_splits, assignment, _ = pooling([features, standardised, row_splits])
        if self.pre_model is not None:
            pooling.set_weights(self.pre_model.model.get_layer(PRE_POOLING_LAYER).get_weights())
        heads = self._network(pooled, pooled_row_splits)
        return {name: GatherRows(name=f"{name}_to_hits")([value, assignment]) for name, value in heads.items()}

    def _network(self, features, row_splits) -> dict:
        """The GravNet network of the module docstring on ``features`` (V, F) and ``row_splits``: its outputs."""
        position_columns = [self.names.index(name) for name in POSITION_FEATURES]
        standardised = self._standardise(features, "input_conditioning")
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
            hidden, _, nidx, dist_sq, order, inverse = GravNet(
                n_neighbours=block.n, n_dimensions=self.architecture.n_gravnet_space_coordinates,
                n_filters=block.n_filters, n_propagate=block.n_propagate,
                feature_activation=self.dense_options.activation, knn=self.architecture.knn, return_order=True,
                name=f"gravnet_{i}",
            )([gravnet_input, row_splits])
            hidden = GravNetSpaceRegularizer(self.architecture.gravnet_space_regularizer,
                                             name=f"gravnet_space_regularizer_{i}")(
                [hidden, dist_sq, nidx, positions, row_splits])
            hidden = self._maybe_layer_norm(hidden, f"gravnet_{i}")
            hidden = self._batch_norm(hidden, f"batch_norm_gravnet_{i}")
            hidden = self._message_passing(hidden, [nidx, dist_sq, order, inverse], i)
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
        return outputs

    def _message_passing(self, hidden, graph: list, i: int):
        """Message passing over ``graph``: ``[nidx, dist_sq]``, or GravNet's ``[nidx, dist_sq, order, inverse]``
        (run in GravNet's order)."""
        if not self.architecture.message_passing:
            return hidden
        widths = [message_block.n for message_block in self.architecture.message_passing]
        hidden = DistanceWeightedMessagePassing(widths, activation=self.dense_options.activation,
                                                name=f"message_passing_{i}")([hidden, *graph])
        hidden = self._maybe_layer_norm(hidden, f"message_passing_{i}")
        return self._batch_norm(hidden, f"batch_norm_message_passing_{i}")

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


class _NoiseFilterCompiler(_ModelCompiler):
    """The hit classifier of ``General.model: noise-filter`` (module docstring)."""

    def compile(self) -> keras.Model:
        if not self.architecture.message_passing:
            raise ConfigError([ConfigIssue(path="Architecture.message_passing", message=(
                "is empty, but a noise filter's hits see their neighbours only through message passing; give at "
                "least one width, e.g. [{n: 16}]."))])
        features = keras.Input(shape=(len(self.names),), dtype="float32", name="features")
        row_splits = keras.Input(shape=(), dtype="int32", name="row_splits")
        standardised = self._standardise(features, "input_conditioning")
        positions = FeatureColumns([self.names.index(name) for name in POSITION_FEATURES],
                                   name="hit_positions_standardised")(standardised)
        is_track = FeatureColumns([self.names.index(TRACK_FLAG_FEATURE)], name="track_flag")(features)
        hidden = HitTrackEmbedding(self.architecture.n_embedding, activation=self.dense_options.activation,
                                   name="hit_track_embedding")([standardised, is_track])
        hidden = self._batch_norm(hidden, "batch_norm_embedding")
        for i, block in enumerate(self.architecture.gravnet):
            hidden = self._dense_blocks(hidden, self.architecture.dense_pre_gravnet, f"dense_pre_gravnet_{i}")
            hidden = self._batch_norm(hidden, f"batch_norm_pre_gravnet_{i}")
            nidx, dist_sq = NeighbourGraph(block.n, knn=self.architecture.knn,
                                           name=f"neighbour_graph_{i}")([positions, row_splits])
            hidden = self._message_passing(hidden, [nidx, dist_sq], i)
            hidden = self._dense_blocks(hidden, self.architecture.dense_post_message_passing,
                                        f"dense_post_message_passing_{i}")
            hidden = self._batch_norm(hidden, f"batch_norm_post_message_passing_{i}")
        hidden = self._dense_blocks(hidden, self.architecture.dense_final, "dense_final")
        hidden = self._batch_norm(hidden, "batch_norm_final")
        score = keras.layers.Dense(1, activation="sigmoid", name=SIGNAL_SCORE)(hidden)
        return keras.Model(inputs={"features": features, "row_splits": row_splits},
                           outputs={SIGNAL_SCORE: score}, name=_model_name(self.config.General.name))


#: ``General.pre-model-type`` -> the method of ``_ModelCompiler`` that wires the network behind that pre-model.
PRE_MODEL_STAGES = {"none": "_network", "noise-filter": "_behind_noise_filter", "pre-pooling": "_behind_pooling"}
#: ``General.model`` -> the compiler of that model family.
MODEL_FAMILIES = {"object-condensation": _ModelCompiler, "noise-filter": _NoiseFilterCompiler}


def _model_name(name: str) -> str:
    """A Keras-safe model name from General.name (letters, digits, '_', '-', '.')."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name).strip("_")
    return cleaned or "gravtrain_model"
