"""A resolved config as MLflow params: one param per key, dotted paths, list indices, nothing lost.

``flatten_params`` turns ``{"Training": [{"learning_rate": 0.001}]}`` into ``{"Training.0.learning_rate":
"0.001"}``. Values are written as YAML 1.2 scalars, so they read as the user wrote them (``true``, ``1e-05``,
``toy``) and `unflatten_params` gets back exactly the same data:

- a string that would read back as something else (``"2024"``, ``"true"``, ``""``) is double-quoted;
- an empty list or mapping is kept as ``[]`` / ``{}`` so the key does not vanish;
- a value longer than MLflow's limit is never truncated: it is logged as ``sha256:<digest>`` plus a marker,
  and the full value lives in the resolved-config artifact.

Limitation: mapping keys containing dots, or made only of digits, cannot be told apart from paths and list
indices; no schema key is like that (only free-form ``Tracking.tags`` names could be).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from gravtrain.config.yaml_reader import parse_scalar

#: mlflow.utils.validation.MAX_PARAM_VAL_LENGTH (checked against MLflow in the tests).
MLFLOW_PARAM_VALUE_LIMIT = 6000
HASHED_MARKER = " (too long for an MLflow param; full value in the resolved config artifact)"


def flatten_params(data: dict, value_limit: int = MLFLOW_PARAM_VALUE_LIMIT) -> dict[str, str]:
    """``{dotted.path: value}`` for every leaf of ``data`` (e.g. ``Config.to_dict()``), in config order."""
    flat: dict[str, str] = {}
    _flatten(data, "", flat)
    return {path: _fit(value, value_limit) for path, value in flat.items()}


def _flatten(node: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(node, (list, tuple)) and node:
        for index, value in enumerate(node):
            _flatten(value, f"{prefix}.{index}", out)
    else:
        out[prefix] = encode_value(node)


def encode_value(value: Any) -> str:
    """A leaf as a YAML 1.2 scalar that `decode_value` reads back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)  # the shortest text that reads back to the same float
    if isinstance(value, (list, tuple)):
        return "[]"
    if isinstance(value, dict):
        return "{}"
    text = str(value)
    try:
        same = parse_scalar(text) == text
    except ValueError:  # not valid YAML on its own (e.g. unbalanced brackets): quote it
        same = False
    return text if same else _double_quoted(text)


def _double_quoted(text: str) -> str:
    """A YAML double-quoted scalar: JSON quoting, with every non-printable character escaped."""
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(
        ch if ch.isprintable() else (f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        for ch in quoted
    )


def decode_value(text: str) -> Any:
    return parse_scalar(text)


def _fit(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
    return f"sha256:{digest}{HASHED_MARKER}"


def unflatten_params(params: dict[str, str]) -> dict:
    """The inverse of `flatten_params`: nested dicts, lists where every key of a level is 0..n-1."""
    tree: dict = {}
    for path, text in params.items():
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = decode_value(text)
    return _lists_from_indices(tree)


def _lists_from_indices(node: Any) -> Any:
    if not isinstance(node, dict) or not node:
        return node
    converted = {key: _lists_from_indices(value) for key, value in node.items()}
    if all(key.isdigit() for key in converted) and sorted(map(int, converted)) == list(range(len(converted))):
        return [converted[str(i)] for i in range(len(converted))]
    return converted
