"""Writing runs to MLflow: the store a run goes to, the run tracker, provenance tags, param flattening, the logged
model, and the names the run readers share (`headline_metrics`). Reading and serving stores (the mirror, the UI,
``runs list|compare|doctor``) is `gravtrain.stores`'.

Importing this package is cheap: MLflow is imported when a run is started or read, not here.
"""

from gravtrain.tracking.errors import StoreWriteError, TrackingError
from gravtrain.tracking.logged_models import log_keras_model, store_model_fetcher
from gravtrain.tracking.params import flatten_params, unflatten_params
from gravtrain.tracking.provenance import provenance_tags
from gravtrain.tracking.run import MlflowTracker, run_status
from gravtrain.tracking.store import configure_mlflow, file_store_environment, resolve_tracking_uri
from gravtrain.tracking.tracker import NullTracker, Tracker

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
    "store_model_fetcher",
    "unflatten_params",
]
