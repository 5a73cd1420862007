"""Models in the store: logging a trained model with MLflow's Keras flavour, and fetching a logged model's
``.keras`` file back (a pre-model named by a ``runs:/<run id>/model`` URI).

The rest of gravtrain reaches MLflow's model functions only through this module: model/ receives
:func:`store_model_fetcher`'s callable instead of importing MLflow, and training logs through
:func:`log_keras_model`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

import numpy as np

from gravtrain.tracking.store import configure_mlflow, resolve_tracking_uri
from gravtrain.tracking.tracker import Tracker
from gravtrain.version import __version__

logger = logging.getLogger(__name__)

#: The name a run's model is logged under: its URI is ``runs:/<run id>/model``.
MODEL_ARTIFACT = "model"
_RUN_URI = re.compile(r"^runs:/([^/]+)/")


def model_signature(model):
    """MLflow's tensor signature of a gravtrain model: inputs ``features`` (V, F) float32 and ``row_splits``
    (E+1,) int32, outputs the condensation heads by name; -1 marks the ragged (hit or event) axis."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    def spec(name, tensor):
        return TensorSpec(np.dtype(tensor.dtype), tuple(-1 if size is None else int(size) for size in tensor.shape),
                          name)

    return ModelSignature(inputs=Schema([spec(tensor.name, tensor) for tensor in model.inputs]),
                          outputs=Schema([spec(name, tensor) for name, tensor in sorted(model.output.items())]))


def model_requirements() -> list[str]:
    """The pip requirements of a logged model: this TensorFlow, Keras and gravtrain. Given explicitly, because
    MLflow would otherwise infer them by loading the model in a subprocess."""
    requirements = []
    for name in ("tensorflow", "keras"):
        try:
            requirements.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # e.g. a TensorFlow build under another distribution name
            requirements.append(name)
    return requirements + [f"gravtrain=={__version__}"]


def log_keras_model(tracker: Tracker, model, artifact_path: str = MODEL_ARTIFACT) -> None:
    """Log ``model`` on ``tracker``'s run as an MLflow Keras-flavour model under ``artifact_path`` (with its
    signature and requirements), so ``mlflow.keras.load_model("runs:/<run id>/model")`` loads it.

    The run is tagged as MLflow's ``Model.log`` tags it (``mlflow.log-model.history``: the run ID, the path, the
    flavours), so the UI lists the model under the run's "Logged models" and shows the folder as a model. The
    model is written through the tracker, like every artifact, rather than by ``mlflow.keras.log_model``: its
    retries and disk-full handling then cover it too."""
    import mlflow.keras
    from mlflow.models import Model
    from mlflow.utils.mlflow_tags import MLFLOW_LOGGED_MODELS

    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / artifact_path
        mlflow.keras.save_model(model, str(local), pip_requirements=model_requirements(),
                                signature=model_signature(model))
        description = Model.load(str(local))
        description.run_id, description.artifact_path = tracker.run_id, artifact_path
        description.save(str(local / "MLmodel"))
        tracker.log_artifacts(local, artifact_path)
    tracker.set_tags({MLFLOW_LOGGED_MODELS: json.dumps([description.get_tags_dict()])})


def download_model_file(uri: str, scratch: Path, *, tracking_uri: str) -> tuple[Path, str]:
    """The ``.keras`` file of the MLflow model at ``uri`` (e.g. ``runs:/<run id>/model``), downloaded into
    ``scratch`` from the store ``tracking_uri``, and the run ID the URI names ("" when it names none).

    Raises:
        FileNotFoundError: the store cannot give the model, or it holds no ``.keras`` file; the message says
            what to check.
    """
    import mlflow

    configure_mlflow(tracking_uri)
    match = _RUN_URI.match(uri)
    run_id = match.group(1) if match else ""
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # a progress bar per file clutters the log
    saved = {name: os.environ.get(name) for name in quiet}
    os.environ.update(quiet)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(scratch),
                                                         tracking_uri=tracking_uri))
    except Exception as exc:  # MLflow raises several types for an unknown run or artifact
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise FileNotFoundError(
            f"'{uri}' could not be read from the store {tracking_uri} ({type(exc).__name__}: {first_line}). Check "
            "the run ID and the store (Tracking.tracking_uri or MLFLOW_TRACKING_URI), and that the run logged its "
            f"model under that name (gravtrain logs it as '{MODEL_ARTIFACT}').") from None
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    files = sorted(local.rglob("*.keras")) if local.is_dir() else [local]
    if not files or files[0].suffix != ".keras":
        raise FileNotFoundError(f"'{uri}' holds no .keras model file; give the URI of a model gravtrain logged, "
                                f"runs:/<run id>/{MODEL_ARTIFACT}.")
    return files[0], run_id


def store_model_fetcher(tracking_section) -> Callable[[str, Path], tuple[Path, str]]:
    """A fetcher for model/'s pre-models: ``fetch(uri, scratch)`` is :func:`download_model_file` from the store
    of ``tracking_section`` (``MLFLOW_TRACKING_URI`` wins), resolved when a URI is fetched, not before."""

    def fetch(uri: str, scratch: Path) -> tuple[Path, str]:
        return download_model_file(uri, scratch, tracking_uri=resolve_tracking_uri(tracking_section))

    return fetch
