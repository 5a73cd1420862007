"""Events: the toy calorimeter, the on-disk shard format, validation, hit-budget batching and feature scaling.

Everything here works on one in-memory representation, :class:`EventStore` (concatenated per-hit arrays and
``row_splits``), which the toy simulator (``Data.source: toy``) and the shard reader (``Data.source:
files``) both produce and which batching consumes. The batching names (``HitBudgetBatcher``, ...) import
TensorFlow, so they load on first use.
"""

from gravtrain.data.conditioning import FeatureStats
from gravtrain.data.errors import DataError
from gravtrain.data.event_store import EventStore
from gravtrain.data.names import (FEATURE_NAMES, N_FEATURES, NOISE_INDEX, PID_NAMES, TRUTH_DTYPES, TRUTH_NAMES,
                                  TRUTH_WIDTHS)
from gravtrain.data.shards import (SHARD_FORMAT_VERSION, SHARD_SUFFIX, load_shards, read_shard, read_shard_metadata,
                                   simulate_to_shards, write_event_store, write_shard)
from gravtrain.data.sources import load_event_sets, toy_settings
from gravtrain.data.toy import TRAIN_STREAM, VAL_STREAM, simulate_events, simulate_toy_datasets
from gravtrain.data.toy_shards import ShardsInTheWay, write_toy_shards
from gravtrain.data.validation import validate_event_arrays

_BATCHING_NAMES = ("HitBudgetBatcher", "EpochPlan", "plan_hit_budget_batches", "batch_element_spec")

__all__ = [
    "DataError", "EventStore", "FeatureStats", "FEATURE_NAMES", "N_FEATURES", "NOISE_INDEX", "PID_NAMES",
    "TRUTH_DTYPES", "TRUTH_NAMES", "TRUTH_WIDTHS", "SHARD_FORMAT_VERSION", "SHARD_SUFFIX", "load_shards", "read_shard",
    "read_shard_metadata", "simulate_to_shards", "write_event_store", "write_shard", "TRAIN_STREAM", "VAL_STREAM",
    "simulate_events", "simulate_toy_datasets", "validate_event_arrays", "load_event_sets", "toy_settings",
    "ShardsInTheWay", "write_toy_shards", *_BATCHING_NAMES,
]


def __getattr__(name: str):
    if name in _BATCHING_NAMES:
        from gravtrain.data import batching

        return getattr(batching, name)
    raise AttributeError(f"module 'gravtrain.data' has no attribute '{name}'")
