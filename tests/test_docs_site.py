"""The documentation site builds with ``mkdocs build --strict`` (so a broken link, a page missing from the
navigation or an API reference that no longer resolves fails), and it documents every config key of the schema,
every sweep-file key and every command and option of the command line."""

from __future__ import annotations

import argparse
import html
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from gravtrain.cli.parser import build_parser
from gravtrain.config.fields import item_section, section_keys
from gravtrain.config.schema import Config
from gravtrain.tune.sweep_file import SweepHeader

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e '.[docs]'; CI installs it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # (no notice of MkDocs 2)
    assert done.returncode == 0, done.stderr[-5000:]
    return out


def page_text(site: Path, page: str) -> str:
    """The text of a built page, its tags removed (a key in a table cell reads as it is written)."""
    return html.unescape(re.sub(r"<[^>]+>", "", (site / page / "index.html").read_text()))


def key_paths(section: type, prefix: str = "") -> list[str]:
    """Every key of a section and the sections below it, as dotted paths with N for a list's items."""
    paths = []
    for info in section_keys(section):
        path = f"{prefix}{info.yaml_name}"
        inner = item_section(info.type)
        if inner is None:
            paths.append(path)
        else:
            listed = "N." if typing.get_origin(info.type) is tuple else ""
            paths += key_paths(inner, f"{path}.{listed}")
    return paths


def commands(parser: argparse.ArgumentParser, words: str = "gravtrain") -> dict[str, argparse.ArgumentParser]:
    found = {words: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(commands(sub, f"{words} {name}"))
    return found


def test_every_config_key_is_in_the_config_reference(site):
    text = page_text(site, "reference/config")
    paths = key_paths(Config)
    assert len(paths) > 100 and "Training.N.LossOptions.q_min" in paths
    assert [path for path in paths if path not in text] == []


def test_every_sweep_file_key_is_in_the_sweep_reference(site):
    text = page_text(site, "reference/sweep-file")
    paths = key_paths(SweepHeader)
    assert "objective.metric" in paths
    assert [path for path in paths if path not in text] == []


def test_every_command_and_option_is_in_the_command_line_reference(site):
    text = page_text(site, "reference/cli")
    found = commands(build_parser())
    assert {"gravtrain tune", "gravtrain runs doctor", "gravtrain runs compare"} <= set(found)
    missing = [name for name in found if name not in text]
    for name, parser in found.items():
        missing += [f"{name} {option}" for action in parser._actions if action.help != argparse.SUPPRESS
                    for option in action.option_strings if option not in text]
    assert missing == []


def test_the_guides_and_the_api_pages_are_built(site):
    for page in ("getting-started", "configs", "sweeps", "data", "training", "tracking", "evaluation",
                 "pre-models", "architecture", "contributing", "benchmarks"):
        assert (site / page / "index.html").is_file(), page
    api = page_text(site, "api")
    assert "GravNet" in api and "object_condensation_loss" in api and "load_config" in api
