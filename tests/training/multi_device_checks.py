"""Checks of training on several devices, run as ``python -m tests.training.multi_device_checks DIR`` in a
process of its own: the two logical CPU devices it needs must be set up before TensorFlow starts, which a
pytest process that already ran TensorFlow cannot do. Prints one JSON line of every check's results;
``test_multi_device.py`` reads them."""

from __future__ import annotations

import json
import sys

import tensorflow as tf

tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from gravtrain.config.schema import Config  # noqa: E402
from gravtrain.data import FeatureStats, simulate_events  # noqa: E402
from gravtrain.data.batching import HitBudgetBatcher  # noqa: E402
from gravtrain.model import (  # noqa: E402
    build_model, build_training_parts, data_parallel_strategy,
)
from gravtrain.training.step import TrainingStep  # noqa: E402
from tests.model.conftest import small_config  # noqa: E402

#: The oracle needs an update linear in the gradient: plain SGD, no momentum or decay, clipping far off. Dropout
#: and kernel regularisers are on, so their seed state and losses are checked too.
SGD = {"Optimizer.name": "sgd", "Optimizer.clipnorm": 1e9, "DenseOptions.dropout": 0.2,
       "DenseOptions.kernel_regularizer": "l2", "DenseOptions.kernel_regularizer_rate": 1e-3}


#: One GravNet iteration and one message passing, for the checks whose point is not the iterations (the
#: families' own parts, the training loop). SMALL's second iteration made these two checks take 130 s instead of
#: 80 s (one process on an idle 2-core machine), mostly in tracing. The oracle of the object-condensation model
#: keeps both iterations.
ONE_ITERATION = {"Architecture.gravnet": [{"n": 6, "n_filters": 16, "n_propagate": 8}],
                 "Architecture.message_passing": [{"n": 8}], "Architecture.dense_pre_gravnet": [{"n": 16}]}


def components(variable) -> list[np.ndarray]:
    """Each device's copy of a variable (one array for a variable that is not mirrored)."""
    value = variable.value
    copies = value.values if hasattr(value, "values") else (value,)
    return [np.asarray(copy.numpy()) for copy in copies]


def make(config: Config, stats: FeatureStats, strategy):
    keras.utils.set_random_seed(3)
    parts = build_training_parts(config, stats, strategy)
    return parts.model, parts.optimizer, TrainingStep(parts.model, parts.loss, parts.optimizer, strategy=strategy)


def every_variable(model, optimizer) -> list:
    return list(model.variables) + list(optimizer.variables)


def snapshot(variables) -> list[np.ndarray]:
    return [components(v)[0].copy() for v in variables]


def restore(variables, values) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)


def largest_difference(variables, expected) -> float:
    """The largest |copy - expected| over every copy of every variable (scaled by the expected magnitude)."""
    worst = 0.0
    for variable, value in zip(variables, expected):
        for copy in components(variable):
            scale = max(1.0, float(np.max(np.abs(value), initial=0.0)))
            worst = max(worst, float(np.max(np.abs(copy.astype(np.float64) - value), initial=0.0)) / scale)
    return worst


def copies_agree(variables) -> bool:
    return all(all(np.array_equal(c, components(v)[0]) for c in components(v)) for v in variables)


