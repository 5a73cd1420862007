"""The total object condensation loss, and a thin serialisable wrapper holding its options as variables."""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
import tensorflow as tf

from .condensation import (
    OC_IMPLEMENTATIONS,
    REPULSION_NORMALIZATIONS,
    condensation,
    condensation_terms,
    implementation_index,
    normalization_index,
    repulsive_potential,
)
from .extra_terms import extra_terms_from
from .payload import payload_terms

#: The options that choose by name, with their valid names (in the order of the index the wrapper stores).
CHOICE_LOSS_OPTIONS = {"oc_implementation": OC_IMPLEMENTATIONS, "repulsion_normalization": REPULSION_NORMALIZATIONS}
_CHOICE_INDEX = {"oc_implementation": implementation_index, "repulsion_normalization": normalization_index}
#: The numeric options.
NUMERIC_LOSS_OPTION_NAMES = (
    "q_min", "beta_loss_scale", "noise_scale", "use_average_cc_pos", "energy_loss_weight", "position_loss_weight",
    "timing_loss_weight", "classification_loss_weight", "too_much_beta_scale", "beta_push",
)
#: The keys of ``LossOptions``, every one of which the total loss reads.
LOSS_OPTION_NAMES = tuple(CHOICE_LOSS_OPTIONS) + NUMERIC_LOSS_OPTION_NAMES
#: The terms reported next to the total, each as the metric ``loss/<name>`` (unweighted values).
LOSS_TERM_NAMES = (
    "attractive", "repulsive", "beta", "noise", "energy", "energy_quantiles", "position", "time", "classification",
    "too_much_beta", "beta_push",
)
#: Prefix of the metric names: ``loss/total``, ``loss/attractive``, ...
METRIC_PREFIX = "loss/"


def check_loss_option_names(options: Mapping, *, require_all: bool) -> None:
    """``ValueError`` for option names not in ``LOSS_OPTION_NAMES`` (or missing ones, if ``require_all``)."""
    unknown = sorted(set(options) - set(LOSS_OPTION_NAMES))
    missing = [name for name in LOSS_OPTION_NAMES if name not in options] if require_all else []
    if unknown or missing:
        problems = ([f"unknown {', '.join(unknown)}"] if unknown else []) + (
            [f"missing {', '.join(missing)}"] if missing else []
        )
        raise ValueError(f"Loss options: {'; '.join(problems)}. Valid options: {', '.join(LOSS_OPTION_NAMES)}.")


def object_condensation_loss(predictions: Mapping, truth: Mapping, row_splits, options: Mapping, is_track=None):
    """The total object condensation loss of a ragged batch and each of its terms.

    .. math::
        L = L_{att} + L_{rep} + s_β L_β + s_{noise} L_{noise}
            + w_E (P_{energy} + P_{quantiles}) + w_{pos} P_{pos} + w_t P_{time} + w_c P_{class}
            + s_{tmβ} L_{tmβ} + s_{push} L_{push}

    with s_β = ``beta_loss_scale``, s_noise = ``noise_scale``, w_E = ``energy_loss_weight``, w_pos =
    ``position_loss_weight``, w_t = ``timing_loss_weight``, w_c = ``classification_loss_weight``, s_tmβ =
    ``too_much_beta_scale`` and s_push = ``beta_push``. L_att, L_rep, L_β, L_noise are those of
    :func:`~gravtrain.losses.object_condensation_terms` (with ``q_min``, ``oc_implementation``,
    ``repulsion_normalization`` and ``use_average_cc_pos``; tracks are never condensation points of an object
    with a calorimeter hit), the P terms those of :func:`~gravtrain.losses.payload_terms`, and L_tmβ, L_push
    those of :func:`~gravtrain.losses.extra_condensation_terms`. The spectator weight sw is ``t_spectator`` when
    the truth has it (0 otherwise), the distance scale d the ``dist`` head when present (1 otherwise).

    Args:
        predictions: the heads ``beta``, ``ccoords``, optional ``dist``, and the payload heads.
        truth: ``t_idx``, the payload truth, optional ``t_spectator``.
        row_splits: event boundaries (E+1,).
        options: every name of ``LOSS_OPTION_NAMES``; numbers may be floats or scalar tensors (variables), and
            the choices (``CHOICE_LOSS_OPTIONS``) a name or an integer scalar tensor indexing their names, so the
            options can change between calls of a ``tf.function`` without retracing.
        is_track: per-hit track flag (the ``is_track`` feature, > 0.5 for a track row); None: no tracks.

    Returns:
        ``(total, metrics)``: the scalar total, and ``{"loss/total": total, "loss/<term>": value}`` for every
        term of ``LOSS_TERM_NAMES`` (unweighted).

    Shapes:
        as in ``object_condensation_terms`` and ``payload_terms`` -> (), dict of ().
    """
    check_loss_option_names(options, require_all=True)
    potential = repulsive_potential(options["oc_implementation"])
    state = condensation(
        predictions["beta"], predictions["ccoords"], truth["t_idx"], row_splits,
        q_min=options["q_min"], use_average_cc_pos=options["use_average_cc_pos"],
        dist=predictions.get("dist"), spectator_weight=truth.get("t_spectator"), is_track=is_track,
    )
    terms = condensation_terms(state, potential, options["repulsion_normalization"])
    terms.update(extra_terms_from(state.beta, state.structure, state.alpha))
    terms.update(payload_terms(predictions["beta"], truth["t_idx"], predictions, truth))

    def weight(name):
        return tf.cast(options[name], state.beta.dtype)

    total = (
        terms["attractive"] + terms["repulsive"]
        + weight("beta_loss_scale") * terms["beta"]
        + weight("noise_scale") * terms["noise"]
        + weight("energy_loss_weight") * (terms["energy"] + terms["energy_quantiles"])
        + weight("position_loss_weight") * terms["position"]
        + weight("timing_loss_weight") * terms["time"]
        + weight("classification_loss_weight") * terms["classification"]
        + weight("too_much_beta_scale") * terms["too_much_beta"]
        + weight("beta_push") * terms["beta_push"]
    )
    metrics = {f"{METRIC_PREFIX}total": total}
    metrics.update({f"{METRIC_PREFIX}{name}": terms[name] for name in LOSS_TERM_NAMES})
    return total, metrics


