"""Where runs are kept: the tracking store URI, and what MLflow needs to open it in this process.

A store is written in ``Tracking.tracking_uri`` as a directory (``mlruns``, relative to where you run), a
``sqlite:///file.db`` database or an ``http(s)://`` tracking server. The ``MLFLOW_TRACKING_URI`` environment
variable, when set, wins over the config.

MLflow 3 keeps the directory ("file") store in maintenance mode and refuses to open it unless the environment
variable ``MLFLOW_ALLOW_FILE_STORE`` is true: the check is in the constructors of
``mlflow/store/tracking/file_store.py`` and ``mlflow/store/model_registry/file_store.py``, which read
``MLFLOW_ALLOW_FILE_STORE`` (``mlflow/environment_variables.py``) each time a store is made. `configure_mlflow`
sets it (``os.environ.setdefault``: a value you set yourself is kept) for gravtrain's own process and the
processes it starts, so the default ``mlruns`` directory works as it always has.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

logger = logging.getLogger(__name__)

#: The environment variable with which MLflow 3 opens a directory (file) store instead of refusing it.
ALLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
#: The environment variable that names the store; it wins over ``Tracking.tracking_uri``.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
ALLOW_FILE_STORE_VARIABLE = ALLOW_FILE_STORE_ENV  # the names the first draft of this room used
TRACKING_URI_VARIABLE = TRACKING_URI_ENV


def resolve_tracking_uri(tracking_section) -> str:
    """The store URI of a run: ``MLFLOW_TRACKING_URI`` if set, else ``tracking_section.tracking_uri``.

    Args:
        tracking_section: the config's ``Tracking`` section (anything with a ``tracking_uri`` attribute).

    Returns:
        A URI MLflow opens as is: a directory becomes an absolute ``file://`` URI (resolved against the current
        working directory now, so a later ``chdir`` cannot move the store); other URIs are unchanged.
    """
    from_environment = os.environ.get(TRACKING_URI_ENV, "").strip()
    if from_environment:
        logger.debug("tracking store from %s: %s", TRACKING_URI_ENV, from_environment)
        return store_uri(from_environment)
    return store_uri(tracking_section.tracking_uri)


def named_store(given: str | None) -> str:
    """The store a command that reads runs opens (``gravtrain ui``, ``runs list|compare|doctor``), as the user
    wrote it: the one named on the command line, else ``MLFLOW_TRACKING_URI``, else ``Tracking.tracking_uri``'s
    default, as training writes by default."""
    from gravtrain.config.schema import Tracking

    from_environment = os.environ.get(TRACKING_URI_ENV, "").strip()
    return given or from_environment or Tracking().tracking_uri


def store_uri(location: str) -> str:
    """``location`` as an MLflow store URI: a plain directory becomes an absolute ``file://`` URI."""
    if has_scheme(location):
        return location
    return Path(location).expanduser().resolve().as_uri()


def has_scheme(location: str) -> bool:
    """Whether ``location`` is a URI (``sqlite:///``, ``http://``, ``file:``) rather than a path.

    A one-letter scheme is a Windows drive (``C:\\runs``), so it counts as a path.
    """
    return len(urlparse(location).scheme) > 1


def is_file_store(uri: str) -> bool:
    """Whether MLflow opens ``uri`` as a directory (file) store: a plain path or a ``file:`` URI."""
    return not has_scheme(uri) or urlparse(uri).scheme == "file"


def local_directory(uri: str) -> Path | None:
    """The directory of a file store URI or path; None for any other store."""
    if not is_file_store(uri):
        return None
    if not has_scheme(uri):
        return Path(uri).expanduser()
    return Path(url2pathname(urlparse(uri).path))  # undoes percent-escapes and, on Windows, the /C:/ drive form


def file_store_environment() -> dict[str, str]:
    """The environment variables MLflow needs to open a file store (set only where not already set)."""
    return {ALLOW_FILE_STORE_ENV: "true"}


def configure_mlflow(tracking_uri: str) -> None:
    """Prepare this process to open ``tracking_uri``.

    - A file store: set ``MLFLOW_ALLOW_FILE_STORE=true`` unless it is already set (module docstring).
    - A ``sqlite:///`` file: create its directory, which SQLite would not do.

    MLflow's global tracking URI is left alone (the tracker passes the URI to its own ``MlflowClient``), so a
    notebook's own ``mlflow.set_tracking_uri`` and active run are not disturbed.
    """
    if is_file_store(tracking_uri):
        for name, value in file_store_environment().items():
            os.environ.setdefault(name, value)
        if os.environ[ALLOW_FILE_STORE_ENV].strip().lower() not in ("true", "1"):
            logger.warning("%s is set to '%s', so MLflow will refuse the file store %s; unset it, or use a "
                           "sqlite:/// store.", ALLOW_FILE_STORE_ENV, os.environ[ALLOW_FILE_STORE_ENV], tracking_uri)
    elif tracking_uri.startswith("sqlite:///"):
        database = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
