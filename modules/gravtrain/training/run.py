"""The run around a training: the MLflow run (or none), the checkpoint directory, what is logged at the start
and the end, and the run's status when training stops for any reason.

- Start: params (every key of the resolved config, flattened, in batches; a pre-model's source, run ID and
  weights SHA-256, also as tags), tags (provenance, the description as ``mlflow.note.content``, ``Tracking.tags``),
  artifacts (the original YAML byte for byte, the resolved
  config, the model summary, the feature statistics).
- End: the model as ``model.keras`` in the run directory and as an MLflow Keras-flavour model under ``model``;
  the status FINISHED, KILLED (Ctrl-C) or FAILED (with the error as the tag ``gravtrain.error``).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import keras

from gravtrain.config import resolved_yaml
from gravtrain.config.schema import Config
from gravtrain.stores.doctor import repair_run
from gravtrain.tracking.logged_models import MODEL_ARTIFACT, log_keras_model
from gravtrain.tracking.store import local_directory, store_uri
from gravtrain.training.checkpoint import latest_checkpoint
from gravtrain.tracking import (
    MlflowTracker,
    NullTracker,
    StoreWriteError,
    Tracker,
    TrackingError,
    configure_mlflow,
    flatten_params,
    provenance_tags,
    resolve_tracking_uri,
)

logger = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
#: Metrics the store failed to take, kept in the run directory (JSON lines) until a resume writes them.
UNWRITTEN_METRICS_FILE = "unwritten-metrics.jsonl"


class ResumeError(Exception):
    """A run that cannot be resumed (unknown run ID, no checkpoint, a changed config); the message says why."""


@dataclass
class RunContext:
    """One training call's run: where records and checkpoints go.

    Attributes:
        tracker: the MLflow tracker, or a ``NullTracker`` with tracking off.
        run_id: the MLflow run ID (None with tracking off).
        run_dir: the checkpoint directory of the run.
        resumed_from: the checkpoint a resumed run starts from (None for a new run).
        history: the metrics the store already holds (resume), name -> (steps, values): the plots start from
            them, and no step is logged twice.
        resume_hint: the command line that resumes this run.
    """

    tracker: Tracker
    run_id: str | None
    run_dir: Path
    resumed_from: Path | None = None
    history: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)
    resume_hint: str = ""

    def log_start(self, config: Config, feature_stats, summary: str) -> None:
        """Params, tags and the start artifacts of a new run (module docstring)."""
        self.tracker.log_params(flatten_params(config.to_dict()))
        self.tracker.log_text(resolved_yaml(config), "config/resolved.yaml")
        self.tracker.log_text(summary, "model_info/summary.txt")
        self.tracker.log_dict(feature_stats.to_dict(), "model_info/feature_stats.json")
        self.tracker.flush(wait=True)

    def log_pre_model(self, pre_model) -> None:
        """The pre-model's identity (``PreModel.identity``: source, run ID, weights SHA-256) as params and tags
        (``gravtrain.``-prefixed) of the run, and in the log."""
        identity = pre_model.identity()
        self.tracker.log_params(identity)
        self.tracker.set_tags({f"gravtrain.{name}": value for name, value in identity.items()})
        logger.info("pre-model %s", pre_model.describe())

    def save_unwritten_metrics(self) -> int:
        """Append the metrics the store failed to take to ``UNWRITTEN_METRICS_FILE``; returns how many (0, with
        an error logged, if that file cannot be written either)."""
        records = self.tracker.unwritten_metrics()
        if not records:
            return 0
        path = self.run_dir / UNWRITTEN_METRICS_FILE
        try:
            with open(path, "a", encoding="utf-8") as stream:
                stream.writelines(json.dumps(record) + "\n" for record in records)
        except OSError as exc:
            logger.error("could not keep the %d metric(s) the store did not take in %s: %s", len(records), path, exc)
            return 0
        return len(records)

    def replay_unwritten_metrics(self) -> int:
        """Write the metrics an earlier failure kept in ``UNWRITTEN_METRICS_FILE`` to the store, then remove the
        file; returns how many were written. A (key, step) the store already holds is not written again (a resume
        killed before removing the file), and a line cut by a crash is skipped; both are counted in the log."""
        path = self.run_dir / UNWRITTEN_METRICS_FILE
        if not path.is_file():
            return 0
        stored = {key: set(steps) for key, (steps, _) in self.tracker.metric_histories().items()}
        records, damaged, present = [], 0, 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                key, value, timestamp, step = json.loads(line)
                record = (str(key), float(value), int(timestamp), int(step))
            except (ValueError, TypeError):
                damaged += 1
                continue
            if record[3] in stored.get(record[0], ()):
                present += 1
            else:
                records.append(record)
        self.tracker.replay_metrics(records)
        path.unlink()
        logger.info("wrote %d metric(s) the store had failed to take%s%s", len(records),
                    f"; {present} were there already" if present else "",
                    f"; {damaged} damaged line(s) of {path.name} skipped" if damaged else "")
        return len(records)

    def log_model(self, model: keras.Model) -> None:
        """Save ``model.keras`` in the run directory and log the model with MLflow's Keras flavour."""
        path = self.run_dir / MODEL_FILE
        model.save(path)
        if self.run_id is None:
            return
        log_keras_model(self.tracker, model, MODEL_ARTIFACT)


