"""``gravtrain runs list``: one line per run of a store (name, status, stage, start, duration, the headline metrics,
resolved config's hash), newest first, as a table or as JSON.

A directory store is read through its local mirror (`gravtrain.stores.mirror`), brought up to date first, so
that a store mounted over sshfs lists as fast as a local one; the runs are then read with MLflow's own client.

Columns: the run name; MLflow's status; the ``gravtrain.stage`` tag (the stage running or last run); when some
run belongs to a sweep, its sweep (``name #trial`` for a trial's run, the name alone for the sweep's parent run);
the start (local time); the duration (to now for a run still RUNNING); the latest value of each metric of
`LIST_METRICS` the run has (``val/objective`` is the validation objective, which sweeps optimise); the first
characters of ``gravtrain.resolved_config_sha256``, the hash of the resolved config: runs trained with the same
values share it, and a ``--set`` that changes one changes it. The JSON has it whole, and the config file's own
hash (``gravtrain.config_sha256``) as ``config_file_sha256``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Mapping, Sequence

from gravtrain.stores.tables import MISSING, aligned, number_cell
from gravtrain.stores.ui import run_url
from gravtrain.tracking.errors import TrackingError
from gravtrain.tracking.headline_metrics import LIST_METRICS, METRIC_HEADINGS
from gravtrain.tracking.provenance import CONFIG_FILE_HASH_TAG, RESOLVED_CONFIG_HASH_TAG
from gravtrain.tracking.run_tags import PARENT_ROLE, STAGE_TAG, SWEEP_ROLE_TAG, SWEEP_TAG, TRIAL_TAG

logger = logging.getLogger(__name__)

#: Characters of the config hash shown in the table (JSON has it whole).
SHORT_HASH_LENGTH = 10


@dataclass(frozen=True)
class RunSummary:
    """One listed run: plain data."""

    run_id: str
    name: str
    experiment: str  #: the experiment's name
    status: str  #: MLflow's: RUNNING, FINISHED, FAILED, KILLED, SCHEDULED
    stage: str | None
    start_ms: int | None  #: start time, milliseconds since the epoch (as MLflow keeps it)
    end_ms: int | None
    metrics: Mapping[str, float] = field(default_factory=dict)  #: the latest value of each of `LIST_METRICS`
    config_sha256: str | None = None  #: the resolved config's hash
    sweep: str | None = None  #: a trial's sweep and number ("capacity #3"), a sweep's parent's name ("capacity")
    experiment_id: str | None = None
    config_file_sha256: str | None = None  #: the config file's hash

    def duration_seconds(self, now_ms: int | None = None) -> float | None:
        """End - start; to ``now_ms`` (default: now) for a run that has not ended."""
        if self.start_ms is None:
            return None
        end = self.end_ms if self.end_ms else (now_ms if now_ms is not None else int(time.time() * 1000))
        return max(0.0, (end - self.start_ms) / 1000.0)

    def ui_page(self, port: int = 5000) -> str:
        """The run's page in a `gravtrain ui` on ``port`` of this machine (`gravtrain.stores.ui.run_url`)."""
        return run_url(self.experiment_id, self.run_id, port=port)

    def to_dict(self, links_port: int | None = None) -> dict:
        """Plain data for JSON; with ``links_port``, ``ui_page`` too (`ui_page`)."""
        data = asdict(self)
        data["metrics"] = {key: value for key, value in self.metrics.items() if math.isfinite(value)}
        data["duration_s"] = self.duration_seconds()
        if links_port:
            data["ui_page"] = self.ui_page(links_port)
        return data


def list_runs(store: str, *, mirror_home=None, direct: bool = False) -> list[RunSummary]:
    """Every active run of every active experiment of ``store`` (a directory or an MLflow URI), newest first.

    A directory store is read through its mirror unless ``direct``.

    Raises:
        TrackingError: the store directory does not exist or cannot be read, or MLflow cannot read it.
    """
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    from gravtrain.stores.reader import store_client

    client = store_client(store, mirror_home=mirror_home, direct=direct)
    try:
        experiments = {e.experiment_id: e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)}
        runs, page_token = [], None
        while experiments:
            page = client.search_runs(list(experiments), max_results=1000, page_token=page_token,
                                      order_by=["attributes.start_time DESC"])
            runs += page
            page_token = page.token
            if not page_token:
                break
    except MlflowException as exc:
        raise TrackingError(f"MLflow cannot read the runs of {store}: {exc.message}; if a crash damaged it, "
                            f"`gravtrain runs doctor {store}` finds the damage.") from exc
    return [RunSummary(run_id=run.info.run_id, name=run.info.run_name or "",
                       experiment=experiments.get(run.info.experiment_id, run.info.experiment_id),
                       status=run.info.status, stage=run.data.tags.get(STAGE_TAG),
                       start_ms=run.info.start_time, end_ms=run.info.end_time,
                       metrics={key: run.data.metrics[key] for key in LIST_METRICS if key in run.data.metrics},
                       config_sha256=run.data.tags.get(RESOLVED_CONFIG_HASH_TAG),
                       config_file_sha256=run.data.tags.get(CONFIG_FILE_HASH_TAG),
                       sweep=_sweep_of(run.data.tags), experiment_id=run.info.experiment_id) for run in runs]


def _sweep_of(tags: Mapping[str, str]) -> str | None:
    """What ties a run to a sweep: ``name #trial`` for a trial's run, ``name`` for the sweep's parent run."""
    if SWEEP_TAG not in tags:
        return None
    if TRIAL_TAG in tags:
        return f"{tags[SWEEP_TAG]} #{tags[TRIAL_TAG]}"
    return tags[SWEEP_TAG] if tags.get(SWEEP_ROLE_TAG) == PARENT_ROLE else None


def runs_table(runs: Sequence[RunSummary], *, now_ms: int | None = None, links_port: int | None = None) -> str:
    """The runs as a fixed-width table (one line each, a heading line first), or a sentence when there are none.
    Metric columns that no run has are left out. ``links_port``: a last column with each run's page in a
    `gravtrain ui` on that port of this machine (`RunSummary.ui_page`)."""
    if not runs:
        return "no runs in this store."
    metrics = [key for key in LIST_METRICS if any(key in run.metrics for run in runs)]
    sweeps = any(run.sweep for run in runs)
    rows = [["name", "run", "status", "stage", *(["sweep"] if sweeps else []), "start", "duration",
             *(METRIC_HEADINGS[m] for m in metrics), "config", *(["page in gravtrain ui"] if links_port else [])]]
    for run in runs:
        rows.append([run.name or MISSING, run.run_id[:8], run.status, run.stage or MISSING,
                     *([run.sweep or MISSING] if sweeps else []), _start(run.start_ms),
                     _duration(run.duration_seconds(now_ms)),
                     *(number_cell(run.metrics.get(metric)) for metric in metrics),
                     (run.config_sha256 or MISSING)[:SHORT_HASH_LENGTH],
                     *([run.ui_page(links_port)] if links_port else [])])
    return "\n".join(aligned(rows))


def _start(start_ms: int | None) -> str:
    return datetime.fromtimestamp(start_ms / 1000).strftime("%Y-%m-%d %H:%M") if start_ms else MISSING


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    minutes, second = divmod(int(round(seconds)), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"
