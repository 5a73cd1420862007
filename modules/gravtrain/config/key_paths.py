"""Key paths of the schema: `schema_key` finds the key a dotted path names (a sweep's parameters), or says why
there is none, with "did you mean"."""

from __future__ import annotations

import types
import typing
from typing import Any

from gravtrain.config.fields import KeyInfo, is_section, item_section, section_keys
from gravtrain.config.validate import elsewhere, did_you_mean, dotted
from gravtrain.config.yaml_reader import Path


class KeyPathError(LookupError):
    """A key path that names no key of the schema. ``suggestions`` holds "did you mean" candidates."""

    def __init__(self, message: str, suggestions: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.suggestions = suggestions


def schema_key(root: type, path: Path) -> KeyInfo:
    """The key of section ``root`` at ``path``: mapping keys by name, items of a list of sections by index
    (``Training.1.learning_rate``, ``Architecture.gravnet.0.n``).

    Raises:
        KeyPathError: no such key, with close spellings or the places where a key of that name does exist.
    """
    cls, want_index, info = root, False, None
    for depth, part in enumerate(path):
        here = dotted(path[:depth])
        if want_index:
            if not isinstance(part, int):
                raise KeyPathError(f"{here} is a list; give the index of an item ({here}.0.{part}).")
            want_index = False
            continue
        if isinstance(part, int):
            if info is not None and typing.get_origin(non_null_type(info.type)) is tuple:
                raise KeyPathError(f"{here} is a list of values: name the whole list, not item {part}.")
            raise KeyPathError(f"{here or 'the top level'} is a mapping of keys; {part} is no key name.")
        if info is not None and item_section(info.type) is None:
            raise KeyPathError(f"{here} is a single value; it has no key '{part}'.")
        infos = {i.yaml_name: i for i in section_keys(cls)}
        if part not in infos:
            where = f"in {here}" if here else "at the top level"
            hint = did_you_mean(part, infos) or tuple(elsewhere(root, part, path[:depth]))
            raise KeyPathError(f"unknown key '{part}' {where}.", hint)
        info = infos[part]
        inner = item_section(info.type)
        if inner is not None:
            want_index = inner is not info.type and not is_section(non_null_type(info.type))
            cls = inner
    if info is None:
        raise KeyPathError("the key path is empty.")
    return info


def non_null_type(tp: Any) -> Any:
    """The type of a key that may also be null (``int | None`` -> ``int``); any other type as it is."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return inner[0] if len(inner) == 1 else tp
    return tp


def check_value(root: type, path: Path, value: Any, filename: str | None = None) -> list:
    """The mistakes of ``value`` as the value of the key at ``path`` on its own (type, range, choices, and the
    keys of a section or list value), without the rules that tie it to other keys (a section's cross-check of
    a scalar key). Raises `KeyPathError` when ``path`` is no key."""
    from gravtrain.config.validate import _Checker

    info = schema_key(root, path)
    checker = _Checker(root, {}, filename)
    checker.value(info.type, value, tuple(path), info.spec)
    return checker.issues
