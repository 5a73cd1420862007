"""The model compiler: structure and names from the config, events kept apart, saving, one trace, regularisers."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.config import ConfigError, load_config
from gravtrain.data import FeatureStats, batch_element_spec
from gravtrain.data.names import FEATURE_INDEX
from gravtrain.layers import HEAD_NAMES, N_PID_CLASSES
from gravtrain.model import build_model, model_summary
from tests.model.conftest import small_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def layer_names(model):
    return [layer.name for layer in model.layers]


def test_structure_and_names_follow_the_config(toy_stats):
    model = build_model(small_config(), toy_stats)
    names = set(layer_names(model))
    for i in (0, 1):
        for expected in (f"dense_pre_gravnet_{i}_0", f"dense_pre_gravnet_{i}_1", f"batch_norm_pre_gravnet_{i}",
                         f"gravnet_{i}", f"gravnet_space_regularizer_{i}", f"batch_norm_gravnet_{i}",
                         f"message_passing_{i}", f"batch_norm_message_passing_{i}",
                         f"dense_post_message_passing_{i}_0", f"batch_norm_post_message_passing_{i}"):
            assert expected in names
    assert {"input_conditioning", "hit_track_embedding", "batch_norm_embedding", "concatenate_iterations",
            "dense_final_0", "batch_norm_final", "condensation_heads"} <= names
    assert "gravnet_2" not in names and "fill_space_regularizer" not in names
    assert not any(name.endswith("_layer_norm") or name.endswith("_dropout") for name in names)
    gravnet = model.get_layer("gravnet_1")
    assert (gravnet.n_neighbours, gravnet.n_filters, gravnet.n_propagate, gravnet.n_dimensions) == (4, 16, 8, 3)
    assert model.get_layer("message_passing_0").n_feature_transformation == [8, 8]
    assert model.get_layer("dense_pre_gravnet_0_1").units == 16
    assert model.get_layer("dense_final_0").activation.__name__ == "elu"
    # Building twice gives the same names, so freeze patterns and plots are stable.
    assert layer_names(build_model(small_config(), toy_stats)) == layer_names(model)


def test_options_add_and_remove_layers(toy_stats):
    model = build_model(small_config(**{
        "General.use_layer_normalization": True, "General.use_fill_space": True,
        "DenseOptions.dropout": 0.1, "DenseOptions.kernel_regularizer": "l2",
        "Architecture.message_passing": [], "Architecture.n_cluster_space_coordinates": 5,
        "Architecture.fix_distance_scale": False,
    }), toy_stats)
    names = set(layer_names(model))
    assert {"dense_pre_gravnet_0_0_dropout", "dense_pre_gravnet_0_0_layer_norm", "gravnet_1_layer_norm",
            "dense_final_0_layer_norm", "fill_space_regularizer", "cluster_space_seed_projection"} <= names
    assert not any(name.startswith("message_passing") for name in names)
    assert model.get_layer("dense_final_0").kernel_regularizer is not None
    assert model.get_layer("cluster_space_seed_projection").units == 2
    assert model.output["ccoords"].shape[-1] == 5
    assert "dist" in model.get_layer("condensation_heads").dense


def test_forward_outputs_and_stored_statistics(toy_stats, toy_batch):
    model = build_model(small_config(), toy_stats)
    outputs = model(toy_batch, training=False)
    n_hits = toy_batch["features"].shape[0]
    assert set(outputs) == set(HEAD_NAMES)
    widths = {"beta": 1, "ccoords": 3, "dist": 1, "pid": N_PID_CLASSES, "pos": 2}
    for name, width in widths.items():
        assert tuple(outputs[name].shape) == (n_hits, width)
    assert all(np.isfinite(value.numpy()).all() for value in outputs.values())
    conditioning = model.get_layer("input_conditioning").get_config()
    restored = FeatureStats.from_dict({**conditioning, "std": conditioning["scale"], "n_hits": 1})
    np.testing.assert_allclose(restored.mean, toy_stats.mean)
    np.testing.assert_allclose(restored.std, toy_stats.scale)
    np.testing.assert_array_equal(restored.asinh_scale, toy_stats.asinh_scale)
    assert restored.asinh_scale[FEATURE_INDEX["energy"]] > 0
    assert tuple(conditioning["names"]) == toy_stats.names
    # The layer conditions as FeatureStats.standardise does in NumPy (asinh of the energy, then standardise).
    probe = keras.Model(model.inputs, model.get_layer("input_conditioning").output)
    np.testing.assert_allclose(probe(toy_batch).numpy(), toy_stats.standardise(toy_batch["features"]), rtol=1e-5,
                               atol=1e-5)


def test_events_never_mix(toy_stats, toy_batch):
    """Changing every hit of one event leaves the outputs of all other events untouched."""
    model = build_model(small_config(), toy_stats)
    row_splits = toy_batch["row_splits"]
    begin, end = int(row_splits[4]), int(row_splits[5])
    changed = dict(toy_batch, features=toy_batch["features"].copy())
    changed["features"][begin:end, :] *= 1.7
    before, after = model(toy_batch, training=False), model(changed, training=False)
    others = np.r_[0:begin, end:int(row_splits[-1])]
    for name in HEAD_NAMES:
        np.testing.assert_array_equal(before[name].numpy()[others], after[name].numpy()[others], err_msg=name)
    assert not np.allclose(before["ccoords"].numpy()[begin:end], after["ccoords"].numpy()[begin:end])


def test_saved_model_loads_with_identical_outputs(toy_stats, toy_batch, tmp_path):
    model = build_model(small_config(**{"General.use_fill_space": True}), toy_stats)
    model(toy_batch, training=True)  # move the batch-norm state away from its initial values
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected, actual = model(toy_batch, training=False), loaded(toy_batch, training=False)
    for name in HEAD_NAMES:
        np.testing.assert_array_equal(expected[name].numpy(), actual[name].numpy(), err_msg=name)
    assert layer_names(loaded) == layer_names(model)


def test_regularisers_add_losses_in_training_only(toy_stats, toy_batch):
    model = build_model(small_config(**{"General.use_fill_space": True,
                                        "DenseOptions.kernel_regularizer": "l1"}), toy_stats)
    model(toy_batch, training=True)
    regularisers = [model.get_layer(name) for name in
                    ("gravnet_space_regularizer_0", "gravnet_space_regularizer_1", "fill_space_regularizer")]
    values = [float(layer.value) for layer in regularisers]
    assert all(value > 0 for value in values)
    n_dense = sum(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    assert len(model.losses) == 3 + n_dense
    expected = sum(layer.strength * value for layer, value in zip(regularisers, values))
    own = sum(float(loss) for layer in regularisers for loss in layer.losses)
    np.testing.assert_allclose(own, expected, rtol=1e-5)
    model(toy_batch, training=False)
    assert len(model.losses) == n_dense  # kernel regularisers only


def test_twenty_batch_sizes_trace_the_forward_function_once(toy_stats, toy_store):
    model = build_model(small_config(), toy_stats)
    spec = batch_element_spec()
    traces = []

    @tf.function(input_signature=[{"features": spec["features"], "row_splits": spec["row_splits"]}])
    def forward(batch):
        traces.append(1)
        return model(batch, training=True)["beta"]

    rng = np.random.default_rng(0)
    for n_events in range(1, 21):
        events = rng.choice(toy_store.n_events, size=min(n_events, toy_store.n_events), replace=False)
        batch = toy_store.gather(np.sort(events))
        out = forward({"features": batch["features"], "row_splits": batch["row_splits"].astype(np.int32)})
        assert out.shape[0] == batch["features"].shape[0]
    assert len(traces) == 1


@pytest.mark.parametrize("name", ["toy.yaml", "hgcal.yaml"])
def test_shipped_configs_build(name):
    model = build_model(load_config(CONFIGS / name), FeatureStats.neutral())
    summary = model_summary(model)
    assert "gravnet_0" in summary and summary.rstrip().splitlines()[-1].startswith("Parameters: ")
    assert model.count_params() > 10_000


def test_statistics_must_name_the_needed_features():
    stats = FeatureStats.neutral(("energy", "x", "y", "is_track"))
    with pytest.raises(ValueError, match="lack z"):
        build_model(small_config(), stats)
