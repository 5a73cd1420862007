"""Checks of event arrays, so that bad data fails here with a clear message and never inside TensorFlow.

:func:`validate_event_arrays` checks, in this order: ``row_splits`` (1-D integers starting at 0,
non-decreasing), ``features`` (2-D, ``N_FEATURES`` columns), every truth array (present, known, (V, width)),
the row counts against ``row_splits[-1]``, the dtypes, finiteness (no NaN or inf) and ``t_idx >= -1``.
Each failure raises :class:`~gravtrain.data.errors.DataError` naming the file, the array and the first bad
event (for a problem that affects every event, such as a wrong dtype, that is event 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gravtrain.data.errors import DataError
from gravtrain.data.names import (FEATURE_DTYPE, FEATURE_NAMES, N_FEATURES, NOISE_INDEX, ROW_SPLITS_DTYPE,
                                  TRUTH_DTYPES, TRUTH_WIDTHS)


def event_of_row(row_splits: np.ndarray, row: int) -> int:
    """Index of the event that holds hit ``row`` (the last event for a row past the end)."""
    n_events = len(row_splits) - 1
    return int(min(np.searchsorted(row_splits, row, side="right") - 1, max(n_events - 1, 0)))


def _check_row_splits(row_splits, path) -> None:
    if not isinstance(row_splits, np.ndarray) or row_splits.ndim != 1 or len(row_splits) < 1:
        raise DataError("must be a 1-D array of length n_events + 1", path=path, array="row_splits", event=0)
    if row_splits.dtype.kind not in "iu":
        raise DataError(f"has dtype {row_splits.dtype}, expected an integer dtype ({ROW_SPLITS_DTYPE})",
                        path=path, array="row_splits", event=0)
    if row_splits[0] != 0:
        raise DataError(f"must start at 0, starts at {row_splits[0]}", path=path, array="row_splits", event=0)
    steps = np.diff(row_splits.astype(np.int64))
    if (steps < 0).any():
        event = int(np.flatnonzero(steps < 0)[0])
        raise DataError(f"is not monotonic: row_splits[{event + 1}] = {row_splits[event + 1]} is below "
                        f"row_splits[{event}] = {row_splits[event]}", path=path, array="row_splits", event=event)


def _check_dtype(name: str, array: np.ndarray, expected: np.dtype, exact: bool, path) -> None:
    if array.dtype == expected:
        return
    same_kind = (array.dtype.kind == "f" and expected.kind == "f") or (
        array.dtype.kind in "iu" and expected.kind in "iu")
    if exact or not same_kind:
        raise DataError(f"has dtype {array.dtype}, expected {expected} (this affects every event)",
                        path=path, array=name, event=0)


def _check_shape(name: str, array, width: int, row_splits: np.ndarray, path) -> None:
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        shape = getattr(array, "shape", None)
        raise DataError(f"must be a 2-D array (n_hits, {width}), got shape {shape}", path=path, array=name, event=0)
    if array.shape[1] != width:
        what = "wrong feature count" if name == "features" else "wrong width"
        raise DataError(f"{what}: has {array.shape[1]} columns, expected {width}", path=path, array=name, event=0)
    n_hits = int(row_splits[-1])
    if array.shape[0] != n_hits:
        first_bad = event_of_row(row_splits, min(array.shape[0], n_hits))
        raise DataError(f"mismatched array length: {array.shape[0]} rows but row_splits[-1] = {n_hits}",
                        path=path, array=name, event=first_bad)


def _check_finite(name: str, array: np.ndarray, row_splits: np.ndarray, column_names, path) -> None:
    if array.dtype.kind != "f":
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    row, column = (int(i[0]) for i in np.nonzero(~finite))
    event = event_of_row(row_splits, row)
    label = f"'{column_names[column]}'" if column_names is not None else str(column)
    raise DataError(f"contains NaN or inf (value {array[row, column]} in row {row - int(row_splits[event])} of the "
                    f"event, column {label})", path=path, array=name, event=event)


def validate_event_arrays(features: np.ndarray, truth: Mapping[str, np.ndarray], row_splits: np.ndarray, *,
                          path: object = None, exact_dtypes: bool = True) -> None:
    """Raise :class:`DataError` at the first problem of these arrays; return None when they are good.

    Args:
        features: (V, N_FEATURES) hit features.
        truth: one (V, width) array per name in ``TRUTH_WIDTHS``, no others.
        row_splits: (E+1,) event boundaries into the V rows.
        path: the file the arrays came from, for the message (None for in-memory arrays).
        exact_dtypes: require exactly float32 / int32 / int64 (as stored); when False, any float (int)
            array is accepted where float32 (an integer type) is expected, so the caller may cast.
    """
    _check_row_splits(row_splits, path)
    _check_shape("features", features, N_FEATURES, row_splits, path)
    unknown = sorted(set(truth) - set(TRUTH_WIDTHS))
    if unknown:
        raise DataError(f"unknown truth array; the truth arrays are {', '.join(TRUTH_WIDTHS)}",
                        path=path, array=unknown[0], event=0)
    for name, width in TRUTH_WIDTHS.items():
        if name not in truth:
            raise DataError("is missing (every truth array is required)", path=path, array=name, event=0)
        _check_shape(name, truth[name], width, row_splits, path)
    _check_dtype("row_splits", row_splits, ROW_SPLITS_DTYPE, exact_dtypes, path)
    _check_dtype("features", features, FEATURE_DTYPE, exact_dtypes, path)
    for name in TRUTH_WIDTHS:
        _check_dtype(name, truth[name], TRUTH_DTYPES[name], exact_dtypes, path)
    _check_finite("features", features, row_splits, FEATURE_NAMES, path)
    for name in TRUTH_WIDTHS:
        _check_finite(name, truth[name], row_splits, None, path)
    t_idx = truth["t_idx"]
    if (t_idx < NOISE_INDEX).any():
        row = int(np.flatnonzero(t_idx[:, 0] < NOISE_INDEX)[0])
        event = event_of_row(row_splits, row)
        raise DataError(f"holds {int(t_idx[row, 0])}; object indices are >= 0 and noise is {NOISE_INDEX}",
                        path=path, array="t_idx", event=event)
