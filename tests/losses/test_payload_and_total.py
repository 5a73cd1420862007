"""payload_terms, the total loss and the ObjectCondensationLoss wrapper against the NumPy reference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from gravtrain.losses import (
    LOSS_TERM_NAMES,
    ObjectCondensationLoss,
    object_condensation_loss,
    payload_terms,
)

from tests.numerics import numeric_gradient

from .conftest import random_batch
from .reference import payload_reference, total_reference

OPTIONS = {
    "oc_implementation": "hinge", "repulsion_normalization": "object", "q_min": 0.5, "beta_loss_scale": 1.5, "noise_scale": 0.7,
    "use_average_cc_pos": 0.9999, "energy_loss_weight": 0.3, "position_loss_weight": 0.2,
    "timing_loss_weight": 0.4, "classification_loss_weight": 0.6, "too_much_beta_scale": 0.8, "beta_push": 1.1,
}


def loss_inputs(batch):
    """(predictions, truth, row_splits) of the total loss from a random batch."""
    predictions = {"beta": batch["beta"], "ccoords": batch["ccoords"], "dist": batch["dist"],
                   **batch["predictions"]}
    truth = {"t_idx": batch["t_idx"], "t_spectator": batch["spectator"], **batch["truth"]}
    return predictions, truth, batch["row_splits"]


def reference_total(predictions, truth, row_splits, options, is_track=None):
    batch = {"beta": predictions["beta"], "ccoords": predictions["ccoords"], "t_idx": truth["t_idx"],
             "row_splits": row_splits, "predictions": predictions, "truth": truth, "is_track": is_track}
    return total_reference(batch, options)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_payload_matches_reference(seed):
    batch = random_batch(seed)
    assert np.any(batch["truth"]["t_pid"][np.ravel(batch["t_idx"]) >= 0, 5] == 1.0)  # some ambiguous hits
    got = payload_terms(batch["beta"], batch["t_idx"], batch["predictions"], batch["truth"])
    want = payload_reference(batch["beta"], batch["t_idx"], batch["predictions"], batch["truth"])
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-5, err_msg=name)


def test_payload_ignores_noise_and_ambiguous_class():
    batch = random_batch(4)
    base = payload_terms(batch["beta"], batch["t_idx"], batch["predictions"], batch["truth"])
    changed = {name: value.copy() for name, value in batch["predictions"].items()}
    noise = np.ravel(batch["t_idx"]) < 0
    ambiguous = batch["truth"]["t_pid"][:, 5] == 1.0
    for name in changed:
        changed[name][noise] = changed[name][noise] * 3.0 + 1.0
    changed["pid"][ambiguous] = np.eye(6)[0]
    again = payload_terms(batch["beta"], batch["t_idx"], changed, batch["truth"])
    for name in base:
        np.testing.assert_allclose(again[name].numpy(), base[name].numpy(), rtol=1e-12, err_msg=name)


@pytest.mark.parametrize("implementation,normalization", [("hinge", "object"), ("basic", "event"),
                                                           ("hinge", "event")])
def test_total_matches_reference_with_gradients(implementation, normalization):
    options = {**OPTIONS, "oc_implementation": implementation, "repulsion_normalization": normalization}
    batch = random_batch(6)
    predictions, truth, row_splits = loss_inputs(batch)
    is_track = batch["is_track"]
    variables = {name: tf.Variable(value) for name, value in predictions.items()}
    with tf.GradientTape() as tape:
        total, metrics = object_condensation_loss(variables, truth, row_splits, options, is_track)
    assert set(metrics) == {"loss/total"} | {f"loss/{name}" for name in LOSS_TERM_NAMES}
    assert metrics["loss/total"] is total
    np.testing.assert_allclose(total.numpy(), reference_total(predictions, truth, row_splits, options, is_track),
                               rtol=1e-5)

    checked = ("beta", "ccoords", "dist", "energy_high_quantile", "pos", "time_unc", "pid")
    grads = tape.gradient(total, [variables[name] for name in checked])
    for name, grad in zip(checked, grads):
        def loss_of(value, name=name):
            return reference_total({**predictions, name: value}, truth, row_splits, options, is_track)

        np.testing.assert_allclose(tf.convert_to_tensor(grad).numpy(), numeric_gradient(loss_of, predictions[name]),
                                   rtol=1e-5, atol=1e-7, err_msg=name)


def test_energy_quantiles_do_not_train_the_energy_correction():
    batch = random_batch(2)
    correction = tf.Variable(batch["predictions"]["energy_corr"])
    with tf.GradientTape(persistent=True) as tape:
        terms = payload_terms(batch["beta"], batch["t_idx"], {**batch["predictions"], "energy_corr": correction},
                              batch["truth"])
    assert tape.gradient(terms["energy_quantiles"], correction) is None
    assert np.any(tape.gradient(terms["energy"], correction).numpy() != 0.0)


def test_payload_finite_at_beta_0_and_1():
    batch = random_batch(8)
    beta = tf.Variable(np.where(np.arange(len(batch["beta"]))[:, None] % 2 == 0, 1.0, 0.0).astype(np.float32))
    predictions = {name: tf.constant(value, tf.float32) for name, value in batch["predictions"].items()}
    with tf.GradientTape() as tape:
        terms = payload_terms(beta, batch["t_idx"], predictions, batch["truth"])
        total = tf.add_n(list(terms.values()))
    assert all(np.isfinite(value.numpy()) for value in terms.values())
    assert np.all(np.isfinite(tape.gradient(total, beta).numpy()))


def one_event(beta, t_idx, seed=0):
    """(predictions, truth, row_splits) for a single event with the given β and t_idx, float64."""
    rng = np.random.default_rng(seed)
    events = [list(t_idx)]
    batch = random_batch(seed, events)
    batch["t_idx"] = np.asarray(t_idx, np.int32)[:, None]  # keep the given order
    batch["beta"] = np.asarray(beta, np.float64)[:, None]
    batch["ccoords"] = rng.normal(size=(len(beta), 3))
    return loss_inputs(batch)


def total_and_beta_gradient(loss, predictions, truth, row_splits):
    beta = tf.Variable(predictions["beta"])
    with tf.GradientTape() as tape:
        total, metrics = loss({**predictions, "beta": beta}, truth, row_splits)
    return total.numpy(), tape.gradient(total, beta).numpy().ravel(), metrics


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_too_much_beta_penalises_extra_high_beta_hits(scale):
    # Object 0: condensation point β = 0.95 and a second high-β hit (0.9): T = (0.9 − 0.5) / 0.5 = 0.8.
    inputs = one_event([0.95, 0.9, 0.2, 0.1], [0, 0, 0, -1])
    loss = ObjectCondensationLoss(**{**OPTIONS, "too_much_beta_scale": 0.0, "beta_push": 0.0})
    total_off, grad_off, metrics = total_and_beta_gradient(loss, *inputs)
    assert metrics["loss/too_much_beta"].numpy() == pytest.approx(0.8, rel=1e-12)
    np.testing.assert_allclose(total_off, reference_total(*inputs, loss.options), rtol=1e-12)
    loss.set_options(too_much_beta_scale=scale)
    total_on, grad_on, _ = total_and_beta_gradient(loss, *inputs)
    assert total_on - total_off == pytest.approx(scale * 0.8, rel=1e-9)
    # Only the extra high-β hit is pushed down (gradient descent lowers its β), by scale / (1 − τ).
    np.testing.assert_allclose(grad_on - grad_off, [0.0, 2.0 * scale, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_beta_push_raises_the_largest_beta_below_the_floor(scale):
    # Object 0's largest β is 0.2 (floor 0.5: P = 0.3); object 1's is 0.9 (P = 0). K = 2: L_push = 0.15.
    inputs = one_event([0.2, 0.1, 0.3, 0.9, 0.4], [0, 0, -1, 1, 1])
    loss = ObjectCondensationLoss(**{**OPTIONS, "too_much_beta_scale": 0.0, "beta_push": 0.0})
    total_off, grad_off, metrics = total_and_beta_gradient(loss, *inputs)
    assert metrics["loss/beta_push"].numpy() == pytest.approx(0.15, rel=1e-12)
    np.testing.assert_allclose(total_off, reference_total(*inputs, loss.options), rtol=1e-12)
    loss.set_options(beta_push=scale)
    total_on, grad_on, _ = total_and_beta_gradient(loss, *inputs)
    assert total_on - total_off == pytest.approx(scale * 0.15, rel=1e-9)
    # Gradient descent raises the largest β of object 0 only.
    np.testing.assert_allclose(grad_on - grad_off, [-scale / 2.0, 0.0, 0.0, 0.0, 0.0], atol=1e-9)


def test_wrapper_options_change_without_retracing_across_batch_shapes():
    loss = ObjectCondensationLoss(**OPTIONS)
    traces = []
    float_heads = {"beta": 1, "ccoords": 3, "dist": 1, "energy_corr": 1, "energy_low_quantile": 1,
                   "energy_high_quantile": 1, "pos": 2, "time": 1, "time_unc": 1, "pid": 6}
    truth_widths = {"t_spectator": 1, "t_energy": 1, "t_rec_energy": 1, "t_pos": 3, "t_time": 1, "t_pid": 6}

    @tf.function(input_signature=[
        {name: tf.TensorSpec([None, width], tf.float32) for name, width in float_heads.items()},
        {"t_idx": tf.TensorSpec([None, 1], tf.int32),
         **{name: tf.TensorSpec([None, width], tf.float32) for name, width in truth_widths.items()}},
        tf.TensorSpec([None], tf.int64),
    ])
    def step(predictions, truth, row_splits):
        traces.append(1)
        with tf.GradientTape() as tape:
            tape.watch(predictions["ccoords"])
            total, _ = loss(predictions, truth, row_splits)
        return total, tf.convert_to_tensor(tape.gradient(total, predictions["ccoords"]))

    rng = np.random.default_rng(3)
    for call in range(20):
        events = [list(rng.integers(-1, 4, size=int(rng.integers(0, 10)))) for _ in range(int(rng.integers(1, 6)))]
        predictions, truth, row_splits = loss_inputs(random_batch(call, events))
        loss.set_options(oc_implementation=("hinge", "basic")[call % 2], beta_loss_scale=1.0 + call,
                         repulsion_normalization=("object", "object", "event")[call % 3],
                         use_average_cc_pos=call / 20.0)
        single = {name: value.astype(np.float32) for name, value in predictions.items()}
        truth32 = {name: value if name == "t_idx" else value.astype(np.float32) for name, value in truth.items()}
        total, coords_gradient = step(single, truth32, row_splits)
        assert np.all(np.isfinite(coords_gradient.numpy()))
        want = reference_total({name: value.astype(np.float32).astype(np.float64)
                                for name, value in predictions.items()}, truth, row_splits, loss.options)
        np.testing.assert_allclose(total.numpy(), want, rtol=2e-4, atol=1e-5)
    assert len(traces) == 1


def test_wrapper_round_trips_through_keras_serialisation():
    loss = ObjectCondensationLoss(**OPTIONS)
    loss.set_options(oc_implementation="basic", q_min=0.25)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, ObjectCondensationLoss)
    assert restored.options == loss.options == {**OPTIONS, "oc_implementation": "basic", "q_min": 0.25}


def test_wrapper_rejects_unknown_names():
    with pytest.raises(ValueError, match="'basic', 'hinge'"):
        ObjectCondensationLoss(**{**OPTIONS, "oc_implementation": "exponential"})
    loss = ObjectCondensationLoss(**OPTIONS)
    with pytest.raises(ValueError, match="'basic', 'hinge'"):
        loss.set_options(oc_implementation="Hinge", q_min=3.0)
    assert loss.options["q_min"] == OPTIONS["q_min"]  # nothing assigned when one option is bad
    with pytest.raises(ValueError, match="unknown q_minimum.*Valid options: oc_implementation"):
        loss.set_options(q_minimum=1.0)
    with pytest.raises(TypeError, match="q_minimum"):
        ObjectCondensationLoss(**OPTIONS, q_minimum=1.0)
    with pytest.raises(TypeError, match="beta_push"):
        ObjectCondensationLoss(**{name: value for name, value in OPTIONS.items() if name != "beta_push"})
    with pytest.raises(ValueError, match="'basic', 'hinge'"):
        object_condensation_loss(*loss_inputs(random_batch(0)), {**OPTIONS, "oc_implementation": "gauss"})


def test_loss_options_are_exactly_the_schema_keys():
    from gravtrain.config.fields import section_keys
    from gravtrain.config.schema import LossOptions
    from gravtrain.losses import loss_option_names

    assert set(loss_option_names()) == {info.yaml_name for info in section_keys(LossOptions)} == set(OPTIONS)
