"""The vocabulary the schema is written in: `key()` for one config key, `section()` for a block of keys.

A section is a frozen dataclass; each field's metadata holds a `KeySpec` (doc, YAML name, choices, range).
The field's type annotation is the key's type. The validator, the reference docs, explicit mode and the
MLflow param flattening all read these two things and nothing else.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marks a key with no default: the user must write it."""


class _FileStem:
    def __repr__(self) -> str:
        return "FILE_STEM"


FILE_STEM: Any = _FileStem()
"""Marks a key whose default is the config file's name without its extension (``configs/toy.yaml``: ``toy``).

A config that is not read from a file (``Config.from_dict``) has no such name, so there the key is required.
"""


@dataclass(frozen=True)
class KeySpec:
    """Everything about a config key except its type (the annotation) and default (the dataclass default)."""

    doc: str
    yaml_name: str | None = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    allow_empty: bool = False  # strings and lists: may they be empty?
    relative_to_config: bool = False  # a file path written relative to the config file

    def range_text(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f"{'>' if self.min_exclusive else '>='} {self.min:g}")
        if self.max is not None:
            parts.append(f"{'<' if self.max_exclusive else '<='} {self.max:g}")
        return " and ".join(parts)

    def out_of_range(self, value: float) -> bool:
        if self.min is not None and (value <= self.min if self.min_exclusive else value < self.min):
            return True
        if self.max is not None and (value >= self.max if self.max_exclusive else value > self.max):
            return True
        return False


def key(
    default: Any = REQUIRED,
    *,
    doc: str,
    yaml_name: str | None = None,
    choices: Iterable | None = None,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    max_exclusive: bool = False,
    allow_empty: bool = False,
    relative_to_config: bool = False,
) -> Any:
    """Declare a config key (a dataclass field). ``yaml_name`` is needed only when it is no Python name.
    ``relative_to_config``: a string key that is a file path written relative to the config file (a URI such as
    ``runs:/...`` and an absolute path are kept as written); see `config_relative_path`."""
    spec = KeySpec(
        doc=doc,
        yaml_name=yaml_name,
        choices=tuple(choices) if choices is not None else None,
        min=min,
        max=max,
        min_exclusive=min_exclusive,
        max_exclusive=max_exclusive,
        allow_empty=allow_empty,
        relative_to_config=relative_to_config,
    )
    metadata = {"spec": spec, "file_stem_default": default is FILE_STEM}
    if default is REQUIRED or default is FILE_STEM:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, dict):
        frozen = FrozenDict(default)
        return dataclasses.field(default_factory=lambda: frozen, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class FrozenDict(dict):
    """A dict that refuses changes, so that a `Config` is immutable all the way down."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("config values are immutable; use Config.replace()/--set to change them")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))


def section(doc: str) -> Callable[[type], type]:
    """Make ``cls`` a config section: a frozen dataclass with a doc line.

    A section may define ``cross_check(self) -> list[tuple[str, str]]`` returning (yaml key, message) pairs for
    rules that involve several keys; they are run once every key of the section is individually valid.
    """

    def wrap(cls: type) -> type:
        cls = dataclass(frozen=True, kw_only=True)(cls)
        cls.__section_doc__ = doc
        return cls

    return wrap


@dataclass(frozen=True)
class KeyInfo:
    """A section field as the rest of the config room sees it."""

    name: str  # Python attribute
    yaml_name: str
    type: Any
    default: Any  # REQUIRED when none; FILE_STEM when it is the config file's name
    spec: KeySpec

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def section_keys(cls: type) -> list[KeyInfo]:
    """The keys of section ``cls``, in declaration order."""
    cached = cls.__dict__.get("__key_infos__")
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    infos = []
    for f in dataclasses.fields(cls):
        spec: KeySpec = f.metadata["spec"]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        elif f.metadata.get("file_stem_default"):
            default = FILE_STEM
        else:
            default = REQUIRED
        infos.append(KeyInfo(f.name, spec.yaml_name or f.name, hints[f.name], default, spec))
    cls.__key_infos__ = infos
    return infos


def is_section(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__section_doc__")


def item_section(tp: Any) -> type | None:
    """The section a key of type ``tp`` holds: the section itself, its list items' section, or None."""
    if is_section(tp):
        return tp
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[Section]
        inner = [arg for arg in args if arg is not type(None)]
        return item_section(inner[0]) if len(inner) == 1 else None
    if typing.get_origin(tp) is tuple and args and is_section(args[0]):
        return args[0]
    return None


LIST_ITEM = "N"
"""Stands for the index of a list item in the key paths `walk_keys` yields (``Training.N.epochs``)."""


def walk_keys(cls: type, prefix: tuple = ()) -> Iterable[tuple[tuple, KeyInfo]]:
    """Every key below section ``cls``, depth first, as (YAML path, KeyInfo); list items appear as `LIST_ITEM`."""
    for info in section_keys(cls):
        path = prefix + (info.yaml_name,)
        yield path, info
        inner = item_section(info.type)
        if inner is not None:
            yield from walk_keys(inner, path + ((LIST_ITEM,) if inner is not info.type else ()))


def is_partial(cls: type) -> bool:
    return "__partial_of__" in cls.__dict__


def partial_section(cls: type, doc: str) -> type:
    """A section with the keys of ``cls``, every one optional with default None ("not overridden").

    Used for per-stage overrides: the schema of ``Training.N.LossOptions`` is ``LossOptions``'s, not a copy.
    """
    fields = []
    for info in section_keys(cls):
        fields.append((info.name, typing.Optional[info.type], dataclasses.field(default=None, metadata={"spec": info.spec})))
    partial = dataclasses.make_dataclass(f"{cls.__name__}Overrides", fields, frozen=True)
    partial.__section_doc__ = doc
    partial.__partial_of__ = cls
    partial.__module__ = cls.__module__
    return partial


def to_plain(value: Any) -> Any:
    """A section, tuple or FrozenDict as plain dicts/lists, keys as written in YAML; unset overrides omitted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        out = {}
        for info in section_keys(cls):
            item = getattr(value, info.name)
            if item is None and is_partial(cls):
                continue
            out[info.yaml_name] = to_plain(item)
        return out
    if isinstance(value, tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def config_relative_path(value: str, config_file: str | None) -> str:
    """A path written in ``config_file`` as the same file seen from the working directory: ``filter.keras`` in
    ``configs/main.yaml`` is ``configs/filter.keras``. A URI (``scheme:/...``), an absolute path, or a config not
    read from a file keeps the value as written."""
    import os
    import re

    if not config_file or re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/", value) or os.path.isabs(value):
        return value
    joined = os.path.normpath(os.path.join(os.path.dirname(config_file), value))
    return joined.replace(os.sep, "/")
