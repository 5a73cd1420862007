"""How a run's records reach the MLflow store: in batches within MLflow's limits, and a failed write as a
`StoreWriteError` naming what could not be written and why."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from gravtrain.tracking.errors import StoreWriteError, describe_store_failure

#: mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH (checked in the tests).
MLFLOW_PARAMS_TAGS_PER_BATCH = 100


@contextmanager
def store_write(what: str) -> Iterator[None]:
    """Turn a failed write into `StoreWriteError` ("could not write <what> to the MLflow store: <reason>")."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        raise StoreWriteError(f"could not write {what} to the MLflow store: {describe_store_failure(exc)}") from exc


def in_batches(items: list, size: int) -> Iterator[list]:
    """``items`` in consecutive lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
