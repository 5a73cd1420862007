"""Finding, loading and identifying the pre-model a config names (``General.pre-model-type`` / ``pre-model-path``).

``pre-model-path`` is a ``.keras`` file (the config loader has already made a relative path relative to the
working directory) or an MLflow model URI such as ``runs:/<run id>/model``. model/ does not read stores: a URI is
downloaded by the ``fetch`` callable the caller passes (`PreModelFetch`; training and the CLI pass
``gravtrain.tracking.store_model_fetcher(config.Tracking)``, which reads the store the config tracks to, with
``MLFLOW_TRACKING_URI`` winning as for training). A pre-model's identity, logged with the main run, is
where it came from, the run that trained it (from the URI, or the run directory a checkpoint-directory path lies
in) and the SHA-256 of its weights::

    sha256 = SHA-256 over the weights in model order of (weight path, dtype, shape, bytes)

which does not change when the same weights are saved again (a ``.keras`` archive's bytes hold timestamps).
Every failure is a ``ConfigError`` on ``General.pre-model-path`` saying what is wrong and what to give instead.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras

from gravtrain.config.pre_model_source import PreModelFetch, pre_model_error, pre_model_file
from gravtrain.config.schema import Config
from gravtrain.model.loading import ModelFileError, feature_names, load_model

#: The output a noise filter scores hits with (1: signal, 0: noise).
SIGNAL_SCORE = "signal_score"


@dataclass(frozen=True)
class PreModel:
    """A loaded pre-model and its identity.

    Attributes:
        model: the Keras model.
        source: ``pre-model-path`` as configured (a path or a URI).
        run_id: the MLflow run that trained it; "" when the path does not tell.
        weights_sha256: the SHA-256 of its weights (module docstring).
    """

    model: keras.Model
    source: str
    run_id: str
    weights_sha256: str

    def identity(self) -> dict[str, str]:
        """The identity as MLflow params / tags of the main run: ``pre_model.source``, ``pre_model.run_id``,
        ``pre_model.weights_sha256``."""
        return {"pre_model.source": self.source, "pre_model.run_id": self.run_id or "unknown",
                "pre_model.weights_sha256": self.weights_sha256}

    def describe(self) -> str:
        run = f"run {self.run_id}" if self.run_id else "run unknown"
        return f"{self.source} ({run}, weights SHA-256 {self.weights_sha256[:12]}...)"


def weights_sha256(model: keras.Model) -> str:
    """SHA-256 of ``model``'s weights (module docstring)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = keras.ops.convert_to_numpy(weight)
        digest.update(f"{weight.path}|{value.dtype}|{value.shape}|".encode())
        digest.update(value.tobytes(order="C"))
    return digest.hexdigest()


def load_pre_model(config: Config, data_features, *, expect_output: str | None = SIGNAL_SCORE,
                   fetch: PreModelFetch | None = None) -> PreModel:
    """Load the pre-model ``config`` names and check it fits the data.

    Args:
        config: a config with ``pre-model-path`` set.
        data_features: the feature names of the data (the columns the main model gets).
        expect_output: an output the model must have (a noise filter's ``signal_score``); None for any.
        fetch: downloads a URI source (`PreModelFetch`); without it a URI is refused.

    Raises:
        ConfigError: no such file or run, not a gravtrain model, another kind of model, or other features.
    """
    source = config.General.pre_model_path
    if source is None:
        raise ValueError("the config names no pre-model")
    with tempfile.TemporaryDirectory(prefix="gravtrain-pre-model-") as scratch:
        path, run_id = pre_model_file(source, Path(scratch), fetch)
        try:
            model = load_model(path)
        except ModelFileError as exc:
            pre_model_error(f"{exc} A pre-model is a model gravtrain trained (General.model: noise-filter).")
    if expect_output is not None and expect_output not in model.output:
        pre_model_error(f"'{source}' is a gravtrain model but not a noise filter (it has no '{expect_output}' "
                        f"output; its outputs are {', '.join(sorted(model.output))}). Train one with "
                        "General.model: noise-filter.")
    saved, wanted = tuple(feature_names(model)), tuple(data_features)
    if saved != wanted:
        pre_model_error(f"'{source}' was trained on the features {', '.join(saved)} but the data has "
                        f"{', '.join(wanted)}; train the pre-model on data with the same features.")
    return PreModel(model=model, source=source, run_id=run_id, weights_sha256=weights_sha256(model))

