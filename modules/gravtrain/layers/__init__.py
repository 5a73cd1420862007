"""Pure Keras layers of gravtrain: kNN selection, GravNet, message passing, gooey batch norm, regularisers,
input conditioning, the output heads, and the pre-model layers (hit selection, learned pooling).

This package imports nothing else of gravtrain and can be lifted out and reused.
"""

from .batch_norm import ScaledGooeyBatchNorm2
from .conditioning import FeatureColumns, FeatureStandardisation
from .gravnet import GravNet
from .hit_selection import FrozenModelOutput, KeepHits, NeighbourGraph
from .heads import HEAD_NAMES, N_PID_CLASSES, CondensationHeads, HitTrackEmbedding
from .knn import KNN_BACKENDS, select_knn
from .pooling import GatherRows, LearnedPooling
from .message_passing import DistanceWeightedMessagePassing
from .regularizers import FillSpaceRegularizer, GravNetSpaceRegularizer
from .repeated_searches import RepeatedSearches

__all__ = [
    "HEAD_NAMES",
    "KNN_BACKENDS",
    "N_PID_CLASSES",
    "CondensationHeads",
    "DistanceWeightedMessagePassing",
    "FeatureColumns",
    "FeatureStandardisation",
    "FillSpaceRegularizer",
    "FrozenModelOutput",
    "GatherRows",
    "GravNet",
    "GravNetSpaceRegularizer",
    "HitTrackEmbedding",
    "KeepHits",
    "LearnedPooling",
    "NeighbourGraph",
    "RepeatedSearches",
    "ScaledGooeyBatchNorm2",
    "select_knn",
]
