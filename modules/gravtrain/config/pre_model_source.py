"""Where the file of the pre-model a config names is (``General.pre-model-path``), found without loading it, so
without TensorFlow: `gravtrain check --no-model` asks this alone, and model/ loads what it finds.

``pre-model-path`` is a ``.keras`` file (the config loader has already made a path relative to the config file
one the working directory finds) or an MLflow model URI such as ``runs:/<run id>/model``, which the ``fetch``
callable the caller passes downloads (`PreModelFetch`; config/ reads no store).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, NoReturn

from gravtrain.config.errors import ConfigError, ConfigIssue

#: The key every pre-model error is reported on.
PRE_MODEL_KEY = "General.pre-model-path"
#: A URI MLflow resolves (``runs:/``, ``models:/``, ``file:``, ...) rather than a path.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
#: ``fetch(uri, scratch)``: the ``.keras`` file of the model at ``uri``, downloaded into the folder ``scratch``, and
#: the run ID the URI names ("" if none); raises FileNotFoundError with a message for the user when it cannot.
PreModelFetch = Callable[[str, Path], tuple[Path, str]]


def pre_model_file(source: str, scratch: Path, fetch: PreModelFetch | None) -> tuple[Path, str]:
    """The ``.keras`` file ``source`` names (a URI's downloaded into ``scratch``) and the run that trained it:
    the URI's run, or the run directory a checkpoint path lies in ("" when neither says).

    Raises:
        ConfigError: on ``General.pre-model-path``: no such file, or the store cannot give the URI's model.
        ValueError: ``source`` is a URI and no ``fetch`` is given (a caller's mistake, not the user's).
    """
    if _URI.match(source):
        if fetch is None:
            raise ValueError(f"pre-model-path '{source}' is a URI: pass fetch (the store's model fetcher)")
        try:
            return fetch(source, scratch)
        except FileNotFoundError as exc:
            pre_model_error(str(exc))
    path = Path(source)
    if not path.is_file():
        pre_model_error(f"'{source}' does not exist (a relative path is relative to the config file). Give the "
                        "filter's .keras file, e.g. checkpoints/<run id>/model.keras, or its MLflow model URI "
                        "runs:/<run id>/model.")
    return path, path.parent.name if _RUN_ID.match(path.parent.name) else ""


def pre_model_error(message: str) -> NoReturn:
    """Raise the `ConfigError` of a pre-model that cannot serve, on ``General.pre-model-path``."""
    raise ConfigError([ConfigIssue(path=PRE_MODEL_KEY, message=message)])
