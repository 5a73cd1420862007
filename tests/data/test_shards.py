"""Shards: exact round trip, simulate-to-shards (``gravtrain simulate``), and one clear DataError per kind of bad
file."""

from __future__ import annotations

import numpy as np
import pytest

from gravtrain.config.schema import ToyData
from gravtrain.data import (FEATURE_NAMES, SHARD_FORMAT_VERSION, TRUTH_NAMES, TRUTH_WIDTHS, VAL_STREAM, DataError,
                            EventStore, ShardsInTheWay, load_shards, read_shard, read_shard_metadata, simulate_events,
                            simulate_to_shards, write_event_store, write_shard, write_toy_shards)


def _assert_same_events(a: EventStore, b: EventStore) -> None:
    assert a.features.dtype == b.features.dtype and a.row_splits.dtype == b.row_splits.dtype
    np.testing.assert_array_equal(a.row_splits, b.row_splits)
    np.testing.assert_array_equal(a.features, b.features)
    for name in TRUTH_NAMES:
        assert a.truth[name].dtype == b.truth[name].dtype
        np.testing.assert_array_equal(a.truth[name], b.truth[name])


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_is_exact(small_store, tmp_path, compress):
    path = write_event_store(tmp_path / "events", small_store, compress=compress, metadata={"source": "test"})
    assert path.name == "events.npz"
    _assert_same_events(read_shard(path), small_store)
    assert read_shard_metadata(path) == {"source": "test"}


def test_user_arrays_are_cast_and_written(tmp_path):
    rng = np.random.default_rng(0)
    row_splits = np.array([0, 3, 5])
    truth = {name: rng.random((5, w)) for name, w in TRUTH_WIDTHS.items()}
    truth["t_idx"] = np.array([0, 1, -1, 0, 0])  # 1-D int64 is fine for a width-1 array
    path = write_shard(tmp_path / "mine.npz", rng.random((5, len(FEATURE_NAMES))), truth, row_splits)
    store = read_shard(path)
    assert store.features.dtype == np.float32 and store.truth["t_idx"].dtype == np.int32
    np.testing.assert_array_equal(store.truth["t_idx"][:, 0], [0, 1, -1, 0, 0])


def test_simulate_to_shards_equals_one_simulation(tmp_path):
    kwargs = dict(n_particles=(1, 2), energy_range=(1.0, 10.0), noise_hits=10, seed=6)
    paths = simulate_to_shards(tmp_path / "toy", 7, events_per_shard=3, **kwargs)
    assert [p.name for p in paths] == ["shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    _assert_same_events(load_shards([str(tmp_path / "toy" / "*.npz")]), simulate_events(7, **kwargs))
    assert read_shard_metadata(paths[2])["first_event"] == 6


def test_toy_shards_take_the_config_settings_split_and_seed(tmp_path):
    toy = ToyData(n_train_events=1, n_val_events=1, n_particles=(1, 2), energy_range=(1.0, 10.0), noise_hits=10,
                  seed=6)
    paths = write_toy_shards(tmp_path / "val", 5, 2, toy, split="val", seed=9)
    assert len(paths) == 3 and read_shard_metadata(paths[0])["seed"] == 9
    expected = simulate_events(5, n_particles=(1, 2), energy_range=(1.0, 10.0), noise_hits=10, tracks=True, seed=9,
                               stream=VAL_STREAM)
    _assert_same_events(load_shards([str(tmp_path / "val" / "*.npz")]), expected)


def test_toy_shards_refuse_shards_in_the_way_unless_overwriting(tmp_path):
    toy = ToyData(n_particles=(1, 1), noise_hits=5)
    first = write_toy_shards(tmp_path, 4, 1, toy)
    with pytest.raises(ShardsInTheWay) as info:
        write_toy_shards(tmp_path, 2, 1, toy)
    assert info.value.directory == tmp_path and info.value.shards == first
    assert isinstance(info.value, DataError) and sorted(tmp_path.glob("*.npz")) == first  # nothing touched
    again = write_toy_shards(tmp_path, 2, 1, toy, overwrite=True)
    assert sorted(tmp_path.glob("*.npz")) == again and len(again) == 2  # the old four are gone


def test_pattern_matching_nothing_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no shard matches"):
        load_shards([str(tmp_path / "nothing_*.npz")])


# --------------------------------------------------------------------------------------------- bad files
def _good_arrays(store: EventStore) -> dict[str, np.ndarray]:
    return {
        "format_version": np.array(SHARD_FORMAT_VERSION, dtype=np.int64),
        "feature_names": np.array(FEATURE_NAMES),
        "truth_names": np.array(TRUTH_NAMES),
        "truth_widths": np.array(list(TRUTH_WIDTHS.values()), dtype=np.int64),
        "features": store.features.copy(),
        "row_splits": store.row_splits.copy(),
        **{name: store.truth[name].copy() for name in TRUTH_NAMES},
    }


def _first_row_of(store, event):
    return int(store.row_splits[event])


def _wrong_feature_count(a, store):
    a["features"] = a["features"][:, :-1]
    return "features", 0


def _mismatched_length(a, store):
    a["t_energy"] = a["t_energy"][:_first_row_of(store, 5) + 2]
    return "t_energy", 5


def _non_monotonic(a, store):
    a["row_splits"][8] = a["row_splits"][7] - 1
    return "row_splits", 7


def _nan_value(a, store):
    a["features"][_first_row_of(store, 12) + 1, FEATURE_NAMES.index("time")] = np.nan
    return "features", 12


def _inf_value(a, store):
    a["t_pos"][_first_row_of(store, 3), 1] = np.inf
    return "t_pos", 3


def _wrong_dtype(a, store):
    a["features"] = a["features"].astype(np.float64)
    return "features", 0


def _wrong_index_dtype(a, store):
    a["t_idx"] = a["t_idx"].astype(np.float32)
    return "t_idx", 0


def _missing_truth(a, store):
    del a["t_pid"]
    return "t_pid", None


def _bad_object_index(a, store):
    a["t_idx"][_first_row_of(store, 9)] = -4
    return "t_idx", 9


def _renamed_feature(a, store):
    a["feature_names"] = np.array(("E",) + FEATURE_NAMES[1:])
    return "feature_names", None


BAD_CASES = [_wrong_feature_count, _mismatched_length, _non_monotonic, _nan_value, _inf_value, _wrong_dtype,
             _wrong_index_dtype, _missing_truth, _bad_object_index, _renamed_feature]


@pytest.mark.parametrize("spoil", BAD_CASES, ids=[c.__name__.strip("_") for c in BAD_CASES])
def test_each_bad_file_gives_a_data_error_naming_file_array_and_event(small_store, tmp_path, spoil):
    arrays = _good_arrays(small_store)
    array_name, event = spoil(arrays, small_store)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as caught:
        read_shard(path)
    message = str(caught.value)
    assert str(path) in message and f"'{array_name}'" in message
    assert caught.value.array == array_name
    if event is not None:
        assert f"event {event}:" in message and caught.value.event == event


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="file not found") as caught:
        read_shard(tmp_path / "absent.npz")
    assert str(tmp_path / "absent.npz") in str(caught.value)


