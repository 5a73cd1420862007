"""Object condensation loss: the condensation and payload terms as functions, their total, a thin wrapper.

- :func:`object_condensation_terms`: L_att, L_rep, L_β, L_noise of a ragged batch;
- :func:`payload_terms`: the β-weighted energy, quantile, position, time and classification terms;
- :func:`extra_condensation_terms`: the too-much-β penalty and the β push;
- :func:`object_condensation_loss`: their weighted total and every term as a metric ``loss/<name>``;
- :class:`ObjectCondensationLoss`: the total with its ``LossOptions`` in variables (changeable per stage);
- :class:`NoiseFilterLoss`: the binary cross-entropy of a noise filter's signal score.

Everything is vectorised over the events of a batch (segment and ragged ops) and runs in ``tf.function``.
"""

from .condensation import OC_IMPLEMENTATIONS, REPULSION_NORMALIZATIONS, REPULSIVE_POTENTIALS, object_condensation_terms
from .extra_terms import BETA_PUSH_FLOOR, HIGH_BETA_THRESHOLD, extra_condensation_terms
from .noise_filter import NOISE_FILTER_TERM_NAMES, NoiseFilterLoss, noise_filter_loss, signal_labels
from .payload import payload_terms
from .total import LOSS_TERM_NAMES, ObjectCondensationLoss, loss_option_names, object_condensation_loss

__all__ = [
    "BETA_PUSH_FLOOR",
    "HIGH_BETA_THRESHOLD",
    "LOSS_TERM_NAMES",
    "NOISE_FILTER_TERM_NAMES",
    "NoiseFilterLoss",
    "OC_IMPLEMENTATIONS",
    "REPULSION_NORMALIZATIONS",
    "REPULSIVE_POTENTIALS",
    "ObjectCondensationLoss",
    "extra_condensation_terms",
    "loss_option_names",
    "noise_filter_loss",
    "object_condensation_loss",
    "object_condensation_terms",
    "payload_terms",
    "signal_labels",
]
