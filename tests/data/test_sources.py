"""The Data section wired to events: toy settings from the schema, shards written by `gravtrain simulate`."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gravtrain.config import load_config
from gravtrain.config.schema import ToyData
from gravtrain.data import DataError, load_event_sets, simulate_events, simulate_toy_datasets, toy_settings
from gravtrain.data.toy import TRAIN_STREAM, VAL_STREAM

REPO = Path(__file__).resolve().parents[2]
SMALL_TOY = dict(n_particles=(2, 3), energy_range=(2.0, 20.0), noise_hits=20, tracks=True, seed=5)


def config_text(data_block: str) -> str:
    return (
        "General: {name: sources}\n" + data_block +
        "Architecture: {gravnet: [{n: 4}], message_passing: [], dense_pre_gravnet: [],"
        " dense_post_message_passing: [], dense_final: []}\n"
        "Training: [{epochs: 1, batch_size: 10000, learning_rate: 1e-3}]\n"
    )


def assert_same_events(a, b):
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.row_splits, b.row_splits)
    for name in a.truth:
        np.testing.assert_array_equal(a.truth[name], b.truth[name])


def test_toy_block_keys_are_the_simulator_arguments():
    parameters = set(inspect.signature(simulate_toy_datasets).parameters)
    assert set(toy_settings(ToyData())) == parameters


def test_toy_source_follows_the_config(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(config_text(
        "Data:\n  toy: {n_train_events: 3, n_val_events: 2, n_particles: [2, 3], energy_range: [2.0, 20.0],"
        " noise_hits: 20, seed: 5}\n"
    ))
    train, val = load_event_sets(load_config(path).Data)
    assert (train.n_events, val.n_events) == (3, 2)
    assert_same_events(train, simulate_events(3, stream=TRAIN_STREAM, **SMALL_TOY))
    assert_same_events(val, simulate_events(2, stream=VAL_STREAM, **SMALL_TOY))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "config_trainer.py"), *args], capture_output=True, text=True,
                          timeout=120)


def test_simulate_command_writes_shards_the_files_source_reads(tmp_path):
    toy_config = tmp_path / "toy.yaml"
    toy_config.write_text(config_text(
        "Data:\n  toy: {n_particles: [2, 3], energy_range: [2.0, 20.0], noise_hits: 20, seed: 5}\n"
    ))
    for split, events in (("train", 5), ("val", 2)):
        result = run_cli("simulate", "--events", str(events), "--out", str(tmp_path / split),
                         "--events-per-shard", "2", "--split", split, "--config", str(toy_config))
        assert result.returncode == 0, result.stderr
    files_config = tmp_path / "files.yaml"
    files_config.write_text(config_text(
        f"Data:\n  source: files\n  files: {{train: ['{tmp_path}/train/*.npz'], val: ['{tmp_path}/val/*.npz']}}\n"
    ))
    train, val = load_event_sets(load_config(files_config).Data)
    assert_same_events(train, simulate_events(5, stream=TRAIN_STREAM, **SMALL_TOY))
    assert_same_events(val, simulate_events(2, stream=VAL_STREAM, **SMALL_TOY))


def test_simulate_refuses_to_mix_with_old_shards(tmp_path):
    assert run_cli("simulate", "--events", "1", "--out", str(tmp_path)).returncode == 0
    again = run_cli("simulate", "--events", "1", "--out", str(tmp_path))
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    assert run_cli("simulate", "--events", "1", "--out", str(tmp_path), "--overwrite").returncode == 0


def test_files_source_with_a_pattern_matching_nothing(tmp_path):
    path = tmp_path / "files.yaml"
    path.write_text(config_text(
        f"Data:\n  source: files\n  files: {{train: ['{tmp_path}/none/*.npz'], val: ['{tmp_path}/none/*.npz']}}\n"
    ))
    with pytest.raises(DataError, match="no shard matches this pattern"):
        load_event_sets(load_config(path).Data)
