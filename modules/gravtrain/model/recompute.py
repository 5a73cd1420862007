"""The model's forward pass with each GravNet iteration recomputed in the backward pass (``Training.N.recompute``).

A training step normally keeps every tensor that its backward pass needs, and on a 257-neighbour model those are
about 80 kB per hit (``benchmarks/train_step_memory.py``). Here each iteration (its dense blocks, GravNet, the
regulariser, message passing and batch norms: the layers `iteration_of` names) is one segment whose forward pass
keeps only the segment's inputs. Its backward pass runs the segment again under a gradient tape and takes the
gradients of that second run::

    forward:   y, s', l = f(x, w, s)          keeps x (and w, s: the weights and the state before the step)
    backward:  y, _, l  = f(x, w, s) again    dL/dx, dL/dw from the tape, given dL/dy and dL/dl

``s`` is the segment's state (batch-norm statistics, the regulariser's last value, dropout's seed state), ``s'``
the state after it and ``l`` the losses its layers add. Both runs see the same ``s`` (Keras' ``StatelessScope``:
reads of the state come from ``s``, its updates are collected, not applied), so dropout draws the same masks and
the batch norms normalise the same way in both; ``s'`` is assigned once, after the first run. The result is the
step without recomputation to float rounding: same outputs, gradients, state and added losses.

The walk over the functional graph follows Keras' own (``Functional._run_through_graph``): the model's nodes by
depth, each called on its arguments (``node.arguments.fill_in``) with ``training``; the layers of one iteration
run as one unit, once all their inputs exist.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from gravtrain.layers import RepeatedSearches


class _Segment:
    """The nodes of one iteration; the tensors they take from outside and the ones they give to the outside."""

    def __init__(self, nodes: list, used_outside: set[int]):
        self.nodes = nodes
        produced = {id(tensor) for node in nodes for tensor in node.outputs}
        inputs, seen = [], set()
        for node in nodes:
            for tensor in node.input_tensors:
                if id(tensor) not in produced and id(tensor) not in seen:
                    seen.add(id(tensor))
                    inputs.append(tensor)
        self.inputs = inputs
        self.outputs = [tensor for node in nodes for tensor in node.outputs if id(tensor) in used_outside]
        layers = [node.operation for node in nodes]
        self.trainable = [v for layer in layers for v in layer.trainable_variables]
        self.state = [v for layer in layers for v in layer.non_trainable_variables]


class RecomputingForward:
    """``forward(inputs, training) -> (outputs, added_losses)``: ``model(inputs, training=training)`` with the
    layers of each iteration recomputed in the backward pass (module docstring).

    ``added_losses`` are the losses the recomputed layers added (``add_loss``); the other layers' are in
    ``model.losses`` as after a plain call. Call it inside the ``tf.function`` and the ``GradientTape`` of a
    training step.

    Args:
        model: a functional model whose layers are each called once.
        iteration_of: a layer's name -> the index of the iteration it belongs to, or None.
    """

    def __init__(self, model: keras.Model, iteration_of: Callable[[str], int | None]):
        self.model = model
        nodes = [node for depth in sorted(model._nodes_by_depth, reverse=True)
                 for node in model._nodes_by_depth[depth] if node.operation is not None and not node.is_input]
        by_iteration: dict[int, list] = {}
        loose = []
        for node in nodes:
            iteration = iteration_of(node.operation.name)
            if iteration is None:
                loose.append(node)
            else:
                by_iteration.setdefault(iteration, []).append(node)
        outputs = {id(tensor) for tensor in keras.tree.flatten(model.output)}

        def used_outside(members: list) -> set[int]:
            member_ids = {id(node) for node in members}
            used = set(outputs)
            for node in nodes:
                if id(node) not in member_ids:
                    used.update(id(tensor) for tensor in node.input_tensors)
            return used

        segments = [_Segment(members, used_outside(members)) for members in by_iteration.values()]
        self.units = _in_running_order(loose, segments, [id(t) for t in keras.tree.flatten(model.input)])

    def __call__(self, inputs: dict, training: bool):
        values = {id(tensor): inputs[name] for name, tensor in self.model.input.items()}
        added = []
        for unit in self.units:
            if isinstance(unit, _Segment):
                outputs, losses = _recomputed(unit, [values[id(tensor)] for tensor in unit.inputs], training)
                values.update({id(tensor): value for tensor, value in zip(unit.outputs, outputs)})
                added.extend(losses)
            else:
                values.update(_call_node(unit, values, training))
        return keras.tree.map_structure(lambda tensor: values[id(tensor)], self.model.output), added


def _call_node(node, values: dict, training: bool) -> dict:
    args, kwargs = node.arguments.fill_in(values)
    outputs = node.operation(*args, **{**kwargs, "training": training})
    return {id(tensor): value for tensor, value in zip(node.outputs, keras.tree.flatten(outputs))}


def _in_running_order(loose: list, segments: list, given: list[int]) -> list:
    """The nodes and segments in an order where each runs after everything it takes (nodes keep their depth
    order; a segment runs as soon as its inputs exist)."""
    pending = [(node, [id(t) for t in node.input_tensors], [id(t) for t in node.outputs]) for node in loose]
    pending += [(segment, [id(t) for t in segment.inputs], [id(t) for node in segment.nodes for t in node.outputs])
                for segment in segments]
    available, ordered = set(given), []
    while pending:
        ready = next((item for item in pending if all(i in available for i in item[1])), None)
        if ready is None:
            raise ValueError("the model's graph has a cycle between its iterations and the other layers")
        pending.remove(ready)
        ordered.append(ready[0])
        available.update(ready[2])
    return ordered


def _run_stateless(segment: _Segment, inputs: list, weights: list, state: list, training: bool, searches):
    """The segment's nodes on ``inputs`` with its weights read as ``weights`` and its state as ``state``: its
    outputs, its state after the run and the losses its layers added (nothing is assigned). ``searches``: the
    context its kNN searches run in (`RepeatedSearches`: recorded, or repeated)."""
    mapping = list(zip(segment.trainable, weights)) + list(zip(segment.state, state))
    values = {id(tensor): value for tensor, value in zip(segment.inputs, inputs)}
    with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope, searches:
        for node in segment.nodes:
            values.update(_call_node(node, values, training))
        losses = list(scope.losses)
    new_state = [scope.get_current_value(variable) for variable in segment.state]
    return [values[id(tensor)] for tensor in segment.outputs], new_state, losses


def _recomputed(segment: _Segment, inputs: list, training: bool):
    """The segment's outputs and added losses; its forward pass keeps only ``inputs``, the weights and the
    state, and its backward pass runs it again (module docstring). The new state is assigned here, once."""
    state = [tf.identity(variable.value) for variable in segment.state]
    weights = [variable.value for variable in segment.trainable]
    n_inputs, n_outputs = len(inputs), len(segment.outputs)
    searches = RepeatedSearches()  # the second run takes the first's kNN graphs: same inputs, same graphs

    @tf.custom_gradient
    def run(*arguments):
        inputs, weights = list(arguments[:n_inputs]), list(arguments[n_inputs:])
        outputs, new_state, losses = _run_stateless(segment, inputs, weights, state, training, searches.recording())

        def gradient(*upstream):
            differentiable = [a for a in arguments if a.dtype.is_floating]
            # After the upstream gradients exist: the second run happens in the backward pass, and its ops, which
            # differ from the first run's by these control inputs, are not merged with them by graph optimisation
            # (which would keep the first run's tensors alive after all).
            with tf.control_dependencies([grad for grad in upstream if grad is not None]), \
                    tf.GradientTape() as tape:
                tape.watch(differentiable)
                outputs, _, losses = _run_stateless(segment, list(arguments[:n_inputs]), list(arguments[n_inputs:]),
                                                    state, training, searches.repeating())
            targets, output_gradients = [], []
            for value, grad in zip(outputs + losses, upstream[:n_outputs + len(losses)]):
                if grad is not None and value.dtype.is_floating:
                    targets.append(value)
                    output_gradients.append(grad)
            grads = iter(tape.gradient(targets, differentiable, output_gradients=output_gradients,
                                       unconnected_gradients=tf.UnconnectedGradients.ZERO))
            return [next(grads) if a.dtype.is_floating else None for a in arguments]

        return tuple(outputs + losses + new_state), gradient

    results = run(*inputs, *weights)  # outputs, then the added losses, then the new state
    n_losses = len(results) - n_outputs - len(segment.state)
    for variable, value in zip(segment.state, results[n_outputs + n_losses:]):
        variable.assign(value)
    return list(results[:n_outputs]), list(results[n_outputs:n_outputs + n_losses])