def oracle(events, config: Config, starts=(0, 2, 4), recompute_modes=(False, True),
           then_nan_guard: bool = False) -> dict:
    """Steps on two devices against the single-device step on each batch alone, from the same start.

    With SGD (an update linear in the gradient) the two-device weights after a step must be the mean of the two
    single-device results, and so must the batch-norm statistics and the regularisers' records (each device
    normalises with its own update; the copies get the mean). ``then_nan_guard``: then `nan_guard` with the
    two-device step as traced."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    stats = FeatureStats.from_store(events)
    batches = list(HitBudgetBatcher(events, 1500, seed=1).dataset(0))[:6]
    single_model, single_optimizer, single = make(config, stats, None)
    strategy = data_parallel_strategy(2)
    model, optimizer, mirrored = make(config, stats, strategy)
    reference, variables = every_variable(single_model, single_optimizer), every_variable(model, optimizer)
    assert [v.shape for v in reference] == [v.shape for v in variables]
    restore(variables, snapshot(reference))
    results = {"traces": {}}
    for recompute in recompute_modes:
        single.compile(recompute=recompute)
        mirrored.compile(recompute=recompute)
        for start_batch in starts:  # steps, each from where the two-device training is
            start = snapshot(variables)
            after, metrics = [], []
            for batch in batches[start_batch:start_batch + 2]:
                restore(reference, start)
                metrics.append({name: float(value) for name, value in single.train_step(batch).items()})
                after.append(snapshot(reference))
            expected = [(a.astype(np.float64) + b) / 2 if a.dtype.kind == "f" else a for a, b in zip(*after)]
            values = {name: float(value)
                      for name, value in mirrored.train_step(*batches[start_batch:start_batch + 2]).items()}
            results[f"{'recompute' if recompute else 'plain'} {start_batch}"] = {
                "difference": largest_difference(variables, expected),
                "moved": largest_difference(variables, start),
                "objective": [values["objective"], (metrics[0]["objective"] + metrics[1]["objective"]) / 2],
                "hits": [values["hits"], metrics[0]["hits"] + metrics[1]["hits"]],
                "agree": copies_agree(variables),
            }
        results["traces"][str(recompute)] = mirrored.trace_count["train"]
    if then_nan_guard:
        results["nan_guard"] = nan_guard(mirrored, variables, batches)
    return results


def families(events, directory: str) -> dict:
    """The oracle's first step for the other model families: a noise filter, a network behind learned
    pre-pooling and one behind a (saved) noise filter. (Recomputation is the same for every family:
    ``tests/model/test_recompute.py``.)"""
    import os

    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    saved_filter = os.path.join(directory, "filter.keras")
    build_model(small_config(**ONE_ITERATION, **{"General.model": "noise-filter"}),
                FeatureStats.from_store(events)).save(saved_filter)
    configs = {
        "noise filter": small_config(**SGD, **ONE_ITERATION, **{"General.model": "noise-filter"}),
        "pre-pooling": small_config(**SGD, **ONE_ITERATION, **{"General.pre-model-type": "pre-pooling"}),
        "behind a noise filter": small_config(**SGD, **ONE_ITERATION, **{
            "General.pre-model-type": "noise-filter", "General.pre-model-path": saved_filter,
            "General.pre-model-threshold": 0.3}),
    }
    return {name: oracle(events, config, starts=(0,), recompute_modes=(False,)) for name, config in configs.items()}


def nan_guard(mirrored: TrainingStep, variables: list, batches: list) -> dict:
    """A non-finite value on one device: no device applies the step, and the state is restored everywhere."""
    before = snapshot(variables)
    poisoned = dict(batches[3])
    poisoned["t_energy"] = tf.tensor_scatter_nd_update(poisoned["t_energy"], [[0, 0]],
                                                       tf.constant([np.nan], poisoned["t_energy"].dtype))
    values = mirrored.train_step(batches[2], poisoned)
    return {"finite": float(values["finite"]), "difference": largest_difference(variables, before),
            "agree": copies_agree(variables), "traces": mirrored.trace_count["train"]}


def end_to_end(directory: str) -> dict:
    """``gravtrain.train`` of a small config with ``General.devices: 2``, tracked, and the model it logged."""
    import os

    import gravtrain
    from gravtrain.config import ConfigError

    os.chdir(directory)
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    data = small_config(**ONE_ITERATION).to_dict()
    data["General"]["devices"] = 2
    data["Data"] = {"toy": {"n_train_events": 12, "n_val_events": 4, "n_particles": [1, 3], "noise_hits": 20,
                            "energy_range": [2.0, 30.0]}}
    # (a second stage that switches options but keeps the step's trace; recomputation on two devices is the
    # oracle's)
    data["Training"] = [{"epochs": 2, "batch_size": 1500, "learning_rate": 1e-3},
                        {"epochs": 1, "batch_size": 2500, "learning_rate": 1e-4}]
    result = gravtrain.train(Config.from_dict(data))
    variables = list(result.model.variables)
    data["General"]["devices"] = 3
    try:
        gravtrain.train(Config.from_dict(data))
        refused = ""
    except ConfigError as error:
        refused = str(error)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri="mlruns")
    run = client.get_run(result.run_id)
    epochs = sorted(m.step for m in client.get_metric_history(result.run_id, "epoch/objective"))
    # The last checkpoint, read into a new model and optimizer on the two devices, holds the final weights.
    from gravtrain.training import checkpoint

    latest = checkpoint.latest_checkpoint(result.run_dir)
    stats = FeatureStats.from_store(simulate_events(12, n_particles=(1, 3), noise_hits=20, seed=1))
    restored, optimizer, _ = make(Config.from_dict(data), stats, data_parallel_strategy(2))
    progress = checkpoint.restore_checkpoint(latest, restored, optimizer)
    # (The regularisers' records are left out: they record the evaluation's passes, after the checkpoint.)
    kept = [i for i, v in enumerate(variables) if not ("_regularizer_" in v.path and v.path.endswith("/value"))]
    checkpoint_difference = largest_difference([restored.variables[i] for i in kept],
                                               [snapshot(variables)[i] for i in kept])
    import mlflow.keras

    model = mlflow.keras.load_model(f"runs:/{result.run_id}/model")
    batch = next(iter(HitBudgetBatcher(simulate_events(2, seed=9), 4000, shuffle=False).dataset(0)))
    inputs = {"features": batch["features"], "row_splits": batch["row_splits"]}
    outputs = result.model(inputs, training=False)
    reloaded = model(inputs, training=False)
    return {
        "status": run.info.status, "devices_param": run.data.params.get("General.devices"),
        "stage_end_reasons": result.stage_end_reasons, "epochs": epochs, "agree": copies_agree(variables),
        "checkpoint_difference": checkpoint_difference, "checkpoint_step": progress.step,
        "restored_agree": copies_agree(list(restored.variables) + list(optimizer.variables)),
        "refused": refused, "efficiency": result.metrics.get("physics/efficiency"),
        "reload_difference": max(float(np.max(np.abs(np.asarray(outputs[name]) - np.asarray(reloaded[name]))))
                                 for name in outputs if np.asarray(outputs[name]).dtype.kind == "f"),
    }


if __name__ == "__main__":
    directory = sys.argv[1]
    # The end-to-end training first, in the default float32; the oracles then switch Keras to float64.
    found = {"end_to_end": end_to_end(directory)}
    events = simulate_events(16, n_particles=(1, 3), energy_range=(1.0, 20.0), noise_hits=20, seed=4)
    found["oracle"] = oracle(events, small_config(**SGD), then_nan_guard=True)
    found["families"] = families(events, directory)
    print("RESULT " + json.dumps(found))
