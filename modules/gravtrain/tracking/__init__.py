"""MLflow tracking: the store, the run tracker, provenance tags, param flattening and the UI.

Importing this package is cheap: MLflow is imported when a run is started or read, not here.
"""

from gravtrain.tracking.errors import StoreWriteError, TrackingError
from gravtrain.tracking.logged_models import log_keras_model, store_model_fetcher
from gravtrain.tracking.params import flatten_params, unflatten_params
from gravtrain.tracking.provenance import provenance_tags
from gravtrain.tracking.run import MlflowTracker, run_status
from gravtrain.tracking.store import configure_mlflow, file_store_environment, resolve_tracking_uri
from gravtrain.tracking.tracker import NullTracker, Tracker
from gravtrain.tracking.ui import serve_ui, ui_command_line, ui_environment

__all__ = [
    "MlflowTracker",
    "NullTracker",
    "StoreWriteError",
    "Tracker",
    "TrackingError",
    "configure_mlflow",
    "file_store_environment",
    "flatten_params",
    "log_keras_model",
    "provenance_tags",
    "resolve_tracking_uri",
    "run_status",
    "serve_ui",
    "store_model_fetcher",
    "ui_command_line",
    "ui_environment",
    "unflatten_params",
]
