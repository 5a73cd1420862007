"""The text tables of ``runs list`` and ``runs compare``: one way to write a missing cell, a number and columns."""

from __future__ import annotations

from typing import Sequence

#: A cell with no value (a run without that metric or param).
MISSING = "-"


def format_number(value: float) -> str:
    """A metric value in four significant digits (``0.8123``, ``257``, ``1.235e+05``)."""
    return f"{value:.4g}"


def number_cell(value: float | None) -> str:
    """`format_number`, or `MISSING` for no value."""
    return MISSING if value is None else format_number(value)


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as lines of left-aligned columns two spaces apart."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
