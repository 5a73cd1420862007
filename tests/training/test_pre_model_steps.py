"""The compiled step with a pre-model: behind a noise filter the loss takes the kept hits' truth; with
pre-pooling it sees every hit; one trace over batches of any size; the filter never changes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gravtrain.data import FEATURE_NAMES, FeatureStats, simulate_events
from gravtrain.data.batching import HitBudgetBatcher
from gravtrain.model import HIT_INDEX, HIT_ROW_SPLITS, build_model
from gravtrain.model import apply_freeze
from gravtrain.model import INPUT_NAMES as MODEL_INPUTS
from tests.model.conftest import small_config
from tests.training.test_units import make_step


@pytest.fixture(scope="module")
def events():
    return simulate_events(16, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=40, seed=8)


@pytest.fixture(scope="module")
def filter_path(events, tmp_path_factory):
    path = tmp_path_factory.mktemp("filter") / "filter.keras"
    model = build_model(small_config(**{"General.model": "noise-filter", "Architecture.knn": "brute"}), FeatureStats.from_store(events))
    kernel, bias = model.get_layer("signal_score").get_weights()
    model.get_layer("signal_score").set_weights([kernel * 100.0, bias])  # scores far from the threshold
    model.save(path)
    return path


def compiled(model):
    """The model's inference pass as a compiled function, like the step's: an eager pass may round a score
    differently and so select or pool other hits."""
    return tf.function(lambda inputs: model(inputs, training=False))


def batches(events, budgets):
    for epoch, budget in enumerate(budgets):
        yield from HitBudgetBatcher(events, budget, seed=1).dataset(epoch)


def test_behind_a_filter_the_loss_takes_the_truth_of_the_kept_hits(events, filter_path):
    config = small_config(**{"General.pre-model-type": "noise-filter", "General.pre-model-path": str(filter_path),
                             "General.pre-model-threshold": 0.5, "Architecture.knn": "brute"})
    model, _, step = make_step(config, events)
    loss = step.loss
    apply_freeze(model, [])  # a stage unfreezes every layer its patterns do not match
    filter_weights = [w.numpy().copy() for w in model.get_layer("pre_model").weights]
    batch = next(iter(batches(events, [3000])))
    values, _ = step.validate_step(batch)
    predictions = compiled(model)({name: batch[name] for name in MODEL_INPUTS})
    index = predictions[HIT_INDEX]
    truth = {name: tf.gather(value, index) for name, value in batch.items() if name not in MODEL_INPUTS}
    is_track = tf.gather(batch["features"][:, FEATURE_NAMES.index("is_track")], index)
    expected, _ = loss(predictions, truth, predictions[HIT_ROW_SPLITS], is_track)
    assert float(values["loss/total"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(values["hits_kept"]) == len(index) < float(values["hits"])
    for batch in batches(events, [1500, 2500, 4000]):
        assert float(step.train_step(batch)["finite"]) == 1.0
    assert step.trace_count["train"] == 1
    for before, weight in zip(filter_weights, model.get_layer("pre_model").weights):
        assert np.array_equal(before, weight.numpy())


def test_with_pre_pooling_the_loss_sees_every_hit_and_the_pooling_learns(events):
    config = small_config(**{"General.pre-model-type": "pre-pooling", "General.pre-pooling-factor": 4.0})
    model, _, step = make_step(config, events)
    loss = step.loss
    batch = next(iter(batches(events, [3000])))
    values, _ = step.validate_step(batch)
    predictions = compiled(model)({name: batch[name] for name in MODEL_INPUTS})
    assert all(value.shape[0] == batch["features"].shape[0] for value in predictions.values())
    truth = {name: value for name, value in batch.items() if name not in MODEL_INPUTS}
    expected, _ = loss(predictions, truth, batch["row_splits"], batch["features"][:, FEATURE_NAMES.index("is_track")])
    assert float(values["loss/total"]) == pytest.approx(float(expected), rel=1e-5)
    assert "hits_kept" not in values
    pooling_before = [w.numpy().copy() for w in model.get_layer("pre_pooling").trainable_weights]
    for batch in batches(events, [1500, 2500, 4000]):
        assert float(step.train_step(batch)["finite"]) == 1.0
    assert step.trace_count["train"] == 1
    after = model.get_layer("pre_pooling").trainable_weights
    assert pooling_before and any(not np.array_equal(a, b.numpy()) for a, b in zip(pooling_before, after))
