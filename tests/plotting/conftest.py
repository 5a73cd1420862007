"""Fixtures of the plotting tests: figures must draw and save without a single warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
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


@pytest.fixture
def assert_fits():
    """Check a figure placed with fixed margins (no layout engine): every axes, with its tick and axis labels, lies
    inside the figure and beside (not over) the others, and the figure title lies above them."""
    def check(figure: Figure) -> None:
        assert figure.get_layout_engine() is None  # saving it runs no layout pass
        FigureCanvasAgg(figure)
        figure.draw_without_rendering()
        renderer = figure.canvas.get_renderer()
        width, height = figure.bbox.width, figure.bbox.height
        boxes = [axes.get_tightbbox(renderer) for axes in figure.axes]
        for box in boxes:
            assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, box
        for left, right in zip(boxes, boxes[1:]):
            assert left.x1 <= right.x0 + 1, (left, right)
        if figure.get_suptitle():
            title = figure._suptitle.get_window_extent(renderer)
            assert title.y1 <= height + 1 and title.y0 >= max(box.y1 for box in boxes) - 1, title
    return check
