"""Loading a saved gravtrain model, with one clear error for a missing or unreadable file."""

from __future__ import annotations

from pathlib import Path

import keras

import gravtrain.layers  # noqa: F401  (registers the layers for deserialisation)


class ModelFileError(Exception):
    """A model file that does not exist or is not a gravtrain Keras model; the message says which and why."""


def load_model(path) -> keras.Model:
    """Load a ``.keras`` model written by gravtrain (or ``keras.Model.save``) with all gravtrain layers known.

    Raises:
        ModelFileError: the file is missing, not a ``.keras`` archive, or holds no gravtrain condensation model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; give the .keras file a training run saved "
                             "(in its MLflow artifacts under model/ or in the run's checkpoint directory).")
    if path.suffix != ".keras":
        raise ModelFileError(f"{path}: expected a Keras 3 '.keras' archive, got a '{path.suffix}' file.")
    try:
        model = keras.saving.load_model(path)
    except Exception as exc:  # Keras raises many types for a damaged archive; the user needs one message
        raise ModelFileError(f"{path}: could not be read as a Keras model ({type(exc).__name__}: {exc}).") from exc
    try:
        model.get_layer("input_conditioning")
    except ValueError:
        raise ModelFileError(f"{path}: is a Keras model but not one built by gravtrain (it has no "
                             "'input_conditioning' layer holding the feature statistics).") from None
    return model


def feature_names(model: keras.Model) -> tuple[str, ...]:
    """The input feature names, in column order, that ``model`` was built (and standardised) for."""
    return tuple(model.get_layer("input_conditioning").names)
