"""Fixtures of the plotting tests: figures must draw and save without a single warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from matplotlib.figure import Figure


@pytest.fixture
def no_warnings():
    """Turn every warning raised inside the test into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def save_png(tmp_path: Path, no_warnings):
    """Save a figure as a small PNG under tmp_path (warnings are errors) and return its path."""
    def save(figure: Figure, name: str = "figure.png") -> Path:
        path = tmp_path / name
        figure.savefig(path, dpi=40)
        assert path.stat().st_size > 1_000
        return path
    return save
