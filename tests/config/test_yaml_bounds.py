"""Hostile YAML: alias bombs, deep nesting and huge files give one message each, never a hang or a traceback.

Each case is also held to a CPU budget far above what a bounded reader needs (well under a second) and far below
what the unbounded one took (an alias bomb grew to 1.1 GB in a minute; deep nesting raised RecursionError).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gravtrain.config import ConfigError, load_config
from gravtrain.config.yaml_reader import MAX_YAML_CHARACTERS, MAX_YAML_DEPTH, MAX_YAML_VALUES, read_yaml_text
from tests.config.helpers import MINIMAL

CPU_BUDGET_S = 5.0


def alias_bomb(levels: int, width: int) -> str:
    """``a0: &a0 [x, x, ...]``, then each level a list of ``width`` aliases of the one before."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def nested_block(depth: int) -> str:
    return "".join(f"{'  ' * level}k{level}:\n" for level in range(depth)) + "  " * depth + "leaf: 1\n"


def read_within_budget(text: str):
    start = time.process_time()
    loaded = read_yaml_text(text, "hostile.yaml")
    spent = time.process_time() - start
    assert spent < CPU_BUDGET_S, f"{spent:.1f} s of CPU"
    return loaded


def test_billion_laughs_is_refused_with_one_message():
    loaded = read_within_budget(alias_bomb(levels=9, width=10))  # 10^9 values once expanded
    assert loaded.data is None
    [issue] = loaded.issues
    assert f"more than {MAX_YAML_VALUES:,} values" in issue.message and "aliases" in issue.message
    assert issue.file == "hostile.yaml" and issue.line is not None


def test_modest_aliases_still_work():
    loaded = read_yaml_text(alias_bomb(levels=3, width=4), "fine.yaml")
    assert loaded.issues == [] and len(loaded.data["a2"]) == 4 and loaded.data["a2"][3] == [["lol"] * 4] * 4


@pytest.mark.parametrize("text", [nested_block(500), "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
                                  "a: " + "{b: " * 10_000 + "1" + "}" * 10_000 + "\n"],
                         ids=["block", "flow-sequence", "flow-mapping"])
def test_deep_nesting_is_refused_with_its_line(text):
    loaded = read_within_budget(text)
    [issue] = loaded.issues
    assert f"more than {MAX_YAML_DEPTH} levels" in issue.message and issue.line is not None


def test_nesting_up_to_the_bound_is_read():
    loaded = read_yaml_text(nested_block(MAX_YAML_DEPTH - 1), "deep.yaml")
    assert loaded.issues == []


def test_a_huge_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text(MINIMAL + "# " + "x" * MAX_YAML_CHARACTERS + "\n")
    start = time.process_time()
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert time.process_time() - start < CPU_BUDGET_S
    assert f"more than {MAX_YAML_CHARACTERS:,} characters" in str(error.value) and str(path) in str(error.value)


@settings(max_examples=40, deadline=None)
@given(levels=st.integers(1, 12), width=st.integers(1, 12), depth=st.integers(0, 400),
       flow=st.booleans())
def test_fuzz_aliases_and_nesting_end_in_data_or_one_issue(levels, width, depth, flow):
    nesting = ("x: " + "[" * depth + "]" * depth + "\n") if flow else nested_block(depth).replace("k0:", "x:", 1)
    loaded = read_within_budget(alias_bomb(levels, width) + nesting)
    alias_values, level_values = 0, 1 + width  # a0 holds width scalars; a_l holds width copies of a_(l-1)
    for _ in range(levels):
        alias_values += level_values
        level_values = 1 + width * level_values
    too_deep = depth + 1 > MAX_YAML_DEPTH  # the document's mapping, then `depth` levels
    if too_deep or alias_values > MAX_YAML_VALUES:
        [issue] = loaded.issues
        assert ("levels deep" if too_deep else "values through its aliases") in issue.message
    elif alias_values + depth + 10 < MAX_YAML_VALUES:
        assert loaded.issues == [] and len(loaded.data[f"a{levels - 1}"]) == width
