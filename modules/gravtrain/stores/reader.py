"""Opening a store to read its runs, in one place for ``runs list``, ``runs compare`` and the UI's checks: a
directory store through its local mirror (`gravtrain.stores.mirror`), brought up to date first, unless ``direct``;
any other store (``sqlite:///``, ``http(s)://``) as it is."""

from __future__ import annotations

from gravtrain.stores.mirror import mirrored_store_uri
from gravtrain.tracking.store import configure_mlflow


def store_client(store: str, *, mirror_home=None, direct: bool = False):
    """An ``mlflow.MlflowClient`` that reads ``store`` (a directory or an MLflow URI) (module docstring).

    Raises:
        TrackingError: the store directory does not exist or cannot be listed.
    """
    from mlflow import MlflowClient

    uri = mirrored_store_uri(store, mirror_home=mirror_home, direct=direct)
    configure_mlflow(uri)
    return MlflowClient(tracking_uri=uri)
