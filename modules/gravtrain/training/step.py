"""The compiled train and validation steps: one ``tf.function`` each per stage, traced once for every batch shape.

For a batch, with the model's outputs p, the truth t and the losses the layers added (regularisers, learned
batch norm, kernel regularisers)::

    objective = L_oc(p, t, row_splits, is_track) + sum(model.losses)

(``is_track`` is the model's track-flag feature column: the loss never makes a track a condensation point.)
The loss is the model family's (``build_loss``): object condensation, or a noise filter's cross-entropy. When a
noise-filter pre-model dropped hits, the model says which rows its outputs are (``hit_index``) and their event
boundaries (``hit_row_splits``): the loss takes the truth, the track flags and the boundaries of those hits, and
``hits_kept`` reports how many there were. In a stage with ``recompute: true`` the train step runs the model
through ``gravtrain.model.recomputing_forward`` (each GravNet iteration recomputed in the backward pass), which
also returns the losses the recomputed layers added: the objective is the same sum.

The train step computes the gradient of the objective with respect to the trainable weights and applies it
only when the objective, every reported term and every gradient are finite (the NaN guard); otherwise it
leaves the weights and the optimizer untouched and reports ``finite = 0`` so the loop can stop with the
name of the term that went bad. The batch-norm state that the forward pass already moved is restored too.

On N devices (``General.devices``, `gravtrain.model.devices`) the train step takes N batches, one per device; it
applies the mean of the devices' gradients, the NaN guard looks at every device's values, and the metrics are
the mean over the devices (``hits`` and ``hits_kept``: the sum). Each device's forward pass runs in a
``keras.StatelessScope``, which holds its state updates until the pass ends (so it normalises with its own
batch's statistics, as one device would) and collects the losses its layers add (Keras would keep them in the
layers, which the devices' threads share).

The validation step returns the metrics and the model's outputs (inference mode), so that one pass over the
validation events gives both the validation loss and the predictions the physics metrics score.

Metrics returned per batch: ``objective`` (what is minimised), ``loss/total`` and ``loss/<term>`` of the
condensation loss (a metric cannot be called ``loss`` too: MLflow's file store keeps ``loss/<term>`` in a
directory of that name),
``regularizer/<layer>`` of each space regulariser, ``model_losses`` (sum of the layers' added losses),
``grad_norm`` (global norm before clipping), ``finite`` (1 or 0) and ``hits``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from gravtrain.data.batching import batch_element_spec
from gravtrain.model import (
    HIT_INDEX, HIT_ROW_SPLITS, INPUT_NAMES, TRACK_FLAG_FEATURE, feature_names, recomputing_forward, regularizer_values,
)

#: Metrics a step on several devices sums over them; it averages the others.
SUMMED_METRICS = ("hits", "hits_kept")


def _dense_gradient(gradient, variable):
    """Sparse gradients (``tf.IndexedSlices`` from gathers) as dense tensors, None as zeros."""
    if gradient is None:
        return tf.zeros_like(variable)
    if isinstance(gradient, tf.IndexedSlices):
        return tf.convert_to_tensor(gradient)
    return gradient


class TrainingStep:
    """Builds and holds the compiled steps (one trace for every batch). A stage that freezes or unfreezes layers
    changes the trainable set and gets new steps (a new trace); a stage that changes only options (learning rate,
    loss and batch-norm options, all variables) keeps the steps it has: no trace is repeated.

    Args:
        model: the gravtrain model.
        loss: the model family's loss (``build_loss``), its options as variables (``set_options`` between stages).
        optimizer: a Keras optimizer built for all of the model's trainable weights.
        recompute: the train step recomputes each GravNet iteration in its backward pass instead of keeping its
            tensors (``Training.N.recompute``, `gravtrain.model.recompute`): the same step to float rounding, in
            less memory and more time. ``compile`` changes it between stages.
        strategy: the ``MirroredStrategy`` the model, optimizer and loss were created under
            (`gravtrain.model.devices`), or None for one device. ``train_step`` then takes ``replicas``
            batches, one per device.
    """

    def __init__(self, model: keras.Model, loss, optimizer: keras.optimizers.Optimizer, recompute: bool = False,
                 strategy: tf.distribute.Strategy | None = None):
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        self.trace_count = {"train": 0, "validate": 0}
        self._track_column = feature_names(model).index(TRACK_FLAG_FEATURE)
        self._state_variables = [v for v in model.non_trainable_variables]
        self.train_step = self.validate_step = None
        self._compiled_for = None
        self.compile(recompute)

    def _trainable_set(self) -> tuple:
        """What a trace depends on besides the variables' values: which variables train, which layers are frozen
        (batch norm and the regularisers read their layer's ``trainable`` flag)."""
        return (tuple(id(v) for v in self.model.trainable_variables),
                tuple(layer.trainable for layer in self.model._flatten_layers(include_self=False)))

    def compile(self, recompute: bool | None = None) -> None:
        """Build the step functions for the current trainable set and ``recompute`` (None: as before); call
        after freezing layers. Keeps the current ones (and their traces) when both are those they were built for."""
        if recompute is None:
            recompute = bool(self._compiled_for and self._compiled_for[1])
        key = (self._trainable_set(), bool(recompute))
        if key == self._compiled_for:
            return
        self._compiled_for = key
        recomputing = recomputing_forward(self.model) if recompute else None
        spec = batch_element_spec()
        trainable = list(self.model.trainable_variables)
        state = self._state_variables

        def forward(batch, training, scope=None):
            """The objective, metrics and the model's outputs of a batch. ``scope``: the ``keras.StatelessScope``
            the pass runs in (on several devices), which holds the losses the layers added."""
            inputs = {name: batch[name] for name in INPUT_NAMES}
            if training and recomputing is not None:
                predictions, recomputed_losses = recomputing(inputs, training=True)
            else:
                predictions, recomputed_losses = self.model(inputs, training=training), []
            truth = {name: value for name, value in batch.items() if name not in INPUT_NAMES}
            is_track = batch["features"][:, self._track_column]
            row_splits = batch["row_splits"]
            if HIT_INDEX in predictions:  # a pre-model kept a subset of the hits
                index = predictions[HIT_INDEX]
                truth = {name: tf.gather(value, index) for name, value in truth.items()}
                is_track = tf.gather(is_track, index)
                row_splits = predictions[HIT_ROW_SPLITS]
            oc_loss, metrics = self.loss(predictions, truth, row_splits, is_track)
            if not training:
                model_losses = []
            elif scope is None:
                model_losses = list(self.model.losses) + recomputed_losses
            else:  # the layers' losses are in the scope; the kernel regularisers' as Keras computes them
                model_losses = list(scope.losses) + recomputed_losses + [
                    variable.regularizer(variable) for variable in trainable if variable.regularizer is not None]
            added = tf.add_n([tf.cast(x, oc_loss.dtype) for x in model_losses]) if model_losses else \
                tf.zeros((), oc_loss.dtype)
            metrics = dict(metrics)
            metrics.update({name: tf.cast(value, oc_loss.dtype) for name, value in regularizer_values(self.model).items()})
            metrics["model_losses"] = added
            metrics["hits"] = tf.cast(tf.shape(batch["features"])[0], oc_loss.dtype)
            if HIT_INDEX in predictions:
                metrics["hits_kept"] = tf.cast(tf.shape(predictions[HIT_INDEX])[0], oc_loss.dtype)
            return oc_loss + added, metrics, predictions

        strategy, replicas = self.strategy, self.replicas

        def device_forward(batch):
            """``forward`` on one of several devices: its state updates held in a ``StatelessScope`` until the end
            (so its batch norms normalise with their own update, as one device would) and its added losses
            collected there (Keras keeps a layer's in the layer, which the devices' threads share), then the
            updates assigned, each averaged over the devices by its variable's aggregation."""
            with keras.StatelessScope(collect_losses=True) as scope:
                objective, metrics, _ = forward(batch, training=True, scope=scope)
            updates = [(variable, scope.get_current_value(variable)) for variable in state]
            if len(scope.state_mapping) != sum(value is not None for _, value in updates):
                raise RuntimeError("the forward pass assigned a variable that is not the model's state; its update "
                                   "would be lost on several devices")
            for variable, value in updates:
                if value is not None:
                    variable.assign(value)
            return objective, metrics

        def objective_and_gradients(batch):
            """One device's part: its batch's objective and metrics, and the gradient of objective / replicas."""
            with tf.GradientTape() as tape:
                if replicas > 1:
                    objective, metrics = device_forward(batch)
                    scaled = objective / replicas
                else:
                    objective, metrics, _ = forward(batch, training=True)
                    scaled = objective
            gradients = [_dense_gradient(g, v) for g, v in zip(tape.gradient(scaled, trainable), trainable)]
            metrics["objective"] = objective
            return gradients, metrics

        @tf.function(input_signature=[spec] * replicas)
        def train_step(*batches):
            self.trace_count["train"] += 1
            saved_state = [tf.identity(v) for v in state]
            if strategy is None:
                gradients, metrics = objective_and_gradients(batches[0])
            else:  # batch r to device r; the gradients summed, the metrics averaged (summed: the hit counts)
                per_device = strategy.experimental_distribute_values_from_function(
                    lambda context: batches[context.replica_id_in_sync_group])
                gradients, metrics = strategy.run(objective_and_gradients, args=(per_device,))
                gradients = strategy.reduce(tf.distribute.ReduceOp.SUM, gradients, axis=None)
                metrics = {name: strategy.reduce(tf.distribute.ReduceOp.SUM if name in SUMMED_METRICS
                                                 else tf.distribute.ReduceOp.MEAN, value, axis=None)
                           for name, value in metrics.items()}
            objective = metrics["objective"]
            grad_norm = tf.linalg.global_norm(gradients) if gradients else tf.zeros(())
            values_finite = tf.reduce_all([tf.math.is_finite(tf.cast(v, tf.float32)) for v in metrics.values()])
            finite = tf.logical_and(values_finite, tf.math.is_finite(grad_norm))

            def apply():
                self.optimizer.apply(gradients, trainable)
                return tf.constant(True)

            def restore():
                for variable, value in zip(state, saved_state):
                    variable.assign(value)
                return tf.constant(False)

            tf.cond(finite, apply, restore)
            metrics["grad_norm"] = tf.cast(grad_norm, objective.dtype)
            metrics["finite"] = tf.cast(finite, objective.dtype)
            return metrics

        @tf.function(input_signature=[spec])
        def validate_step(batch):
            self.trace_count["validate"] += 1
            objective, metrics, predictions = forward(batch, training=False)
            metrics["objective"] = objective
            return metrics, predictions

        self.train_step, self.validate_step = train_step, validate_step
