"""What a built model tells the rest of gravtrain about itself: its kind and its GravNet spaces."""

from __future__ import annotations

from gravtrain.model import build_model, gravnet_space_outputs, model_kind

from .conftest import small_config


def test_a_condensation_model_offers_each_iterations_gravnet_space_in_order(toy_stats):
    config = small_config()
    model = build_model(config, toy_stats)
    spaces = gravnet_space_outputs(model)
    assert model_kind(model) == "object-condensation" == config.General.model
    assert list(spaces) == [f"gravnet_{i}" for i in range(len(config.Architecture.gravnet))]
    assert all(space.shape[-1] == config.Architecture.n_gravnet_space_coordinates for space in spaces.values())


def test_a_noise_filter_and_a_pooled_model_offer_no_per_hit_space(toy_stats):
    noise_filter = build_model(small_config(**{"General.model": "noise-filter"}), toy_stats)
    assert model_kind(noise_filter) == "noise-filter" and gravnet_space_outputs(noise_filter) == {}
    pooled = build_model(small_config(**{"General.pre-model-type": "pre-pooling"}), toy_stats)
    assert model_kind(pooled) == "object-condensation" and gravnet_space_outputs(pooled) == {}
