"""The stores' tests use the tracking tests' fresh store and MLflow client (tests/tracking/conftest.py)."""

from tests.tracking.conftest import clean_environment, client, store  # noqa: F401  (fixtures)