def test_a_file_that_is_not_an_npz_is_a_data_error(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("not a zip")
    with pytest.raises(DataError, match="not a readable"):
        read_shard(path)


def test_bad_arrays_are_refused_before_writing(small_store, tmp_path):
    features = small_store.features.copy()
    features[_first_row_of(small_store, 4)] = np.nan
    with pytest.raises(DataError, match="event 4"):
        write_shard(tmp_path / "never.npz", features, small_store.truth, small_store.row_splits)
    assert not (tmp_path / "never.npz").exists()


@pytest.mark.parametrize("where", ["block header", "middle"])
def test_a_corrupt_deflate_stream_is_a_data_error_naming_the_array(small_store, tmp_path, where):
    """A reserved block type at the start is a zlib.error inside NumPy; bytes spoilt in the middle a CRC error."""
    import zipfile

    path = write_event_store(tmp_path / "damaged.npz", small_store)
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("features.npy")
    data = bytearray(path.read_bytes())
    assert member.compress_type == zipfile.ZIP_DEFLATED
    # The member's data starts after its local header: 30 bytes, then the name and extra field of the lengths
    # stored at bytes 26 and 28 of that header.
    header = data[member.header_offset:member.header_offset + 30]
    name_length, extra_length = (int.from_bytes(header[at:at + 2], "little") for at in (26, 28))
    start = member.header_offset + 30 + name_length + extra_length
    if where == "block header":
        data[start] = 0xFF  # BFINAL = 1, BTYPE = 11: reserved
    else:
        middle = start + member.compress_size // 2
        data[middle:middle + 64] = bytes(255 - b for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        read_shard(path)
    assert caught.value.array == "features" and "damaged" in str(caught.value) and str(path) in str(caught.value)


def test_a_npy_array_under_an_npz_name_is_a_data_error(small_store, tmp_path):
    path = tmp_path / "features.npz"
    with open(path, "wb") as stream:
        np.save(stream, small_store.features)
    with pytest.raises(DataError, match="single array .a .npy file., not an .npz shard") as caught:
        read_shard(path)
    assert str(path) in str(caught.value)


def test_every_feature_and_truth_array_says_what_it_holds():
    """The shard format's documentation is generated from these: a new column without its meaning fails here."""
    from gravtrain.data.names import FEATURE_MEANINGS, TRUTH_MEANINGS

    assert tuple(FEATURE_MEANINGS) == FEATURE_NAMES
    assert tuple(TRUTH_MEANINGS) == TRUTH_NAMES
    assert all(text.strip() for text in (*FEATURE_MEANINGS.values(), *TRUTH_MEANINGS.values()))
