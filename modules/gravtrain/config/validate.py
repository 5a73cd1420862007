"""Turn plain YAML data into a typed, frozen section (a `Config`), collecting every mistake instead of stopping at
the first.

The validator knows the schema's vocabulary (`fields.py`), not the schema itself: `validate_section` is given the
root section (``Config.from_dict`` and the loader pass `Config`), so the schema may use the validator and the
validator never imports the schema.

The rules, all driven by the schema's annotations and `KeySpec`s:
- an unknown key is an error with "did you mean" candidates (close spellings in its section, or the same
  name in another place of the schema);
- a required key that is missing is an error at the line of its parent;
- types are strict: a bool is no int, a string is no number, a float is an int only if written as one;
  an int is accepted where a float belongs;
- numbers are range-checked and strings checked against their choices;
- a section's ``cross_check`` runs once all its keys are individually valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from gravtrain.config.errors import ConfigError, ConfigIssue, Origin
from gravtrain.config.fields import (
    FILE_STEM,
    LIST_ITEM,
    FrozenDict,
    KeyInfo,
    KeySpec,
    config_relative_path,
    is_partial,
    is_section,
    section_keys,
    to_plain,
    walk_keys,
)
from gravtrain.config.yaml_reader import Path, nearest_origin



class _Invalid:
    """Stands for a value that failed validation (its issue is already recorded)."""


INVALID: Any = _Invalid()


@dataclass
class Validated:
    """The outcome of `validate_section`: the Config, the keys that fell back to their defaults, and those of
    them whose default is the config file's stem (reported to the user by whoever read the file)."""

    config: Any
    defaulted: list[tuple[Path, Any]] = field(default_factory=list)
    file_stem_defaults: list[tuple[Path, str]] = field(default_factory=list)
    #: where each key path was written (file and line, or ``--set``); filled by the config loader
    origins: dict[Path, Origin] = field(default_factory=dict)

    def located(self, error: ConfigError) -> ConfigError:
        """``error`` with each issue that names no file placed where its key was written (or its nearest
        written ancestor): for the checks made after validation, such as a pre-model that cannot be read."""
        def place(issue: ConfigIssue) -> ConfigIssue:
            if issue.file is not None or not issue.path:
                return issue
            origin = nearest_origin(self.origins, key_path(issue.path))
            return issue if origin is None else dataclasses.replace(issue, file=origin.file, line=origin.line)

        return ConfigError([place(issue) for issue in error.errors], hint=error.hint, subject=error.subject)


def validate_section(root: type, data: Any, origins: dict[Path, Origin] | None = None,
                     filename: str | None = None) -> Validated:
    """Validate ``data`` against the section ``root`` (the schema's `Config`). Raises `ConfigError` with every
    mistake found.

    Args:
        root: the top-level section.
        data: plain YAML data.
        origins: where each value came from (file line or ``--set``), for the messages.
        filename: the config file; None for data not read from a file.
    """
    checker = _Checker(root, origins or {}, filename)
    if data is None:
        required = [info.yaml_name for info in section_keys(root) if info.required]
        checker.add((), f"the config is empty; it needs at least {_and_list(required)}.")
        raise ConfigError(checker.issues)
    if not isinstance(data, dict):
        checker.add((), f"the top level must be a mapping of sections, not {describe(data)}.")
        raise ConfigError(checker.issues)
    config = checker.section(root, data, ())
    if checker.issues:
        raise ConfigError(checker.issues)
    return Validated(config, checker.defaulted, checker.file_stem_defaults)


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def dotted(path: Path) -> str:
    return ".".join(str(p) for p in path)


def key_path(text: str) -> Path:
    """The key path a dotted text names, the inverse of `dotted`: ``Training.0.epochs`` -> ("Training", 0,
    "epochs"); a part that is an integer (negative too) is a list index."""
    return tuple(int(part) if part.lstrip("-").isdigit() else part for part in text.split("."))


def describe(value: Any) -> str:
    """How a user would name the value they wrote."""
    if value is None:
        return "an empty value (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string '{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def expected_text(tp: Any) -> str:
    """How the reference and error messages name a type."""
    if tp is Any:
        return "any YAML value"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return f"{expected_text(inner[0])} or null"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)} {_plural(args[0])}"
    if origin is dict:
        return "a mapping of names to strings"
    if is_section(tp):
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]


def _plural(tp: Any) -> str:
    if is_section(tp):
        return "mappings"
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(tp, "values")


