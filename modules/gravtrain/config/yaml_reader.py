"""Read YAML the strict way: YAML 1.2 core-schema scalars, source lines for every key, duplicate keys refused.

PyYAML implements YAML 1.1, where ``1e-3`` is a *string* (1.1 floats need a dot and a signed exponent) and
``yes``/``no``/``on``/``off`` are booleans. Both have burnt users: a learning rate silently became a string, a
key named ``on`` became ``True``. This reader swaps PyYAML's implicit resolvers for the YAML 1.2 core schema:

    null   ~ | null | Null | NULL | (empty)
    bool   true | True | TRUE | false | False | FALSE
    int    [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+
    float  [-+]?(\\.[0-9]+ | [0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)? | [-+]?.inf | .nan

Everything else is a string. We compose PyYAML's node graph and build plain Python values ourselves, so every
mapping key and sequence item keeps its line, and a key given twice in one mapping is an error that names both
lines (PyYAML would silently keep the last one).

The reader is bounded, so no input file can hang it or exhaust memory: at most ``MAX_YAML_CHARACTERS`` of text,
``MAX_YAML_DEPTH`` nested lists and mappings (checked on the event stream before composing, whose recursion
would otherwise overflow) and ``MAX_YAML_VALUES`` values after aliases are expanded (an "alias bomb" of aliases
to aliases grows exponentially). A config is a few hundred values, a few levels deep.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from gravtrain.config.errors import ConfigIssue, Origin

Path = tuple  # a key path: str for mapping keys, int for list indices

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

#: Bounds of what the reader accepts (a config is a few kB, four or five levels, a few hundred values).
MAX_YAML_CHARACTERS = 1_000_000
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000


class _TooLarge(Exception):
    """Raised inside the builder when the expanded document exceeds MAX_YAML_VALUES."""


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit resolvers instead of YAML 1.1's."""

    yaml_implicit_resolvers: dict = {}


for _tag, _pattern, _first in [
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        list("-+.0123456789"),
    ),
]:
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_pattern), _first)


@dataclass
class LoadedYaml:
    """Plain Python data (dicts, lists, scalars) plus the origin of every key path in it."""

    data: Any
    origins: dict[Path, Origin] = field(default_factory=dict)
    issues: list[ConfigIssue] = field(default_factory=list)

    def origin_of(self, path: Path, fallback: Origin | None = None) -> Origin | None:
        """The origin of ``path``, or of its nearest ancestor that has one."""
        return nearest_origin(self.origins, path) or fallback


def nearest_origin(origins: dict[Path, Origin], path: Path) -> Origin | None:
    """The origin of ``path`` in ``origins``, or of its nearest ancestor that has one (None if none has)."""
    for cut in range(len(path), -1, -1):
        origin = origins.get(tuple(path[:cut]))
        if origin is not None:
            return origin
    return None


def parse_scalar(text: str) -> Any:
    """Read one YAML 1.2 value: ``1e-3`` -> 0.001, ``on`` -> 'on'. Raises ValueError if it is not valid YAML."""
    loaded = read_yaml_text(text, "<value>")
    if loaded.issues:
        raise ValueError(loaded.issues[0].message)
    return loaded.data


def read_yaml_text(text: str, filename: str) -> LoadedYaml:
    """Parse ``text``; syntax errors and duplicate keys are returned as issues, never raised."""
    result = LoadedYaml(data=None)
    if len(text) > MAX_YAML_CHARACTERS:
        result.issues.append(ConfigIssue(
            "", f"more than {MAX_YAML_CHARACTERS:,} characters, far more than a config has; is it really a "
            "config file?", filename, None))
        return result
    try:
        too_deep = _first_too_deep(text)
        if too_deep is not None:
            result.issues.append(ConfigIssue(
                "", f"lists and mappings nested more than {MAX_YAML_DEPTH} levels deep; a config needs a few. "
                "Check the indentation and brackets here.", filename, too_deep.line + 1))
            return result
        node = yaml.compose(text, Loader=_Yaml12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        col = f", column {mark.column + 1}" if mark is not None else ""
        result.issues.append(
            ConfigIssue("", f"YAML syntax error{col}: {problem}. Check quotes, colons and indentation.", filename, line)
        )
        return result
    except yaml.YAMLError as exc:  # reader errors: bad bytes, control characters
        result.issues.append(ConfigIssue("", f"unreadable YAML: {exc}", filename, None))
        return result
    if node is None:
        return result
    builder = _Builder(filename, result)
    result.origins[()] = Origin(filename, node.start_mark.line + 1)
    try:
        result.data = builder.build(node, ())
    except _TooLarge as exc:
        result.data, result.origins = None, {}
        result.issues[:] = [ConfigIssue(
            "", f"the YAML expands to more than {MAX_YAML_VALUES:,} values through its aliases (*name), which "
            "refer to anchors (&name) that themselves hold aliases; write the values out or use fewer aliases.",
            filename, exc.args[0])]
    return result


def _first_too_deep(text: str):
    """The mark where nesting first exceeds MAX_YAML_DEPTH, or None (a flat, iterative pass over the events)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Yaml12Loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                return event.start_mark
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


class _Builder:
    """Turns a composed node graph into plain values, recording origins and duplicate keys."""

    def __init__(self, filename: str, result: LoadedYaml):
        self.filename = filename
        self.result = result
        self.active: set[int] = set()  # node ids being built: guards against recursive aliases
        self.n_values = 0  # values built so far, aliases expanded

    def issue(self, path: Path, message: str, node: yaml.Node) -> None:
        dotted = ".".join(str(p) for p in path)
        self.result.issues.append(ConfigIssue(dotted, message, self.filename, node.start_mark.line + 1))

    def build(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self.active:
            self.issue(path, "a YAML alias refers to its own parent (recursive structure); remove it.", node)
            return None
        self.n_values += 1
        if self.n_values > MAX_YAML_VALUES:
            raise _TooLarge(node.start_mark.line + 1)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, child in enumerate(node.value):
                    self.result.origins[path + (index,)] = Origin(self.filename, child.start_mark.line + 1)
                    items.append(self.build(child, path + (index,)))
                return items
            return self._scalar(node, path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(path, "a key must be a plain name, not a list or mapping.", key_node)
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.issue(
                    path + (key,),
                    f"duplicate key '{key}' (first at line {first_line[key]}, again at line {line}); "
                    "YAML would silently keep only one of them, so delete one.",
                    key_node,
                )
                continue
            first_line[key] = line
            self.result.origins[path + (key,)] = Origin(self.filename, line)
            out[key] = self.build(value_node, path + (key,))
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return text.lower() == "true"
        if tag == _INT:
            try:
                if text.startswith(("0o", "0x")):
                    return int(text, 0)
                return int(text, 10)
            except ValueError:
                self.issue(path, f"'{text}' is not a valid integer.", node)
                return None
        if tag == _FLOAT:
            lowered = text.lower().lstrip("+")
            if lowered in (".inf", "-.inf"):
                return -math.inf if lowered.startswith("-") else math.inf
            if lowered == ".nan":
                return math.nan
            try:
                return float(text)
            except ValueError:
                self.issue(path, f"'{text}' is not a valid number.", node)
                return None
        self.issue(path, f"unsupported YAML tag '{tag}'; write a plain value.", node)
        return None