@keras.saving.register_keras_serializable(package="gravtrain")
class ObjectCondensationLoss:
    """:func:`object_condensation_loss` with its ``LossOptions`` held in non-trainable ``tf.Variable`` s.

    The numbers are held in float64 (exactly the configured values) and cast to the dtype of ``beta``.

    ``set_options`` assigns new values (e.g. a stage's overrides) without retracing a ``tf.function`` that calls
    this object: the function reads the variables, and each choice (``oc_implementation``,
    ``repulsion_normalization``) is stored as its index in ``CHOICE_LOSS_OPTIONS`` and selected at run time.

    Args:
        **options: every name of ``LOSS_OPTION_NAMES`` (the ``LossOptions`` section of the config).

    Example:
        >>> loss = ObjectCondensationLoss(**loss_options)                      # doctest: +SKIP
        >>> total, metrics = loss(predictions, truth, row_splits, is_track)    # doctest: +SKIP
        >>> loss.set_options(beta_loss_scale=2.0, oc_implementation="basic")  # doctest: +SKIP
    """

    def __init__(self, **options):
        check_loss_option_names(options, require_all=True)
        self._choices = {
            name: tf.Variable(_CHOICE_INDEX[name](options[name]), dtype=tf.int32, trainable=False, name=name)
            for name in CHOICE_LOSS_OPTIONS
        }
        self._numbers = {
            name: tf.Variable(_finite_number(name, options[name]), dtype=tf.float64, trainable=False, name=name)
            for name in NUMERIC_LOSS_OPTION_NAMES
        }

    def set_options(self, **options) -> None:
        """Assign some of the options (names of ``LOSS_OPTION_NAMES``); all are checked before any is set."""
        check_loss_option_names(options, require_all=False)
        indices = {name: _CHOICE_INDEX[name](value) for name, value in options.items() if name in self._choices}
        numbers = {name: _finite_number(name, value) for name, value in options.items() if name in self._numbers}
        for name, index in indices.items():
            self._choices[name].assign(index)
        for name, value in numbers.items():
            self._numbers[name].assign(value)

    @property
    def options(self) -> dict:
        """The current options as plain Python values."""
        values = {name: CHOICE_LOSS_OPTIONS[name][int(variable.numpy())] for name, variable in self._choices.items()}
        values.update({name: float(variable.numpy()) for name, variable in self._numbers.items()})
        return values

    def __call__(self, predictions: Mapping, truth: Mapping, row_splits, is_track=None):
        """``(total, metrics)`` of :func:`object_condensation_loss` with the current options."""
        options = {**self._choices, **self._numbers}
        return object_condensation_loss(predictions, truth, row_splits, options, is_track)

    def get_config(self) -> dict:
        return self.options

    @classmethod
    def from_config(cls, config: dict) -> ObjectCondensationLoss:
        return cls(**config)


def _finite_number(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Loss option {name} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"Loss option {name} must be finite, got {value!r}.")
    return number
