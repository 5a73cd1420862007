"""Searches made once and given back when the same code runs again: `RepeatedSearches`, for a segment of a
model that is recomputed in its backward pass (its kNN graphs are integers: nothing to differentiate, and the
same inputs give the same graph)."""

from __future__ import annotations

import contextlib


class RepeatedSearches:
    """The integer results (neighbour indices, hit order) of the kNN searches made while recording, given back in
    the same order instead of searching again while repeating: for code that runs a second time on the same
    coordinates (a segment recomputed in the backward pass). Distances are always computed again from the
    coordinates, so they keep their gradient. Use ``with searches.recording():`` then ``with searches.repeating():``.
    """

    _active: "RepeatedSearches | None" = None

    def __init__(self):
        self.results: list = []
        self._repeating = False
        self._next = 0

    @contextlib.contextmanager
    def recording(self):
        with self._activated(repeating=False):
            yield self

    @contextlib.contextmanager
    def repeating(self):
        self._next = 0
        with self._activated(repeating=True):
            yield self
        if self._next != len(self.results):
            raise RuntimeError(f"the code repeated {self._next} of the {len(self.results)} kNN searches it recorded")

    @contextlib.contextmanager
    def _activated(self, repeating: bool):
        outer, RepeatedSearches._active = RepeatedSearches._active, self
        self._repeating = repeating
        try:
            yield
        finally:
            RepeatedSearches._active = outer


def searched(search):
    """``search()``, or its result from the active `RepeatedSearches` (recorded there when it records)."""
    searches = RepeatedSearches._active
    if searches is None:
        return search()
    if searches._repeating:
        if searches._next >= len(searches.results):
            raise RuntimeError("the code made more kNN searches than it recorded")
        searches._next += 1
        return searches.results[searches._next - 1]
    result = search()
    searches.results.append(result)
    return result
