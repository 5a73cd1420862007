"""Where training runs: one device, or the model mirrored on several (``General.devices``).

With N > 1 devices the model, the optimizer and the loss are created under a ``tf.distribute.MirroredStrategy``
over the first N GPUs TensorFlow sees (``creation_scope``): every variable has a copy on each device. A train
step (``gravtrain.training.step``) takes N batches, one per device. Device r runs its batch B_r as one device
would run it alone, from the same weights w and state s, giving the objective O_r, the gradient and the state
s_r it would leave (batch-norm statistics, the regularisers' records, dropout's seed state). The step applies

    g = (1/N) sum_r dO_r/dw        and sets        s <- (1/N) sum_r s_r

to every copy, so the copies stay equal: with SGD the weights after the step are the mean of the N single-device
steps (``tests/training/test_multi_device.py`` checks this to 1e-12 in float64). The batch-norm statistics and
the regularisers' records average because their variables have ``aggregation="mean"``; every device draws
dropout from the same seed state, as in Keras's own distributed training. The gradients are summed on one
device and every copy is updated from there (``strategy.reduce``, then the optimizer in cross-replica context,
where the NaN guard decides for all devices at once).

Where TensorFlow sees no GPU, the strategy uses logical CPU devices, if there are N of them. A normal process has
one; the tests configure two (``tf.config.set_logical_device_configuration``) to check the step on CPU.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from gravtrain.config.errors import ConfigError, ConfigIssue


def replica_devices(devices: int) -> list[str]:
    """The names of the devices ``General.devices`` trains on: the first ``devices`` GPUs or, with no GPU,
    logical CPU devices.

    Raises:
        ConfigError: TensorFlow sees fewer devices than asked for.
    """
    gpus = tf.config.list_logical_devices("GPU")
    pool = gpus or tf.config.list_logical_devices("CPU")
    if len(pool) < devices:
        raise ConfigError([ConfigIssue(
            path="General.devices",
            message=f"is {devices}, but TensorFlow sees {len(gpus)} GPU(s). Set devices to at most the number of "
                    f"GPUs of this machine (1 trains on one device, CPU or GPU), or run where {devices} GPUs are "
                    f"visible (CUDA_VISIBLE_DEVICES).")])
    return [device.name for device in pool[:devices]]


def data_parallel_strategy(devices: int) -> tf.distribute.Strategy | None:
    """The strategy for ``General.devices``: None for one device, else a ``MirroredStrategy`` over
    ``replica_devices(devices)`` (which raises ``ConfigError`` when there are too few)."""
    if devices == 1:
        return None
    names = replica_devices(devices)
    # NCCL all-reduce exists for GPUs only; copies on CPU devices are summed on one device.
    on_gpus = all("GPU" in name.upper() for name in names)
    return tf.distribute.MirroredStrategy(
        names, cross_device_ops=None if on_gpus else tf.distribute.ReductionToOneDevice())


def creation_scope(strategy: tf.distribute.Strategy | None):
    """The context to create the model, optimizer and loss in: the strategy's scope, or nothing."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
