"""Numerical helpers shared by the test rooms."""

from __future__ import annotations

import numpy as np


def numeric_gradient(function, value, step=1e-6):
    """Central finite differences of the scalar ``function`` at the array ``value`` (evaluated in float64)."""
    value = np.array(value, dtype=np.float64)
    gradient = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        plus, minus = value.copy(), value.copy()
        plus[index] += step
        minus[index] -= step
        gradient[index] = (function(plus) - function(minus)) / (2 * step)
    return gradient
