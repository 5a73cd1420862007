"""What a config mistake looks like to a user: `ConfigIssue` (one mistake) and `ConfigError` (all of them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Where a value came from: a file and 1-based line, or a command-line override (``line`` is None)."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ConfigIssue:
    """One mistake in a config.

    Attributes:
        path: dotted key path (``Architecture.gravnet.0.n``); empty for the whole file.
        message: what is wrong and how to fix it.
        file: the config file, or ``--set KEY=VALUE`` for an override; None when unknown.
        line: 1-based line in ``file``; None for overrides and values built in Python.
        suggestions: "did you mean" candidates, best first (at most three).
    """

    path: str
    message: str
    file: str | None = None
    line: int | None = None
    suggestions: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        if self.file is None:
            return "<config>"
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def __str__(self) -> str:
        text = f"{self.where}: "
        if self.path:
            text += f"{self.path}: "
        text += self.message
        if self.suggestions:
            text += " Did you mean " + _or_list([f"'{s}'" for s in self.suggestions]) + "?"
        return text


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _sort_key(issue: ConfigIssue) -> tuple:
    # File issues first, in line order; overrides and location-less ones after, in path order.
    return (issue.line is None, issue.file or "", issue.line or 0, issue.path)


class ConfigError(Exception):
    """A config could not be accepted. ``errors`` holds one `ConfigIssue` per mistake, sorted by line.

    ``hint`` is optional extra text for the user (e.g. the YAML to paste in explicit mode); ``subject`` names
    what was read ("config", "sweep file", ...) in the first line.
    """

    def __init__(self, errors: list[ConfigIssue], hint: str | None = None, subject: str = "config"):
        self.errors = sorted(errors, key=_sort_key)
        self.hint = hint
        self.subject = subject
        super().__init__(self.__str__())

    def __str__(self) -> str:
        n = len(self.errors)
        head = f"{n} error{'s' if n != 1 else ''} in {self.subject}:"
        body = "\n".join(f"  {issue}" for issue in self.errors)
        text = f"{head}\n{body}"
        if self.hint:
            text += "\n\n" + self.hint
        return text
