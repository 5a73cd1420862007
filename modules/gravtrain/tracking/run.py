"""A training run in the MLflow store: `MlflowTracker`, which opens, resumes and ends it.

Everything goes through an explicit ``mlflow.MlflowClient`` bound to the run's store: MLflow's global "fluent"
state (``mlflow.start_run``, the active run, the global tracking URI) is never touched, so a notebook that has
its own active run keeps it. The records are written by the parts it is made of, one concern each:
`RunParamsAndTags` (run_params.py), `RunMetrics` (run_metrics.py) and `RunArtifacts` (run_artifacts.py); the
`Tracker` interface it implements, with its do-nothing twin `NullTracker`, is in tracker.py.

- As a context manager the tracker ends the run: FINISHED, KILLED on ``KeyboardInterrupt`` (Ctrl-C), FAILED
  on any other exception, with ``ExceptionType: message`` in the tag ``gravtrain.error``.
- A write the store fails (a full disk) raises `StoreWriteError` naming the reason.
- In a directory store, the end of a run writes its pack (`gravtrain.tracking.run_pack`): its metadata in one
  file, which makes reading the store over a slow mount (`gravtrain ui`) fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gravtrain.tracking.errors import StoreWriteError, TrackingError
from gravtrain.tracking.metric_writer import MLFLOW_METRICS_PER_BATCH, BackgroundMetricWriter
from gravtrain.tracking.run_artifacts import RunArtifacts
from gravtrain.tracking.run_metrics import RunMetrics
from gravtrain.tracking.run_params import RunParamsAndTags
from gravtrain.tracking.run_pack import write_run_pack
from gravtrain.tracking.store import ALLOW_FILE_STORE_ENV, configure_mlflow, is_file_store, local_directory, store_uri
from gravtrain.tracking.store_writes import store_write
from gravtrain.tracking.tracker import check_run_status

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

ERROR_TAG = "gravtrain.error"
DESCRIPTION_TAG = "mlflow.note.content"


class MlflowTracker(RunParamsAndTags, RunMetrics, RunArtifacts):
    """One MLflow run, opened with `MlflowTracker.start`; its records are those of its parts (the module
    docstrings of run_params.py, run_metrics.py and run_artifacts.py say what each does)."""

    def __init__(self, client: "MlflowClient", run_id: str, artifact_uri: str, *,
                 metrics_buffer_size: int = MLFLOW_METRICS_PER_BATCH, metrics_flush_seconds: float | None = 10.0):
        self._client = client
        self._run_id = run_id
        self._experiment_id: str | None = None  # set by `start`
        self._artifact_uri = artifact_uri
        self._ended = False
        self._run_directory: Path | None = None  # in a directory store: the run's folder, packed at the end
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
        tracker._experiment_id = run.info.experiment_id
        directory = local_directory(uri)
        if directory is not None:
            tracker._run_directory = directory / run.info.experiment_id / run.info.run_id
        if description:
            tracker.set_tags({DESCRIPTION_TAG: description})
        logger.info("%s MLflow run %s (experiment '%s') in %s", "resumed" if resume_run_id else "started",
                    tracker.run_id, experiment, uri)
        return tracker

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        """The ID of the run's experiment (None for a tracker not opened with `start`)."""
        return self._experiment_id

    @property
    def artifact_uri(self) -> str:
        """Where the run's artifacts live (e.g. ``file:///.../mlruns/<experiment>/<run>/artifacts``)."""
        return self._artifact_uri

    @property
    def client(self) -> "MlflowClient":
        """The run's ``MlflowClient`` (bound to its store), for records this class does not cover."""
        return self._client

    # ----------------------------------------------------------------------------------------- lifecycle
    def end(self, status: str = "FINISHED") -> None:
        """Write the buffered metrics, stop the writer thread and mark the run ``status``. A second call does nothing.

        Args:
            status: "FINISHED", "FAILED" or "KILLED".

        Raises:
            StoreWriteError: buffered metrics could not be written (the run is still marked ``status``), or the
                status itself could not be.
        """
        check_run_status(status)
        if self._ended:
            return
        self._ended = True
        unwritten = None
        try:
            self._metrics.close()
        except TrackingError as exc:
            unwritten = exc
        with store_write(f"the run's status {status}"):
            self._client.set_terminated(self._run_id, status=status)
        if self._run_directory is not None and self._run_directory.is_dir():
            write_run_pack(self._run_directory)  # after the status: the pack holds the final meta.yaml
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


#: The experiment tag MLflow's UI reads to choose its view; this value opens the runs table (MLflow 3.x shows a
#: new experiment without it as a GenAI project, with no runs).
EXPERIMENT_KIND_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def run_status(tracking_uri: str, run_id: str) -> str:
    """The status of run ``run_id`` in the store ``tracking_uri``: RUNNING, FINISHED, FAILED, KILLED or SCHEDULED."""
    from mlflow import MlflowClient

    configure_mlflow(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri).get_run(run_id).info.status


def _experiment_id(client: "MlflowClient", name: str) -> str:
    """The ID of experiment ``name``, created (tagged with `EXPERIMENT_KIND_TAGS`) if the store has none."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags=EXPERIMENT_KIND_TAGS)
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
