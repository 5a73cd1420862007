"""A training run in the MLflow store: `MlflowTracker`, its do-nothing twin `NullTracker`, and the `Tracker`
interface the training loop is written against.

Everything goes through an explicit ``mlflow.MlflowClient`` bound to the run's store: MLflow's global "fluent"
state (``mlflow.start_run``, the active run, the global tracking URI) is never touched, so a notebook that has
its own active run keeps it.

- Params and tags are written with ``log_batch``, at most 100 per call (MLflow's limit), never one call per key.
  MLflow params are immutable: on resume, a param already stored with the same value is skipped, and one stored
  with a different value is refused with a `TrackingError` naming it.
- Metrics are buffered and written by one background thread (`BackgroundMetricWriter`), at most 1000 per
  ``log_batch``, so training never waits for the store; ``flush(wait=True)`` returns once they are stored.
  Timestamps are milliseconds since the epoch, taken when ``log_metrics`` is called. Non-finite values are
  kept, not dropped: MLflow stores NaN as NaN; SQL stores write ±inf as ±1.797e308 (the largest float).
- As a context manager the tracker ends the run: FINISHED, KILLED on ``KeyboardInterrupt`` (Ctrl-C), FAILED
  on any other exception, with ``ExceptionType: message`` in the tag ``gravtrain.error``.
- A write the store fails (a full disk) raises `StoreWriteError` naming the reason; metrics whose batch failed
  are kept (`unwritten_metrics`) for the caller to save and `replay_metrics` later.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path, PurePosixPath
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, runtime_checkable

import numpy as np

from gravtrain.tracking.errors import StoreWriteError, TrackingError, describe_store_failure
from gravtrain.tracking.metric_writer import MLFLOW_METRICS_PER_BATCH, BackgroundMetricWriter
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV, configure_mlflow, is_file_store, store_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

#: mlflow.utils.validation.MAX_PARAMS_TAGS_PER_BATCH and MAX_TAG_VAL_LENGTH (checked in the tests).
MLFLOW_PARAMS_TAGS_PER_BATCH = 100
MLFLOW_TAG_VALUE_LIMIT = 8000
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")
ERROR_TAG = "gravtrain.error"
DESCRIPTION_TAG = "mlflow.note.content"


@runtime_checkable
class Tracker(Protocol):
    """What training records a run through; `MlflowTracker` and `NullTracker` implement it."""

    @property
    def run_id(self) -> str | None: ...
    @property
    def artifact_uri(self) -> str | None: ...
    def log_params(self, params: dict[str, str]) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def flush(self, wait: bool = True) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...
    def log_bytes(self, data: bytes, artifact_file: str) -> None: ...
    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None: ...
    def log_figure(self, figure: Any, artifact_file: str) -> None: ...
    def log_dict(self, data: Any, artifact_file: str) -> None: ...
    def existing_metric_steps(self, key: str) -> list[int]: ...
    def last_step(self, key: str) -> int | None: ...
    def last_steps(self) -> dict[str, int]: ...
    def metric_histories(self) -> dict[str, tuple[list[int], list[float]]]: ...
    def unwritten_metrics(self) -> list[tuple[str, float, int, int]]: ...
    def replay_metrics(self, records: list[tuple[str, float, int, int]]) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...
    def __enter__(self) -> "Tracker": ...
    def __exit__(self, exc_type, exc, traceback) -> bool: ...


class MlflowTracker:
    """One MLflow run, opened with `MlflowTracker.start` (module docstring for what each record does)."""

    def __init__(self, client: "MlflowClient", run_id: str, artifact_uri: str, *,
                 metrics_buffer_size: int = MLFLOW_METRICS_PER_BATCH, metrics_flush_seconds: float | None = 10.0):
        self._client = client
        self._run_id = run_id
        self._artifact_uri = artifact_uri
        self._ended = False
        self._metrics = BackgroundMetricWriter(
            lambda batch: client.log_batch(run_id, metrics=batch),
            buffer_size=metrics_buffer_size, flush_seconds=metrics_flush_seconds)

    @classmethod
    def start(cls, *, tracking_uri: str, experiment: str, run_name: str, resume_run_id: str | None = None,
              description: str | None = None, metrics_buffer_size: int = MLFLOW_METRICS_PER_BATCH,
              metrics_flush_seconds: float | None = 10.0) -> "MlflowTracker":
        """Open a run: a new one in ``experiment`` (created if missing), or ``resume_run_id`` set back to RUNNING.

        Args:
            tracking_uri: the store (see `resolve_tracking_uri`); a plain directory is accepted too.
            experiment: experiment name of a new run.
            run_name: name of a new run (a resumed run keeps its own).
            resume_run_id: the run to re-open instead of starting one.
            description: the run description (tag ``mlflow.note.content``); None leaves it unset.
            metrics_buffer_size: metrics buffered before the background thread writes them.
            metrics_flush_seconds: write buffered metrics at least this often while logging (None: by size only).

        Raises:
            TrackingError: the store cannot be opened, the experiment is deleted, or ``resume_run_id`` is not a
                run of this store.
        """
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = store_uri(tracking_uri)
        configure_mlflow(uri)
        try:
            client = MlflowClient(tracking_uri=uri)
            if resume_run_id:
                run = _reopen_run(client, uri, resume_run_id, experiment)
            else:
                run = client.create_run(_experiment_id(client, experiment), run_name=run_name,
                                        tags=_context_tags())
        except MlflowException as exc:
            raise TrackingError(_store_message(uri, exc)) from exc
        tracker = cls(client, run.info.run_id, run.info.artifact_uri, metrics_buffer_size=metrics_buffer_size,
                      metrics_flush_seconds=metrics_flush_seconds)
        if description:
            tracker.set_tags({DESCRIPTION_TAG: description})
        logger.info("%s MLflow run %s (experiment '%s') in %s", "resumed" if resume_run_id else "started",
                    tracker.run_id, experiment, uri)
        return tracker

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def artifact_uri(self) -> str:
        """Where the run's artifacts live (e.g. ``file:///.../mlruns/<experiment>/<run>/artifacts``)."""
        return self._artifact_uri

    @property
    def client(self) -> "MlflowClient":
        """The run's ``MlflowClient`` (bound to its store), for records this class does not cover."""
        return self._client

    # ------------------------------------------------------------------------------------- params, tags
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
        with _store_write("params"):
            for batch in _batches(todo, MLFLOW_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(self._run_id, params=batch)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags in batches of at most 100; a value over MLflow's 8000 characters is truncated (logged)."""
        from mlflow.entities import RunTag

        todo = [RunTag(key, _fit_tag(key, str(value))) for key, value in tags.items()]
        with _store_write("tags"):
            for batch in _batches(todo, MLFLOW_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(self._run_id, tags=batch)

    # ------------------------------------------------------------------------------------------- metrics
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step``; a background thread writes them (`flush` to wait for it)."""
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self._metrics.add([Metric(key, float(value), timestamp, int(step)) for key, value in metrics.items()])

    def flush(self, wait: bool = True) -> None:
        """Hand buffered metrics to the writer thread; with ``wait``, return once the store holds them.

        Raises:
            TrackingError: (with ``wait``) metrics could not be written.
        """
        self._metrics.flush(wait=wait)

    def existing_metric_steps(self, key: str) -> list[int]:
        """The sorted distinct steps at which the store holds metric ``key`` (after a flush)."""
        self.flush(wait=True)
        return sorted({metric.step for metric in self._client.get_metric_history(self._run_id, key)})

    def last_step(self, key: str) -> int | None:
        """The last step the store holds for metric ``key``; None when it holds none."""
        steps = self.existing_metric_steps(key)
        return steps[-1] if steps else None

    def last_steps(self) -> dict[str, int]:
        """`last_step` of every metric of the run, for a resumed run to log no step twice."""
        return {key: steps[-1] for key, (steps, _) in self.metric_histories().items() if steps}

    def metric_histories(self) -> dict[str, tuple[list[int], list[float]]]:
        """Every metric of the run (after a flush) as ``(steps, values)``, in increasing step order, one value a
        step (the last one logged there): what a resumed run's plots start from."""
        self.flush(wait=True)
        histories = {}
        for key in self._client.get_run(self._run_id).data.metrics:
            by_step = {}
            for metric in sorted(self._client.get_metric_history(self._run_id, key),
                                 key=lambda m: (m.step, m.timestamp)):
                by_step[metric.step] = metric.value
            histories[key] = (list(by_step), list(by_step.values()))  # filled in step order
        return histories

    def unwritten_metrics(self) -> list[tuple[str, float, int, int]]:
        """``(key, value, timestamp_ms, step)`` of every metric whose write failed; forgotten once taken."""
        return [(m.key, m.value, m.timestamp, m.step) for m in self._metrics.take_unwritten()]

    def replay_metrics(self, records: list[tuple[str, float, int, int]]) -> None:
        """Write metrics kept by `unwritten_metrics` (e.g. saved beside a checkpoint), with their own
        timestamps and steps, now and in order (after what is buffered)."""
        from mlflow.entities import Metric

        self.flush(wait=True)
        metrics = [Metric(key, float(value), int(timestamp), int(step)) for key, value, timestamp, step in records]
        with _store_write("metrics"):
            for batch in _batches(metrics, MLFLOW_METRICS_PER_BATCH):
                self._client.log_batch(self._run_id, metrics=batch)

    # ----------------------------------------------------------------------------------------- artifacts
    def log_text(self, text: str, artifact_file: str) -> None:
        """Write ``text`` (UTF-8) as the artifact ``artifact_file`` (e.g. ``config/resolved.yaml``)."""
        with _store_write(f"the artifact {artifact_file}"):
            self._client.log_text(self._run_id, text, artifact_file)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write ``data`` byte for byte as the artifact ``artifact_file``."""
        self._upload(artifact_file, lambda path: path.write_bytes(data))

    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts, under the directory ``artifact_path`` (None: the root)."""
        with _store_write(f"the artifact {local_path}"):
            self._client.log_artifact(self._run_id, str(local_path), artifact_path)

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a local directory's contents into the run's artifacts, under ``artifact_path``."""
        with _store_write(f"the artifacts of {local_dir}"):
            self._client.log_artifacts(self._run_id, str(local_dir), artifact_path)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib ``Figure`` as PNG to ``artifact_file``, replacing an earlier one of that name.

        The figure is not closed: it belongs to the caller.
        """
        self._upload(artifact_file, lambda path: figure.savefig(path, format="png"))

    def log_dict(self, data: Any, artifact_file: str) -> None:
        """Write ``data`` as JSON, or as YAML when ``artifact_file`` ends in ``.yaml``/``.yml``.

        NumPy arrays and scalars, tuples and paths are written as plain lists, numbers and strings.
        """
        with _store_write(f"the artifact {artifact_file}"):
            self._client.log_dict(self._run_id, _plain(data), artifact_file)

    def _upload(self, artifact_file: str, write: Callable[[Path], Any]) -> None:
        target = PurePosixPath(artifact_file)
        with tempfile.TemporaryDirectory(prefix="gravtrain-artifact-") as scratch:
            local = Path(scratch) / target.name
            write(local)
            parent = str(target.parent)
            with _store_write(f"the artifact {artifact_file}"):
                self._client.log_artifact(self._run_id, str(local), None if parent in ("", ".") else parent)

    # ----------------------------------------------------------------------------------------- lifecycle
    def end(self, status: str = "FINISHED") -> None:
        """Write the buffered metrics, stop the writer thread and mark the run ``status``. A second call does nothing.

        Args:
            status: "FINISHED", "FAILED" or "KILLED".

        Raises:
            StoreWriteError: buffered metrics could not be written (the run is still marked ``status``), or the
                status itself could not be.
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")
        if self._ended:
            return
        self._ended = True
        unwritten = None
        try:
            self._metrics.close()
        except TrackingError as exc:
            unwritten = exc
        with _store_write(f"the run's status {status}"):
            self._client.set_terminated(self._run_id, status=status)
        logger.info("MLflow run %s %s", self._run_id, status)
        if unwritten is not None:
            raise unwritten

    def __enter__(self) -> "MlflowTracker":
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        if exc_type is None:
            self.end("FINISHED")
            return False
        status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        # Never hide the exception that ended the run; say exactly what of the ending could not be recorded.
        if status == "FAILED":
            try:
                self.set_tags({ERROR_TAG: f"{exc_type.__name__}: {exc}"})
            except TrackingError as problem:
                logger.error("could not record the error as the tag %s of run %s: %s", ERROR_TAG, self._run_id,
                             problem)
        try:
            self.end(status)
        except StoreWriteError as problem:
            if self._status_recorded(status):
                logger.error("MLflow run %s is marked %s, but %s", self._run_id, status, problem)
            else:
                logger.error("could not mark MLflow run %s %s: %s", self._run_id, status, problem)
        except Exception:
            logger.exception("could not mark MLflow run %s %s", self._run_id, status)
        return False

    def _status_recorded(self, status: str) -> bool:
        try:
            return self._client.get_run(self._run_id).info.status == status
        except Exception:
            return False


class NullTracker:
    """The `Tracker` of a run without tracking (``--no-tracking``): every record is dropped."""

    run_id = None
    artifact_uri = None

    def log_params(self, params: dict[str, str]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def flush(self, wait: bool = True) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        pass

    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        pass

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        pass

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        pass

    def log_dict(self, data: Any, artifact_file: str) -> None:
        pass

    def existing_metric_steps(self, key: str) -> list[int]:
        return []

    def last_step(self, key: str) -> int | None:
        return None

    def last_steps(self) -> dict[str, int]:
        return {}

    def metric_histories(self) -> dict[str, tuple[list[int], list[float]]]:
        return {}

    def unwritten_metrics(self) -> list[tuple[str, float, int, int]]:
        return []

    def replay_metrics(self, records: list[tuple[str, float, int, int]]) -> None:
        pass

    def end(self, status: str = "FINISHED") -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")

    def __enter__(self) -> "NullTracker":
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        return False


# ------------------------------------------------------------------------------------------------ helpers
@contextmanager
def _store_write(what: str):
    """Turn a failed write into `StoreWriteError` ("could not write <what> to the MLflow store: <reason>")."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError) as exc:
        raise StoreWriteError(f"could not write {what} to the MLflow store: {describe_store_failure(exc)}") from exc


def _experiment_id(client: "MlflowClient", name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowException:  # created meanwhile by another process (e.g. a parallel sweep)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise TrackingError(f"experiment '{name}' is deleted in this store; restore it (`mlflow experiments "
                            f"restore --experiment-id {experiment.experiment_id}`) or choose another name.")
    return experiment.experiment_id


def _reopen_run(client: "MlflowClient", uri: str, run_id: str, experiment: str):
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise TrackingError(f"cannot resume run '{run_id}': the store {uri} has no such run. Check the run ID "
                                f"(the MLflow UI shows it) and the store (Tracking.tracking_uri or "
                                f"MLFLOW_TRACKING_URI).") from None
        raise
    if run.info.lifecycle_stage == "deleted":
        raise TrackingError(f"cannot resume run '{run_id}': it is deleted; restore it first "
                            f"(`mlflow runs restore --run-id {run_id}`).")
    named = client.get_experiment(run.info.experiment_id).name
    if named != experiment:
        logger.warning("run %s belongs to experiment '%s', not '%s'; it stays there", run_id, named, experiment)
    client.update_run(run_id, status="RUNNING")
    return client.get_run(run_id)


def _context_tags() -> dict[str, str]:
    """The tags ``mlflow.start_run`` would add (user, source name and type), resolved the same way."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return resolve_tags({})
    except Exception:  # an internal MLflow helper: do without it rather than fail the run
        logger.debug("MLflow's context tags are unavailable", exc_info=True)
        return {}


def _store_message(uri: str, exc: Exception) -> str:
    message = getattr(exc, "message", str(exc))
    if is_file_store(uri) and ALLOW_FILE_STORE_ENV in message:
        return (f"MLflow refuses the file store {uri} because {ALLOW_FILE_STORE_ENV} is set to "
                f"'{os.environ.get(ALLOW_FILE_STORE_ENV)}'; unset it (gravtrain then allows the file store) "
                f"or use a sqlite:/// store.")
    return f"cannot use the MLflow store {uri}: {message}"


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _fit_tag(key: str, value: str) -> str:
    if len(value) <= MLFLOW_TAG_VALUE_LIMIT:
        return value
    logger.warning("tag %s is %d characters long; MLflow keeps %d, so it is truncated", key, len(value),
                   MLFLOW_TAG_VALUE_LIMIT)
    marker = " ... [truncated]"
    return value[: MLFLOW_TAG_VALUE_LIMIT - len(marker)] + marker


def _plain(value: Any) -> Any:
    """``value`` with NumPy types, tuples and paths turned into plain JSON/YAML data."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
