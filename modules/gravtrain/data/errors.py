"""The one exception the data room raises for bad input files or arrays."""

from __future__ import annotations


class DataError(ValueError):
    """Bad event data: names the file, the array and the first bad event, so the user can find it.

    Attributes: ``path`` (str or None), ``array`` (str or None), ``event`` (int or None) and
    ``problem`` (the plain description). ``str(error)`` reads
    ``"<path>: array 'features', event 12: contains NaN or inf (row 3 of the event, column 'time')"``.
    """

    def __init__(self, problem: str, *, path: object = None, array: str | None = None,
                 event: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.array = array
        self.event = event
        self.problem = problem
        place = [f"array '{array}'"] if array is not None else []
        if event is not None:
            place.append(f"event {event}")
        prefix = self.path or "<arrays>"
        if place:
            prefix += ": " + ", ".join(place)
        super().__init__(f"{prefix}: {problem}")
