"""The total object condensation loss, and a thin serialisable wrapper holding its options as variables."""

from __future__ import annotations

import inspect
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

#: The terms reported next to the total, each as the metric ``loss/<name>`` (unweighted values).
LOSS_TERM_NAMES = (
    "attractive", "repulsive", "beta", "noise", "energy", "energy_quantiles", "position", "time", "classification",
    "too_much_beta", "beta_push",
)
#: Prefix of the metric names: ``loss/total``, ``loss/attractive``, ...
METRIC_PREFIX = "loss/"


def loss_option_names() -> tuple[str, ...]:
    """The names of the loss options: the keyword arguments of :class:`ObjectCondensationLoss`, in their order."""
    parameters = inspect.signature(ObjectCondensationLoss).parameters.values()
    return tuple(parameter.name for parameter in parameters if parameter.kind is parameter.KEYWORD_ONLY)


def check_loss_option_names(options: Mapping, *, require_all: bool) -> None:
    """``ValueError`` for option names not in :func:`loss_option_names` (or missing ones, if ``require_all``)."""
    names = loss_option_names()
    unknown = sorted(set(options) - set(names))
    missing = [name for name in names if name not in options] if require_all else []
    if unknown or missing:
        problems = ([f"unknown {', '.join(unknown)}"] if unknown else []) + (
            [f"missing {', '.join(missing)}"] if missing else []
        )
        raise ValueError(f"Loss options: {'; '.join(problems)}. Valid options: {', '.join(names)}.")


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
        options: every name of :func:`loss_option_names`; numbers may be floats or scalar tensors (variables),
            and the choices (``oc_implementation``, ``repulsion_normalization``) a name or an integer scalar
            tensor indexing ``OC_IMPLEMENTATIONS`` / ``REPULSION_NORMALIZATIONS``, so the options can change
            between calls of a ``tf.function`` without retracing.
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
    """:func:`object_condensation_loss` with its options held in non-trainable ``tf.Variable`` s.

    The numbers are held in float64 (exactly the configured values) and cast to the dtype of ``beta``.

    ``set_options`` assigns new values (e.g. a stage's overrides) without retracing a ``tf.function`` that calls
    this object: the function reads the variables, and each choice is stored as its index in its list of names
    and selected at run time.

    Args (keyword only, all required; the ``LossOptions`` section of the config has exactly these keys):
        oc_implementation: the repulsive potential, a name of ``OC_IMPLEMENTATIONS``.
        repulsion_normalization: D_k of the repulsion, a name of ``REPULSION_NORMALIZATIONS``.
        q_min: q_min of the charge q = arctanh²(β/1.01) + q_min.
        beta_loss_scale: s_β.
        noise_scale: s_noise.
        use_average_cc_pos: u, the weight of the β-weighted mean in an object's centre.
        energy_loss_weight: w_E.
        position_loss_weight: w_pos.
        timing_loss_weight: w_t.
        classification_loss_weight: w_c.
        too_much_beta_scale: s_tmβ.
        beta_push: s_push.

    Example:
        >>> loss = ObjectCondensationLoss(**loss_options)                      # doctest: +SKIP
        >>> total, metrics = loss(predictions, truth, row_splits, is_track)    # doctest: +SKIP
        >>> loss.set_options(beta_loss_scale=2.0, oc_implementation="basic")  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        oc_implementation: str,
        repulsion_normalization: str,
        q_min: float,
        beta_loss_scale: float,
        noise_scale: float,
        use_average_cc_pos: float,
        energy_loss_weight: float,
        position_loss_weight: float,
        timing_loss_weight: float,
        classification_loss_weight: float,
        too_much_beta_scale: float,
        beta_push: float,
    ):
        # The keyword arguments, by name: this signature is the one list of the loss options.
        options = {name: value for name, value in locals().items() if name != "self"}
        # The options that choose by name: their names (in the order of the index stored) and the position of
        # a name in them (ValueError listing the valid names for another).
        self._choice_lists = {"oc_implementation": (OC_IMPLEMENTATIONS, implementation_index),
                              "repulsion_normalization": (REPULSION_NORMALIZATIONS, normalization_index)}
        self._choices = {
            name: tf.Variable(index_of(options[name]), dtype=tf.int32, trainable=False, name=name)
            for name, (_, index_of) in self._choice_lists.items()
        }
        self._numbers = {
            name: tf.Variable(_finite_number(name, value), dtype=tf.float64, trainable=False, name=name)
            for name, value in options.items() if name not in self._choice_lists
        }

    def set_options(self, **options) -> None:
        """Assign some of the options (the constructor's argument names); all are checked before any is set."""
        check_loss_option_names(options, require_all=False)
        indices = {name: self._choice_lists[name][1](value) for name, value in options.items() if name in self._choices}
        numbers = {name: _finite_number(name, value) for name, value in options.items() if name in self._numbers}
        for name, index in indices.items():
            self._choices[name].assign(index)
        for name, value in numbers.items():
            self._numbers[name].assign(value)

    @property
    def options(self) -> dict:
        """The current options as plain Python values, by the constructor's argument names."""
        values = {name: self._choice_lists[name][0][int(variable.numpy())] for name, variable in self._choices.items()}
        values.update({name: float(variable.numpy()) for name, variable in self._numbers.items()})
        return values

    term_names = LOSS_TERM_NAMES

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
