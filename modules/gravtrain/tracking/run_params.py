"""Params and tags of an MLflow run (`RunParamsAndTags`, a part of `MlflowTracker`).

Both are written with ``log_batch``, at most 100 per call (MLflow's limit), never one call per key. MLflow params
are immutable: on resume, a param already stored with the same value is skipped, and one stored with a different
value is refused with a `TrackingError` naming it. A tag longer than MLflow's limit is truncated, with a warning.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gravtrain.tracking.errors import TrackingError
from gravtrain.tracking.store_writes import MLFLOW_PARAMS_TAGS_PER_BATCH, in_batches, store_write

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

#: mlflow.utils.validation.MAX_TAG_VAL_LENGTH (checked in the tests).
MLFLOW_TAG_VALUE_LIMIT = 8000


class RunParamsAndTags:
    """The params and tags records of `MlflowTracker` (its ``_client`` and ``_run_id``)."""

    _client: "MlflowClient"
    _run_id: str

    def log_params(self, params: dict[str, str]) -> None:
        """Log params in batches of at most 100; keys already stored with the same value are skipped.

        Raises:
            TrackingError: a key is already stored with another value (MLflow params cannot change).
        """
        from mlflow.entities import Param

        stored = self._client.get_run(self._run_id).data.params
        new = {key: str(value) for key, value in params.items()}
        changed = [key for key, value in new.items() if key in stored and stored[key] != value]
        if changed:
            shown = "; ".join(f"{key}: stored {stored[key]!r}, now {new[key]!r}" for key in changed[:5])
            more = f" (and {len(changed) - 5} more)" if len(changed) > 5 else ""
            raise TrackingError(f"{len(changed)} param(s) of run {self._run_id} would change, and MLflow params "
                                f"cannot: {shown}{more}. Start a new run for a different config.")
        todo = [Param(key, value) for key, value in new.items() if key not in stored]
        with store_write("params"):
            for batch in in_batches(todo, MLFLOW_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(self._run_id, params=batch)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags in batches of at most 100; a value over MLflow's 8000 characters is truncated (logged)."""
        from mlflow.entities import RunTag

        todo = [RunTag(key, _fit_tag(key, str(value))) for key, value in tags.items()]
        with store_write("tags"):
            for batch in in_batches(todo, MLFLOW_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(self._run_id, tags=batch)


def _fit_tag(key: str, value: str) -> str:
    if len(value) <= MLFLOW_TAG_VALUE_LIMIT:
        return value
    logger.warning("tag %s is %d characters long; MLflow keeps %d, so it is truncated", key, len(value),
                   MLFLOW_TAG_VALUE_LIMIT)
    marker = " ... [truncated]"
    return value[: MLFLOW_TAG_VALUE_LIMIT - len(marker)] + marker
