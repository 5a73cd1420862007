"""The space of one swept key: ``choice``, ``uniform``, ``loguniform`` or ``int`` (with an optional ``step``).

A space is what the sweep file says, nothing more: its values (a grid's points, or the range's ends), how it
reads in the dry run, and the Optuna distribution that samples it.

    choice: [v1, ..., vn]     one of the listed values (any YAML value: numbers, strings, lists, mappings)
    uniform: [lo, hi]         a number x with lo <= x <= hi, uniform in x
    loguniform: [lo, hi]      a number x with 0 < lo <= x <= hi, uniform in log x
    int: [lo, hi], step: s    an integer lo, lo + s, ..., up to hi (s defaults to 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

SPACE_KINDS = ("choice", "uniform", "loguniform", "int")
"""The space names a parameter may use; ``step`` goes with ``int`` only."""


def yaml_text(value: Any) -> str:
    """A value as it is written in YAML, on one line (``0.001``, ``relu``, ``[64, 64]``, ``{n: 8}``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


@dataclass(frozen=True)
class Space:
    """One swept key's space.

    Attributes:
        kind: one of `SPACE_KINDS`.
        values: the choices (``choice``), or the two ends ``(lo, hi)`` of a range.
        step: the step of an ``int`` range (1 unless given).
    """

    kind: str
    values: tuple
    step: int = 1

    @property
    def finite(self) -> bool:
        """Whether the space is a list of points (a grid can use it)."""
        return self.kind in ("choice", "int")

    def points(self) -> list[Any]:
        """Every value of a finite space, in order."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            lo, hi = self.values
            return list(range(lo, hi + 1, self.step))
        raise ValueError(f"a {self.kind} space is continuous: it has no list of points")

    def size(self) -> float:
        """The number of values (``inf`` for a continuous range)."""
        if self.kind == "choice":
            return len(self.values)
        if self.kind == "int":
            lo, hi = self.values
            return (hi - lo) // self.step + 1
        return math.inf

    def ends(self) -> list[Any]:
        """The values a check must try: every choice, or the two ends of a range (the last point of an int
        range, which a step may keep below ``hi``)."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int":
            points_end = self.values[0] + (self.size() - 1) * self.step
            return [self.values[0], points_end]
        return list(self.values)

    def lowest_and_highest(self) -> tuple[Any, Any]:
        """The smallest and largest value for numbers; the first and last choice otherwise."""
        ends = self.ends()
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ends):
            return min(ends), max(ends)
        return ends[0], ends[-1]

    def describe(self) -> str:
        """The space as the dry run prints it, e.g. ``one of [0.1, 0.5] (2 values)``."""
        if self.kind == "choice":
            return f"one of [{', '.join(yaml_text(v) for v in self.values)}] ({len(self.values)} values)"
        lo, hi = self.values
        if self.kind == "int":
            step = f" in steps of {self.step}" if self.step != 1 else ""
            return f"an integer from {lo} to {hi}{step} ({self.size()} values)"
        scale = "log-uniform" if self.kind == "loguniform" else "uniform"
        return f"a number from {yaml_text(lo)} to {yaml_text(hi)}, {scale}"

    def suggest(self, trial, name: str) -> Any:
        """Have Optuna's ``trial`` sample this space under ``name``; returns the config value. Choices that are
        lists or mappings are sampled as their YAML text (Optuna's choices are scalars)."""
        if self.kind == "choice":
            return self.from_sampled(trial.suggest_categorical(name, [_as_label(v) for v in self.values]))
        lo, hi = self.values
        if self.kind == "int":
            return int(trial.suggest_int(name, lo, hi, step=self.step))
        return float(trial.suggest_float(name, float(lo), float(hi), log=self.kind == "loguniform"))

    def from_sampled(self, sampled: Any) -> Any:
        """The config value of what Optuna sampled (choices: the reverse of their labels)."""
        if self.kind == "choice":
            for value in self.values:
                if _as_label(value) == sampled and type(_as_label(value)) is type(sampled):
                    return value
            raise ValueError(f"{sampled!r} is none of the choices {list(self.values)!r}")
        if self.kind == "int":
            return int(sampled)
        return float(sampled)

    def to_sampled(self, value: Any) -> Any:
        """What Optuna stores for the config value ``value`` (a grid point enqueued as a trial's params)."""
        return _as_label(value) if self.kind == "choice" else value


def _as_label(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return yaml_text(value)
