"""MLflow tracking: param flattening (more of the room arrives with staged training)."""

from gravtrain.tracking.params import flatten_params, unflatten_params

__all__ = ["flatten_params", "unflatten_params"]
