"""`Tracker`: what training records a run through, and `NullTracker`, the one that drops every record
(``--no-tracking``). `MlflowTracker` (run.py) is the one that writes to MLflow."""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

#: The statuses a run can end with.
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")
#: MLflow's number for each status (``mlflow.entities.RunStatus``), as a file store's ``meta.yaml`` writes it.
STATUS_CODES = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}
#: The numbers of `RUN_STATUSES`: a run with one of them no longer changes its files.
ENDED_STATUS_CODES = {STATUS_CODES[name]: name for name in RUN_STATUSES}


def check_run_status(status: str) -> None:
    """Raise ValueError unless ``status`` is one a run can end with (`RUN_STATUSES`)."""
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")


@runtime_checkable
class Tracker(Protocol):
    """What training records a run through; `MlflowTracker` and `NullTracker` implement it."""

    @property
    def run_id(self) -> str | None: ...
    @property
    def experiment_id(self) -> str | None: ...
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


class NullTracker:
    """The `Tracker` of a run without tracking (``--no-tracking``): every record is dropped."""

    run_id = None
    experiment_id = None
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
        check_run_status(status)

    def __enter__(self) -> "NullTracker":
        return self

    def __exit__(self, exc_type, exc, traceback) -> bool:
        return False
