"""Artifacts of an MLflow run (`RunArtifacts`, a part of `MlflowTracker`): text, bytes, files, directories,
figures and dicts, each written through the run's client; a failed write raises `StoreWriteError`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from gravtrain.tracking.store_writes import store_write

if TYPE_CHECKING:
    from mlflow import MlflowClient


class RunArtifacts:
    """The artifact records of `MlflowTracker` (its ``_client`` and ``_run_id``)."""

    _client: "MlflowClient"
    _run_id: str

    def log_text(self, text: str, artifact_file: str) -> None:
        """Write ``text`` (UTF-8) as the artifact ``artifact_file`` (e.g. ``config/resolved.yaml``)."""
        with store_write(f"the artifact {artifact_file}"):
            self._client.log_text(self._run_id, text, artifact_file)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Write ``data`` byte for byte as the artifact ``artifact_file``."""
        self._upload(artifact_file, lambda path: path.write_bytes(data))

    def log_file(self, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a local file into the run's artifacts, under the directory ``artifact_path`` (None: the root)."""
        with store_write(f"the artifact {local_path}"):
            self._client.log_artifact(self._run_id, str(local_path), artifact_path)

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a local directory's contents into the run's artifacts, under ``artifact_path``."""
        with store_write(f"the artifacts of {local_dir}"):
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
        with store_write(f"the artifact {artifact_file}"):
            self._client.log_dict(self._run_id, _plain(data), artifact_file)

    def _upload(self, artifact_file: str, write: Callable[[Path], Any]) -> None:
        target = PurePosixPath(artifact_file)
        with tempfile.TemporaryDirectory(prefix="gravtrain-artifact-") as scratch:
            local = Path(scratch) / target.name
            write(local)
            parent = str(target.parent)
            with store_write(f"the artifact {artifact_file}"):
                self._client.log_artifact(self._run_id, str(local), None if parent in ("", ".") else parent)


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
