"""Thousands of randomly broken configs: each gives a Config or a ConfigError, never any other exception."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gravtrain.config import Config, ConfigError, load_config
from tests.config.test_overrides_and_styles import FIELD_STYLE

REPO = Path(__file__).resolve().parents[2]
BASE_TEXTS = [
    (REPO / "configs" / "toy.yaml").read_text(),
    (REPO / "configs" / "hgcal.yaml").read_text(),
    FIELD_STYLE,
]
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def paths_of(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from paths_of(v, prefix + (i,))


def parent_and_key(tree, path):
    node = tree
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


@st.composite
def mutated_trees(draw):
    tree = copy.deepcopy(yaml.safe_load(draw(st.sampled_from(BASE_TEXTS))))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in paths_of(tree) if p]
        if not paths:
            break
        node, key = parent_and_key(tree, draw(st.sampled_from(paths)))
        action = draw(st.sampled_from(["delete", "rename", "retype"]))
        if action == "delete":
            del node[key]
        elif action == "rename" and isinstance(node, dict):
            node[key + draw(st.text(min_size=1, max_size=3))] = node.pop(key)
        else:
            node[key] = draw(junk_values)
    return yaml.safe_dump(tree, sort_keys=False)


@st.composite
def mutated_texts(draw):
    lines = draw(st.sampled_from(BASE_TEXTS)).splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["duplicate", "delete", "junk", "indent"]))
        if action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "delete" and len(lines) > 1:
            del lines[i]
        elif action == "junk":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.text(max_size=4)) + lines[i][at:]
        else:
            lines[i] = " " * draw(st.integers(0, 3)) + lines[i]
    text = "".join(lines)
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


def load_or_error(tmp_dir: Path, text: str) -> None:
    path = tmp_dir / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", errors="replace"))  # hypothesis text may hold lone surrogates
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as exc:
        assert exc.errors and str(exc)
        for issue in exc.errors:
            assert issue.message and issue.file == str(path)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=mutated_trees())
def test_mutated_trees_never_crash(fuzz_dir, text):
    load_or_error(fuzz_dir, text)


@FUZZ
@given(text=mutated_texts())
def test_mutated_texts_never_crash(fuzz_dir, text):
    load_or_error(fuzz_dir, text)


@settings(max_examples=300, deadline=None)
@given(override=st.text(max_size=40))
def test_random_overrides_never_crash(override):
    try:
        load_config(REPO / "configs" / "toy.yaml", [override])
    except ConfigError as exc:
        assert exc.errors
