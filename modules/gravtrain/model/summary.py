"""A built model described as plain text: one row per layer (name, type, output shape, weights), then totals.

Keras' own ``model.summary()`` draws a rich table sized to the terminal, which clips columns when the output is
a file or a pipe; this table has fixed columns, so it reads the same in a terminal, a log and an MLflow artifact.
The layer names are those that ``Training.freeze`` patterns match.
"""

from __future__ import annotations

import keras
import numpy as np


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """Trainable, non-trainable and total weights (scalars) of ``model``."""
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    non_trainable = sum(int(np.prod(weight.shape)) for weight in model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": non_trainable, "total": trainable + non_trainable}


def _shape_text(output) -> str:
    if isinstance(output, dict):
        return ", ".join(f"{name}{_shape_text(tensor)}" for name, tensor in output.items())
    if isinstance(output, (list, tuple)):
        return ", ".join(_shape_text(tensor) for tensor in output)
    if len(output.shape) == 1:  # row_splits
        return "(E+1,)"
    return "(" + ", ".join("V" if dim is None else str(dim) for dim in output.shape) + ")"


def model_summary(model: keras.Model) -> str:
    """The layer table of ``model`` as one string, ending with the parameter counts (module docstring)."""
    rows = [("layer", "type", "output shape", "weights")]
    for layer in model.layers:
        weights = sum(int(np.prod(weight.shape)) for weight in layer.weights)
        rows.append((layer.name, type(layer).__name__, _shape_text(layer.output), f"{weights:,}"))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [f'Model "{model.name}" (V = hits in the batch, E = events)']
    for index, (name, kind, shape, weights) in enumerate(rows):
        lines.append(f"  {name:<{widths[0]}}  {kind:<{widths[1]}}  {shape:<{widths[2]}}  {weights:>10}".rstrip())
        if index == 0:
            lines.append("  " + "-" * (sum(widths) + 16))
    counts = parameter_counts(model)
    lines.append(f"Parameters: {counts['total']:,} ({counts['trainable']:,} trainable, "
                 f"{counts['non_trainable']:,} non-trainable)")
    return "\n".join(lines) + "\n"
