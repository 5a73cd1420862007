"""The noise-filter model, a main model behind a saved filter, pre-pooling, and every pre-model error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gravtrain.config import ConfigError, load_config
from gravtrain.data import FEATURE_NAMES
from gravtrain.model import (
    HIT_INDEX,
    HIT_ROW_SPLITS,
    build_loss,
    build_model,
    load_model,
    pre_model_of,
    weights_sha256,
)
from gravtrain.tracking import store_model_fetcher

from .conftest import small_config


def filter_config(**changes):
    return small_config(**{"General.model": "noise-filter", **changes})


@pytest.fixture(scope="module")
def saved_filter(tmp_path_factory, toy_stats):
    directory = tmp_path_factory.mktemp("filter") / ("0123456789abcdef" * 2)  # a run directory's name
    directory.mkdir()
    model = build_model(filter_config(), toy_stats)
    model.save(directory / "model.keras")
    return directory / "model.keras", model


def test_a_noise_filter_scores_every_hit_between_zero_and_one(toy_stats, toy_batch):
    model = build_model(filter_config(), toy_stats)
    score = model(toy_batch)["signal_score"].numpy()
    assert set(model.output) == {"signal_score"}
    assert score.shape == (len(toy_batch["features"]), 1) and np.all((score > 0) & (score < 1))
    assert not [layer.name for layer in model.layers if layer.name.startswith("gravnet")]
    assert type(build_loss(filter_config())).__name__ == "NoiseFilterLoss"


def test_a_noise_filter_without_message_passing_is_refused(toy_stats):
    with pytest.raises(ConfigError, match="Architecture.message_passing.*message passing"):
        build_model(filter_config(**{"Architecture.message_passing": []}), toy_stats)


def test_a_noise_filter_refuses_object_condensation_loss_options():
    with pytest.raises(ConfigError, match="LossOptions.q_min.*noise-filter"):
        build_loss(filter_config(**{"LossOptions.q_min": 0.5}))


def test_the_main_model_runs_on_the_kept_hits_and_says_which(saved_filter, toy_stats, toy_batch):
    path, filter_model = saved_filter
    config = small_config(**{"General.pre-model-type": "noise-filter", "General.pre-model-path": str(path),
                             "General.pre-model-threshold": 0.5})
    pre_model = pre_model_of(config, FEATURE_NAMES)
    assert pre_model.run_id == "0123456789abcdef" * 2
    assert pre_model.weights_sha256 == weights_sha256(filter_model)
    model = build_model(config, toy_stats, pre_model=pre_model)
    outputs = model(toy_batch)
    score = filter_model(toy_batch, training=False)["signal_score"].numpy()[:, 0]
    is_track = toy_batch["features"][:, FEATURE_NAMES.index("is_track")] > 0.5
    expected = np.flatnonzero((score >= 0.5) | is_track)
    assert np.array_equal(outputs[HIT_INDEX].numpy(), expected)
    assert outputs["beta"].shape[0] == len(expected)
    assert outputs[HIT_ROW_SPLITS].numpy()[-1] == len(expected)
    assert model.get_layer("pre_model").trainable_weights == []


def test_a_model_behind_a_filter_loads_back_with_identical_outputs(saved_filter, toy_stats, toy_batch, tmp_path):
    config = small_config(**{"General.pre-model-type": "noise-filter",
                             "General.pre-model-path": str(saved_filter[0])})
    model = build_model(config, toy_stats)
    model.save(tmp_path / "main.keras")
    loaded = load_model(tmp_path / "main.keras")
    for name, value in model(toy_batch).items():
        assert np.array_equal(loaded(toy_batch)[name].numpy(), value.numpy()), name


def test_pre_pooling_maps_every_head_back_to_every_hit(toy_stats, toy_batch):
    config = small_config(**{"General.pre-model-type": "pre-pooling", "General.pre-pooling-factor": 3.0})
    model = build_model(config, toy_stats)
    outputs = model(toy_batch)
    assert all(value.shape[0] == len(toy_batch["features"]) for value in outputs.values())
    pooled = model.get_layer("pre_pooling").output[0]
    assert pooled.shape[-1] == len(FEATURE_NAMES)


def test_pre_pooling_takes_its_initial_weights_from_a_saved_model(toy_stats, tmp_path):
    config = small_config(**{"General.pre-model-type": "pre-pooling"})
    first = build_model(config, toy_stats)
    first.save(tmp_path / "pooled.keras")
    again = build_model(small_config(**{"General.pre-model-type": "pre-pooling",
                                        "General.pre-model-path": str(tmp_path / "pooled.keras")}), toy_stats)
    for a, b in zip(first.get_layer("pre_pooling").get_weights(), again.get_layer("pre_pooling").get_weights()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist .*relative to the config file"),
    ("not a model", "could not be read as a Keras model"),
    ("not a filter", "not a noise filter .*General.model: noise-filter"),
    ("unknown run", "could not be read from the store"),
])
def test_a_pre_model_that_cannot_serve_is_one_config_error(case, message, tmp_path, toy_stats):
    if case == "missing":
        source = str(tmp_path / "nowhere.keras")
    elif case == "not a model":
        source = str(tmp_path / "junk.keras")
        (tmp_path / "junk.keras").write_bytes(b"not a zip")
    elif case == "not a filter":
        source = str(tmp_path / "main.keras")
        build_model(small_config(), toy_stats).save(source)
    else:
        source = "runs:/" + "f" * 32 + "/model"
    config = small_config(**{"General.pre-model-type": "noise-filter", "General.pre-model-path": source,
                             "Tracking.tracking_uri": str(tmp_path / "mlruns")})
    with pytest.raises(ConfigError, match=message) as error:
        pre_model_of(config, FEATURE_NAMES, fetch=store_model_fetcher(config.Tracking))
    assert "General.pre-model-path" in str(error.value)


def test_a_uri_is_read_by_the_fetcher_it_is_given(saved_filter, tmp_path):
    source = "runs:/" + "a" * 32 + "/model"
    config = small_config(**{"General.pre-model-type": "noise-filter", "General.pre-model-path": source})
    asked = []

    def fetch(uri, scratch):
        asked.append(uri)
        return Path(saved_filter[0]), "a" * 32

    pre_model = pre_model_of(config, FEATURE_NAMES, fetch=fetch)
    assert asked == [source] and pre_model.run_id == "a" * 32 and pre_model.source == source
    with pytest.raises(ValueError, match="pass fetch"):  # model/ reads no store by itself
        pre_model_of(config, FEATURE_NAMES)


def test_features_the_data_lacks_are_refused(saved_filter):
    config = small_config(**{"General.pre-model-type": "noise-filter", "General.pre-model-path": str(saved_filter[0])})
    with pytest.raises(ConfigError, match="trained on the features .* but the data has"):
        pre_model_of(config, FEATURE_NAMES[:-1] + ("pad_width",))


def test_a_relative_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "main.yaml"
    path.write_text("General: {name: m, pre-model-type: noise-filter, pre-model-path: filters/f.keras}\n"
                    "Architecture: {gravnet: [{n: 4}], message_passing: [], dense_pre_gravnet: [],\n"
                    "  dense_post_message_passing: [], dense_final: []}\n"
                    "Training: [{epochs: 1, batch_size: 100, learning_rate: 0.1}]\n")
    assert load_config(path).General.pre_model_path == f"{tmp_path.as_posix()}/configs/filters/f.keras"
    override = load_config(path, ["General.pre-model-path=x.keras"]).General.pre_model_path
    assert override == "x.keras"  # a --set value is relative to where you run