class _Checker:
    def __init__(self, root: type, origins: dict[Path, Origin], filename: str | None):
        self.root = root
        self.origins = origins
        self.filename = filename
        self.issues: list[ConfigIssue] = []
        self.defaulted: list[tuple[Path, Any]] = []
        self.file_stem_defaults: list[tuple[Path, str]] = []

    # ---------------------------------------------------------------- reporting
    def add(self, path: Path, message: str, suggestions: tuple[str, ...] = ()) -> None:
        origin = nearest_origin(self.origins, path)
        file = origin.file if origin else self.filename
        line = origin.line if origin else None
        self.issues.append(ConfigIssue(dotted(path), message, file, line, suggestions))

    # ---------------------------------------------------------------- sections
    def section(self, cls: type, raw: Any, path: Path) -> Any:
        if raw is None:
            raw = {}  # an empty section (every key commented out) means "all defaults"
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of keys, got {describe(raw)}.")
            return INVALID
        infos = section_keys(cls)
        by_yaml = {info.yaml_name: info for info in infos}
        for name in raw:
            if name not in by_yaml:
                self._unknown_key(path, name, list(by_yaml))
        values: dict[str, Any] = {}
        ok = True
        for info in infos:
            key_path = path + (info.yaml_name,)
            if info.yaml_name in raw:
                value = self.value(info.type, raw[info.yaml_name], key_path, info.spec)
                if info.spec.relative_to_config and isinstance(value, str):
                    value = config_relative_path(value, self._file_of(key_path))
            elif info.required:
                self.add(key_path, f"missing required key '{info.yaml_name}' ({info.spec.doc})")
                value = INVALID
            elif info.default is FILE_STEM:
                value = self._file_stem_default(key_path, info)
            else:
                value = info.default
                if not is_partial(cls):
                    self._record_default(key_path, info)
            ok = ok and value is not INVALID
            values[info.name] = value
        if not ok or any(name not in by_yaml for name in raw):
            return INVALID
        instance = cls(**values)
        cross_check = getattr(instance, "cross_check", None)
        if cross_check is not None:
            problems = cross_check()
            for yaml_key, message in problems:
                self.add(path + (yaml_key,), message)
            if problems:
                return INVALID
        return instance

    def _file_of(self, path: Path) -> str | None:
        """The config file a value was written in (None for a ``--set`` override or data built in Python)."""
        origin = self.origins.get(path)
        if origin is not None:
            return origin.file if origin.line is not None else None
        return self.filename

    def _file_stem_default(self, path: Path, info: KeyInfo) -> Any:
        """The config file's name without its extension, recorded as a default; without a file, a missing key."""
        if not self.filename:
            self.add(path, f"missing key '{info.yaml_name}': it defaults to the config file's name only when the "
                           "config is read from a file; set it.")
            return INVALID
        stem = PurePath(self.filename).stem
        self.defaulted.append((path, stem))
        self.file_stem_defaults.append((path, stem))
        return stem

    def _record_default(self, path: Path, info: KeyInfo) -> None:
        if is_section(info.type) and is_partial(info.type):
            return  # an absent block of stage overrides means "no overrides", not a default
        if is_section(info.type):  # record the leaves, so explicit mode lists real keys
            for sub in section_keys(info.type):
                self._record_default(path + (sub.yaml_name,), sub)
        else:
            self.defaulted.append((path, to_plain(info.default)))

    def _unknown_key(self, path: Path, name: str, known: list[str]) -> None:
        where = f"in {dotted(path)}" if path else "at the top level"
        hint = did_you_mean(name, known) or tuple(elsewhere(self.root, name, path))
        listing = "" if hint else " Valid keys: " + ", ".join(known) + "."
        self.add(path + (name,), f"unknown key '{name}' {where}.{listing}", hint)

    # ---------------------------------------------------------------- values
    def value(self, tp: Any, raw: Any, path: Path, spec: KeySpec) -> Any:
        if tp is Any:  # any YAML value: the section's owner reads it (a sweep file's parameters)
            return raw
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if raw is None:
                return None
            inner = next(a for a in args if a is not type(None))
            return self.value(inner, raw, path, spec)
        if is_section(tp):
            return self.section(tp, raw, path)
        if origin is tuple:
            return self._sequence(args, raw, path, spec)
        if origin is dict:
            return self._mapping_of_strings(raw, path)
        return self._scalar(tp, raw, path, spec)

    def _sequence(self, args: tuple, raw: Any, path: Path, spec: KeySpec) -> Any:
        variadic = len(args) == 2 and args[1] is Ellipsis
        wanted = expected_text(tuple[args])  # type: ignore[valid-type]
        if not isinstance(raw, list):
            self.add(path, f"expected {wanted}, got {describe(raw)}.")
            return INVALID
        if not variadic and len(raw) != len(args):
            self.add(path, f"expected {wanted}, got a list of {len(raw)}.")
            return INVALID
        if variadic and not raw and not spec.allow_empty:
            self.add(path, "must not be empty: give at least one item.")
            return INVALID
        item_types = [args[0]] * len(raw) if variadic else list(args)
        items = [self.value(t, item, path + (i,), spec) for i, (t, item) in enumerate(zip(item_types, raw))]
        return INVALID if any(item is INVALID for item in items) else tuple(items)

    def _mapping_of_strings(self, raw: Any, path: Path) -> Any:
        if raw is None:
            return FrozenDict()
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of names to strings, got {describe(raw)}.")
            return INVALID
        bad = [k for k, v in raw.items() if not isinstance(v, str)]
        for k in bad:
            self.add(path + (k,), f"expected a string, got {describe(raw[k])}; put the value in quotes.")
        return INVALID if bad else FrozenDict(raw)

    def _scalar(self, tp: type, raw: Any, path: Path, spec: KeySpec) -> Any:
        value = self._coerce(tp, raw, path)
        if value is INVALID:
            return INVALID
        if tp in (int, float):
            if isinstance(value, float) and not math.isfinite(value):
                self.add(path, f"must be a finite number, got {value!r}.")
                return INVALID
            if spec.out_of_range(value):
                self.add(path, f"must be {spec.range_text()}, got {value!r}.")
                return INVALID
        if tp is str:
            if not value and not spec.allow_empty:
                self.add(path, "must not be empty.")
                return INVALID
            if spec.choices is not None and value not in spec.choices:
                valid = ", ".join(f"'{c}'" for c in spec.choices)
                self.add(path, f"'{value}' is not a valid choice; valid: {valid}.", did_you_mean(value, spec.choices))
                return INVALID
        return value

    def _coerce(self, tp: type, raw: Any, path: Path) -> Any:
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            hint = " (YAML 1.2: write true or false, not yes/no/on/off)" if isinstance(raw, str) else ""
            self.add(path, f"expected true or false, got {describe(raw)}{hint}.")
            return INVALID
        if tp is int:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
            if isinstance(raw, float) and raw.is_integer():
                self.add(path, f"expected an integer, got {describe(raw)}: write {int(raw)}.")
            elif isinstance(raw, str) and _looks_numeric(raw):
                self.add(path, f"expected an integer, got {describe(raw)}: remove the quotes.")
            else:
                self.add(path, f"expected an integer, got {describe(raw)}.")
            return INVALID
        if tp is float:
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
            hint = ": remove the quotes" if isinstance(raw, str) and _looks_numeric(raw) else ""
            self.add(path, f"expected a number, got {describe(raw)}{hint}.")
            return INVALID
        if tp is str:
            if isinstance(raw, str):
                return raw
            hint = f': write it in quotes, "{raw}"' if isinstance(raw, (int, float, bool)) else ""
            self.add(path, f"expected a string, got {describe(raw)}{hint}.")
            return INVALID
        raise TypeError(f"schema uses an unsupported type {tp!r}")  # a bug in the schema, not in the user's file


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _normalise(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def did_you_mean(name: str, candidates: typing.Iterable[str]) -> tuple[str, ...]:
    """Up to three close spellings: exact after dropping case/punctuation first, then difflib's nearest."""
    candidates = list(candidates)
    exact = [c for c in candidates if _normalise(c) == _normalise(name)]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    loose = difflib.get_close_matches(_normalise(name), [_normalise(c) for c in candidates], n=3, cutoff=0.75)
    loose_names = [c for n in loose for c in candidates if _normalise(c) == n]
    ordered = list(dict.fromkeys(exact + close + loose_names))
    return tuple(ordered[:3])


def elsewhere(root: type, name: str, path: Path) -> list[str]:
    """Places below ``root`` where a key called ``name`` does exist (e.g. a LossOptions key put in a stage)."""
    found = [list(place) for place, info in walk_keys(root) if info.yaml_name == name]
    concrete = []
    for parts in found:
        if LIST_ITEM in parts:  # a list item: name the item the user was writing in, if any
            at = parts.index(LIST_ITEM)
            parts[at] = str(path[at]) if len(path) > at and isinstance(path[at], int) else "0"
        concrete.append(parts)

    def shared_prefix(parts: list[str]) -> int:
        return next((i for i, (a, b) in enumerate(zip(parts, map(str, path))) if a != b), min(len(parts), len(path)))

    concrete.sort(key=shared_prefix, reverse=True)  # nearest to where it was written first
    return [".".join(parts) for parts in concrete[:3]]


