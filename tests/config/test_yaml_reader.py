"""YAML 1.2 scalars, source lines and duplicate keys."""

from __future__ import annotations

import math

import pytest

from gravtrain.config.yaml_reader import parse_scalar, read_yaml_text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1e-3", 1e-3), ("1E5", 1e5), (".5", 0.5), ("-2.5e+2", -250.0), ("5.", 5.0),
        ("+.inf", math.inf), ("-.inf", -math.inf), ("42", 42), ("-7", -7), ("0x1F", 31), ("0o17", 15),
        ("010", 10), ("true", True), ("False", False), ("null", None), ("~", None), ("", None),
        # YAML 1.1 would turn these into booleans, a date or a sexagesimal number; YAML 1.2 keeps strings.
        ("yes", "yes"), ("on", "on"), ("No", "No"), ("2024-01-01", "2024-01-01"), ("1:30", "1:30"),
        ("'1e-3'", "1e-3"), ("1e", "1e"), ("0b101", "0b101"),
    ],
)
def test_yaml_1_2_scalars(text, expected):
    assert parse_scalar(text) == expected
    assert type(parse_scalar(text)) is type(expected)


def test_nan_is_a_float():
    assert math.isnan(parse_scalar(".nan"))


def test_every_key_and_item_has_its_line():
    loaded = read_yaml_text("A:\n  b: 1\n  c:\n    - x\n    - {d: 2}\n", "f.yaml")
    assert not loaded.issues
    assert loaded.origins[("A",)].line == 1
    assert loaded.origins[("A", "b")].line == 2
    assert loaded.origins[("A", "c", 1)].line == 5
    assert loaded.origins[("A", "c", 1, "d")].line == 5
    assert loaded.origin_of(("A", "c", 1, "missing")).line == 5


def test_duplicate_key_names_both_lines():
    loaded = read_yaml_text("A:\n  b: 1\n  c: 2\n  b: 3\n", "f.yaml")
    (issue,) = loaded.issues
    assert issue.line == 4 and issue.path == "A.b"
    assert "first at line 2, again at line 4" in issue.message
    assert loaded.data == {"A": {"b": 1, "c": 2}}


def test_syntax_error_has_line_and_column():
    loaded = read_yaml_text("A:\n  b: [1, 2\n  c: 3\n", "f.yaml")
    (issue,) = loaded.issues
    assert issue.file == "f.yaml" and issue.line is not None
    assert "YAML syntax error" in issue.message


def test_recursive_alias_is_an_error_not_a_hang():
    loaded = read_yaml_text("a: &x [1, *x]\n", "f.yaml")
    assert any("recursive" in issue.message for issue in loaded.issues)


def test_unsupported_tag_is_reported():
    loaded = read_yaml_text("a: !!binary aGVsbG8=\n", "f.yaml")
    assert loaded.issues and "unsupported YAML tag" in loaded.issues[0].message
