"""Margins in inches for a figure's row of axes, known before anything is drawn.

Matplotlib's constrained layout measures every label with a whole draw before the real one, which is about half
the cost of saving a small figure; the live plots, drawn on the training thread, place their axes with these
fixed margins instead.
"""

from __future__ import annotations

#: Height of one line of a figure title (``figure.titlesize``, 12 points, line spacing 1.2), inches.
TITLE_LINE = 0.2


def margins(figsize: tuple[float, float], *, left: float, right: float, bottom: float, top: float,
            gap: float = 0.0, columns: int = 1) -> dict[str, float]:
    """The ``gridspec_kw`` of ``Figure.subplots`` for ``columns`` axes in a row of a ``figsize`` figure, with
    margins and a ``gap`` between the axes in inches."""
    width, height = figsize
    panel = (width - left - right - (columns - 1) * gap) / columns
    if panel <= 0 or height - bottom - top <= 0:
        raise ValueError(f"a figure of {width} x {height} inches is too small for its margins")
    return {"left": left / width, "right": 1.0 - right / width, "bottom": bottom / height,
            "top": 1.0 - top / height, "wspace": gap / panel}