@contextmanager
def open_run(config: Config, config_path: Path | None, config_bytes: bytes | None, *, tracking: bool,
             resume: str | None, run_name: str | None = None, tags: Mapping[str, str] | None = None):
    """The run of a training call as a context: yields a :class:`RunContext`; sets the final status on exit.
    ``run_name`` and ``tags`` name and tag a new run (a resumed one keeps its own)."""
    checkpoint_root = Path(config.Tracking.checkpoint_dir)
    config_arg = str(config_path) if config_path is not None else "CONFIG"
    if tracking:
        uri = resolve_tracking_uri(config.Tracking)
        configure_mlflow(uri)
        if resume:
            _repair_resumed_run(uri, resume)
        try:
            tracker = MlflowTracker.start(
                tracking_uri=uri, experiment=config.Tracking.experiment or config.General.experiment,
                run_name=run_name or config.Tracking.run_name or config.General.name, resume_run_id=resume,
                description=config.General.description_string or None)
        except TrackingError as exc:
            raise ResumeError(str(exc)) from None
        run_dir = checkpoint_root / tracker.run_id
        hint = f"`gravtrain train {config_arg} --resume {tracker.run_id}`"
    else:
        tracker = NullTracker()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(resume) if resume else checkpoint_root / f"{_safe(config.General.name)}-{stamp}"
        hint = f"`gravtrain train {config_arg} --no-tracking --resume {run_dir}`"

    context = RunContext(tracker=tracker, run_id=tracker.run_id, run_dir=run_dir, resume_hint=hint)
    try:
        with tracker:
            if resume:
                context.resumed_from = latest_checkpoint(run_dir)
                if context.resumed_from is None:
                    raise ResumeError(f"run {resume} has no checkpoint in {run_dir}; was it trained from this "
                                      f"directory with Tracking.checkpoint_dir '{config.Tracking.checkpoint_dir}'?")
                try:
                    tracker.log_params(flatten_params(config.to_dict()))  # refuses a changed config
                except StoreWriteError:
                    raise
                except TrackingError as exc:
                    raise ResumeError(f"cannot resume {resume} with a different config: {exc}") from None
                context.replay_unwritten_metrics()
                context.history = tracker.metric_histories()
            else:
                tags_of_run = provenance_tags(config_path, config_bytes, resolved_yaml(config))
                tags_of_run.update(dict(config.Tracking.tags))
                tags_of_run.update(tags or {})
                tracker.set_tags(tags_of_run)
                if config_bytes is not None:
                    tracker.log_bytes(config_bytes, f"config/{config_path.name if config_path else 'config.yaml'}")
            logger.info("run %s; checkpoints in %s", tracker.run_id or "(no tracking)", run_dir)
            yield context
    finally:
        if run_dir.is_dir() and context.save_unwritten_metrics():  # what ending the run failed to write
            logger.info("metrics the store did not take are kept in %s for the resume",
                        run_dir / UNWRITTEN_METRICS_FILE)


def _repair_resumed_run(uri: str, run_id: str) -> None:
    """Before a run is resumed, move aside the metric files an earlier crash damaged (MLflow could not read the
    run otherwise) and say what was skipped; a damaged run info cannot be resumed (ResumeError)."""
    directory = local_directory(store_uri(uri))
    if directory is None:
        return
    report = repair_run(directory, run_id)
    if any(damage.run_info_lost for damage in report.damages):
        raise ResumeError(f"run {run_id} cannot be resumed: its {report.damages[0].describe(directory)}. "
                          f"`gravtrain runs doctor {directory} --fix` moves it aside so the rest of the store works.")
    if report.repaired:
        logger.warning("run %s: an earlier crash damaged %d file(s); the valid data is kept and the damaged "
                       "files are in %s:\n%s", run_id, len(report.repaired), report.quarantine,
                       "\n".join(f"  {damage.describe(directory)}" for damage in report.damages))


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name) or "run"
