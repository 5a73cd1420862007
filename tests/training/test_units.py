"""Pieces of the training loop: stage options, freezing, the compiled step (one trace, NaN guard),
checkpoints and the metric recorder."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import tensorflow as tf

from gravtrain.config import ConfigError
from gravtrain.data import FeatureStats, simulate_events
from gravtrain.data.batching import HitBudgetBatcher
from gravtrain.model import batch_norm_options, build_model, build_training_parts, loss_options
from gravtrain.training import checkpoint as ckpt
from gravtrain.training.recorder import EpochAverages, MetricRecorder
from gravtrain.model import apply_freeze, check_freeze_patterns
from gravtrain.training.step import TrainingStep
from gravtrain.config.schema import Config
from tests.model.conftest import SMALL


@pytest.fixture(scope="module")
def events():
    return simulate_events(16, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=20, seed=4)


def make_step(config, events):
    parts = build_training_parts(config, FeatureStats.from_store(events))
    return parts.model, parts.optimizer, TrainingStep(parts.model, parts.loss, parts.optimizer)


def two_stage_config(**changes):
    stages = [{"epochs": 1, "batch_size": 3000, "learning_rate": 1e-3, "LossOptions": {"q_min": 0.5},
               "BatchNormOptions": {"viscosity": 0.5}},
              {"epochs": 1, "batch_size": 2000, "learning_rate": 1e-4, "freeze": ["gravnet_0*"]}]
    return _with_stages(stages, **changes)


def _with_stages(stages, **changes):
    data = copy.deepcopy(SMALL)
    data["Training"] = stages
    for path, value in changes.items():
        section, key = path.split(".")
        data.setdefault(section, {})[key] = value
    return Config.from_dict(data)


def test_stage_options_merge_overrides_onto_the_sections():
    config = two_stage_config()
    assert loss_options(config, 0)["q_min"] == 0.5 and loss_options(config, 1)["q_min"] == 1.0
    assert batch_norm_options(config, 0)["viscosity"] == 0.5
    assert batch_norm_options(config, 1)["viscosity"] == config.BatchNormOptions.viscosity


def test_freeze_patterns_must_match_a_layer(events):
    config = two_stage_config()
    model = build_model(config, FeatureStats.from_store(events))
    check_freeze_patterns(config, model)  # gravnet_0* matches
    bad = _with_stages([{"epochs": 1, "batch_size": 3000, "learning_rate": 1e-3, "freeze": ["gravnet0"]}])
    with pytest.raises(ConfigError, match="Training.0.freeze.0") as info:
        check_freeze_patterns(bad, model)
    assert "gravnet_0" in str(info.value)
    frozen = apply_freeze(model, ["gravnet_0*", "dense_final_*"])
    assert set(frozen) == {"gravnet_0", "gravnet_0_input", "dense_final_0"}
    assert not model.get_layer("gravnet_0").trainable and model.get_layer("gravnet_1").trainable
    apply_freeze(model, [])
    assert all(layer.trainable for layer in model.layers)


def test_train_step_traces_once_over_many_batch_sizes_and_stages_and_learns(events):
    config = two_stage_config()
    model, optimizer, step = make_step(config, events)
    losses = []
    for epoch, budget in enumerate((1500, 2500, 4000)):
        for batch in HitBudgetBatcher(events, budget, seed=1).dataset(epoch):
            values = step.train_step(batch)
            assert float(values["finite"]) == 1.0
            losses.append(float(values["objective"]))
    assert len(losses) > 10 and step.trace_count["train"] == 1
    assert {"loss/attractive", "regularizer/gravnet_space_regularizer_0", "grad_norm", "hits"} <= set(values)
    for batch in HitBudgetBatcher(events, 2500, shuffle=False).dataset(0):
        values, predictions = step.validate_step(batch)
        assert predictions["beta"].shape[0] == batch["features"].shape[0] and "loss/total" in values
    assert step.trace_count["validate"] == 1

    # A new stage that changes only options (variables) keeps the traced step, which sees the new values.
    first = step.train_step
    optimizer.learning_rate.assign(0.0)
    step.loss.set_options(**loss_options(config, 1))
    step.compile()
    before = [v.numpy().copy() for v in model.trainable_variables]
    step.train_step(batch)
    assert step.train_step is first and step.trace_count["train"] == 1
    for old, variable in zip(before, model.trainable_variables):
        np.testing.assert_array_equal(old, variable.numpy(), err_msg=variable.path)  # learning rate 0 seen
    # Freezing a layer changes the trainable set: new steps, one new trace.
    apply_freeze(model, ["gravnet_0*"])
    step.compile()
    step.train_step(batch)
    assert step.train_step is not first and step.trace_count["train"] == 2


def test_a_recomputing_step_traces_once_and_a_stage_switches_it(events):
    config = two_stage_config()
    model, optimizer, step = make_step(config, events)
    step.compile(recompute=True)
    recomputing = step.train_step
    assert step.trace_count["train"] == 0
    for epoch, budget in enumerate((1500, 4000)):
        for batch in HitBudgetBatcher(events, budget, seed=1).dataset(epoch):
            assert float(step.train_step(batch)["finite"]) == 1.0
    assert step.trace_count["train"] == 1
    step.compile()  # None: as before, so the traced step stays
    step.compile(recompute=True)
    step.train_step(batch)
    assert step.train_step is recomputing and step.trace_count["train"] == 1
    step.compile(recompute=False)
    step.train_step(batch)
    assert step.train_step is not recomputing and step.trace_count["train"] == 2


def test_a_step_on_several_devices_takes_one_batch_each_and_no_stage_may_have_fewer(events):
    from gravtrain.training.loop import _check_batches_per_step
    from gravtrain.training.staged import _groups

    assert list(_groups(iter(range(7)), 3)) == [(0, 1, 2), (3, 4, 5)]  # the last, short group is left out
    assert list(_groups(iter(range(2)), 1)) == [(0,), (1,)]
    config = _with_stages([{"epochs": 1, "batch_size": 1500, "learning_rate": 1e-3},
                           {"epochs": 1, "batch_size": 10 ** 6, "learning_rate": 1e-3}], **{"General.devices": 2})
    with pytest.raises(ConfigError, match="Training.1.batch_size: packs the 16 training events") as info:
        _check_batches_per_step(config, events)
    assert "Training.0" not in str(info.value)  # the first stage makes enough batches
    _check_batches_per_step(_with_stages([{"epochs": 1, "batch_size": 10 ** 6, "learning_rate": 1e-3}]), events)


def test_nan_guard_leaves_weights_and_state_untouched(events):
    config = two_stage_config()
    model, optimizer, step = make_step(config, events)
    batch = next(iter(HitBudgetBatcher(events, 3000, seed=1).dataset(0)))
    step.train_step(batch)
    before = [v.numpy().copy() for v in model.variables]
    iterations = int(optimizer.iterations)
    poisoned = dict(batch)
    poisoned["features"] = tf.tensor_scatter_nd_update(batch["features"], [[0, 0]], [np.nan])
    values = step.train_step(poisoned)
    assert float(values["finite"]) == 0.0
    assert int(optimizer.iterations) == iterations
    for old, variable in zip(before, model.variables):
        np.testing.assert_array_equal(old, variable.numpy(), err_msg=variable.path)


def test_checkpoint_round_trip(events, tmp_path):
    config = two_stage_config()
    model, optimizer, step = make_step(config, events)
    for batch in HitBudgetBatcher(events, 3000, seed=1).dataset(0):
        step.train_step(batch)
    progress = ckpt.Progress(stage=1, stage_epoch=0, epoch=1, step=7, batch_in_epoch=3, best_val_loss=0.5,
                             stage_end_reasons=["epochs"], epoch_averages={"sums": {"loss": 1.0}, "batches": 3})
    first = ckpt.save_checkpoint(tmp_path, model, optimizer, progress, keep_as="stage-1-end")
    progress.step = 9
    second = ckpt.save_checkpoint(tmp_path, model, optimizer, progress)
    assert ckpt.latest_checkpoint(tmp_path) == second and not first.exists()
    assert (tmp_path / "stage-1-end" / ckpt.PROGRESS_FILE).exists()

    other, other_optimizer, _ = make_step(config, events)
    restored = ckpt.restore_checkpoint(second, other, other_optimizer)
    assert restored == progress
    for a, b in zip(model.variables, other.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for a, b in zip(optimizer.variables, other_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()))


class ListTracker:
    def __init__(self):
        self.records = []

    def log_metrics(self, metrics, step):
        self.records.append((step, dict(metrics)))


def test_recorder_windows_state_and_resume_skips():
    tracker = ListTracker()
    recorder = MetricRecorder(tracker, record_frequency=2, history={"objective": ([1, 2], [9.0, 8.0])})
    for step in range(1, 5):
        recorder.add_batch({"objective": float(step), "lr": 0.1 * step, "finite": 1.0, "hits": 10.0}, step)
    assert tracker.records == [(2, {"lr": pytest.approx(0.2)}), (4, {"objective": 3.5, "lr": pytest.approx(0.4)})]
    assert recorder.curves["objective"] == ([1, 2, 4], [9.0, 8.0, 3.5])  # the stored history, then new records
    averages = EpochAverages()
    averages.add({"loss": 1.0, "hits": 100.0}, 0.5)
    resumed = EpochAverages(averages.state())
    resumed.add({"loss": 3.0, "hits": 100.0}, 0.5)
    assert resumed.means() == {"loss": 2.0} and resumed.hits_per_second == 200.0


def test_the_wall_clock_counts_steps_as_the_stages_less_their_other_parts(monkeypatch):
    from gravtrain.training import wall_clock

    now = iter([10.0, 12.5, 20.0, 21.0])
    monkeypatch.setattr(wall_clock.time, "perf_counter", lambda: next(now))
    clock = wall_clock.WallClock()
    with clock.part("physics"):
        pass
    with clock.part("commits"):
        pass
    clock.add_stages(30.0)
    assert clock.breakdown() == {"events": 0.0, "model": 0.0, "run start": 0.0, "steps": 26.5, "validation": 0.0,
                                 "physics": 2.5, "commits": 1.0, "final": 0.0}
    assert clock.summary() == "30 s: steps 26 s (88 %), physics 2 s (8 %), commits 1 s (3 %)"
    with pytest.raises(ValueError, match="unknown wall-time part 'plots'"):
        with clock.part("plots"):
            pass


def test_the_validation_pass_gives_the_physics_a_pass_of_its_own_gives(events):
    """The epoch's physics metrics score the validation pass's predictions instead of running the model again:
    the same showers, and so the same metrics, as ``evaluate_model``."""
    from gravtrain.config.schema import Evaluation
    from gravtrain.evaluation import batch_predictions, concatenate_predictions, evaluate_model, score_predictions

    model, _, step = make_step(two_stage_config(), events)
    parts = [batch_predictions(step.validate_step(batch)[1], int(batch["features"].shape[0]))
             for batch in HitBudgetBatcher(events, 2500, shuffle=False).dataset(0)]
    options = Evaluation(beta_threshold=0.1, distance_threshold=0.8)
    from_validation = score_predictions(concatenate_predictions(parts), events, options, figures=False).metrics
    own = evaluate_model(model, events, options, figures=False).metrics
    assert from_validation.n_showers == own.n_showers > 0 and from_validation.n_matched == own.n_matched
    for name, value in own.to_dict().items():
        assert from_validation.to_dict()[name] == pytest.approx(value, rel=1e-5, nan_ok=True), name
    with pytest.raises(ValueError, match="cover"):
        score_predictions(concatenate_predictions(parts[:1]), events, options, figures=False)
