"""``gravtrain simulate``: toy-calorimeter events written as shards, with the ``Data.toy`` settings of a config."""

from __future__ import annotations

import os
from pathlib import Path

from gravtrain.config.schema import ToyData
from gravtrain.data.errors import DataError
from gravtrain.data.shards import SHARD_SUFFIX, simulate_to_shards
from gravtrain.data.sources import toy_settings
from gravtrain.data.toy import TRAIN_STREAM, VAL_STREAM

#: The random stream of each split: 'val' gives events independent of 'train' for the same seed.
SPLIT_STREAMS = {"train": TRAIN_STREAM, "val": VAL_STREAM}


class ShardsInTheWay(DataError):
    """The output directory already holds shards, and they may not be replaced.

    Attributes: ``directory`` and ``shards`` (the paths found), besides `DataError`'s.
    """

    def __init__(self, directory: Path, shards: list[Path]) -> None:
        self.directory = directory
        self.shards = shards
        super().__init__(f"already holds {len(shards)} shard(s)", path=directory)


def write_toy_shards(out_dir: str | os.PathLike, n_events: int, events_per_shard: int, toy: ToyData, *,
                     split: str = "train", seed: int | None = None, overwrite: bool = False) -> list[Path]:
    """Simulate ``n_events`` toy events into ``out_dir/shard_00000.npz, ...`` (see `simulate_to_shards`).

    Args:
        out_dir: directory (created if needed).
        n_events: events in all.
        events_per_shard: events per file (the last shard may hold fewer).
        toy: a ``Data.toy`` section; its event counts are not used (``n_events`` is).
        split: 'train' or 'val', the random stream (`SPLIT_STREAMS`).
        seed: replaces ``toy.seed`` when given.
        overwrite: delete the shards already in ``out_dir`` first, instead of refusing.

    Returns:
        The shard paths, in event order.

    Raises:
        ShardsInTheWay: ``out_dir`` holds shards and ``overwrite`` is false.
        OSError: the shards could not be written, or the old ones removed.
    """
    out = Path(out_dir)
    existing = sorted(out.glob(f"*{SHARD_SUFFIX}")) if out.is_dir() else []
    if existing and not overwrite:
        raise ShardsInTheWay(out, existing)
    settings = toy_settings(toy)
    del settings["n_train_events"], settings["n_val_events"]
    if seed is not None:
        settings["seed"] = seed
    for path in existing:
        path.unlink()
    return simulate_to_shards(out, n_events, events_per_shard, stream=SPLIT_STREAMS[split], **settings)
