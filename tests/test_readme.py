"""The README and the documentation pages against today's program: the README's two set-up commands come first
and CI runs the second exactly; the README stays short; every command the README or a page shows parses with
today's options and config files; the output they quote for the sweep's dry run and for a config's mistakes is
what those commands print; and the Python examples run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gravtrain.cli import COMMANDS
from gravtrain.cli.parser import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
#: The README and the documentation site's pages: path relative to the repository -> text.
DOCUMENTS = {path.relative_to(REPO).as_posix(): path.read_text()
             for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]}
#: The README's longest allowed length, in lines: the guides are on the site.
README_MAX_LINES = 200


def fenced_blocks(text: str) -> list[tuple[str, str, str]]:
    """Every fenced block of a Markdown text: (its language, its text, the text before it)."""
    return [(m.group(1), m.group(2), text[:m.start()])
            for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)]


BLOCKS = fenced_blocks(README)
#: The program's command lines each document shows, without comments, shell redirections and the optional parts
#: of a synopsis (``[--json]``): (document, line).
COMMAND_LINES = [(name, re.sub(r"\s*\[[^]]*\]", "", line.split("#", 1)[0].split(" > ", 1)[0]).strip())
                 for name, text in DOCUMENTS.items()
                 for language, block, _ in fenced_blocks(text) if language in ("bash", "")
                 for line in block.splitlines()
                 if line.startswith(("gravtrain ", "python config_trainer.py "))]


def test_ci_runs_exactly_the_readme_test_command():
    main_command, test_command = [text.strip() for language, text, _ in BLOCKS if language == "bash"][:2]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "pytest" in test_command and "configs/toy.yaml" in main_command


def test_readme_commands_come_first():
    first_section = README.split("\n## ", 2)[1]
    assert first_section.startswith("Two commands")


def test_the_readme_is_short_and_keeps_no_diary():
    assert len(README.splitlines()) <= README_MAX_LINES
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", README), "dated entries go to benchmarks/RESULTS.md"
    assert not re.search(r"\b[0-9a-f]{7,40}\b", README), "commit hashes go to benchmarks/RESULTS.md"


#: The README's command lines that are not the program's, each with the test that checks it.
SET_UP_COMMANDS = {
    "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python config_trainer.py configs/toy.yaml":
        "the main job: its config parses (test_every_command_the_documents_show_parses_with_todays_options)",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test,docs]' && .venv/bin/python -m pytest":
        "what CI runs (test_ci_runs_exactly_the_readme_test_command)",
    ".venv/bin/pip install -e '.[docs]' && .venv/bin/mkdocs serve":
        "the site: the extra exists and the site builds (test_the_docs_extra_serves_the_site, test_docs_site.py)",
}


def test_every_command_of_the_readme_is_checked():
    """A command line of the README is either the program's (parsed above) or one of the set-up commands, each
    checked by a test; a new kind of command needs its check."""
    lines = [line.split("  #", 1)[0].strip() for language, text, _ in BLOCKS if language == "bash"
             for line in text.splitlines() if line.strip()]
    unchecked = [line for line in lines if line not in SET_UP_COMMANDS
                 and not line.startswith(("gravtrain ", "python config_trainer.py "))]
    assert unchecked == []
    assert set(SET_UP_COMMANDS) <= set(lines)


def test_the_docs_extra_serves_the_site():
    import configparser

    extras = configparser.ConfigParser()
    extras.read(REPO / "setup.cfg")
    docs = extras["options.extras_require"]["docs"]
    assert all(name in docs for name in ("mkdocs", "mkdocs-material", "mkdocstrings"))
    assert (REPO / "mkdocs.yml").is_file()


def test_the_readme_shows_commands_of_every_kind():
    readme_lines = [line for name, line in COMMAND_LINES if name == "README.md"]
    words = {shlex.split(line)[2 if line.startswith("python") else 1] for line in readme_lines}
    assert {"check", "train", "ui", "runs", "tune", "evaluate", "simulate", "schema"} <= words, words
    assert len(readme_lines) >= 12


@pytest.mark.parametrize("document, line", COMMAND_LINES)
def test_every_command_the_documents_show_parses_with_todays_options(document, line):
    words = shlex.split(line)[1 if line.startswith("gravtrain ") else 2:]
    if words[0] not in COMMANDS and not words[0].startswith("-"):
        words.insert(0, "train")  # `gravtrain CONFIG` trains
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exit_:
        pytest.fail(f"{document}: `{line}` does not parse (exit {exit_.code})")
    for name in ("config", "sweep"):  # a repository file it names exists
        value = getattr(args, name, None)
        if isinstance(value, str) and value.startswith("configs/"):
            assert (REPO / value).is_file(), f"{document}: `{line}` names {value}, which does not exist"


def _block_after(mention: str, language: str = "") -> str:
    """The block (unlabelled: quoted output) a document gives right after a paragraph that names ``mention`` in
    backticks; there is exactly one."""
    [text] = [text for document in DOCUMENTS.values() for kind, text, before in fenced_blocks(document)
              if kind == language and f"`{mention}`" in before.rstrip().rsplit("\n\n", 1)[-1]]
    return text


@pytest.mark.slow
def test_the_sweeps_dry_run_prints_what_the_documents_quote():
    command = "gravtrain tune configs/sweeps/toy.yaml --dry-run"
    done = subprocess.run([sys.executable, "config_trainer.py", *shlex.split(command)[1:]], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == _block_after(command)


def test_the_config_mistakes_example_prints_what_the_documents_quote(tmp_path):
    command = "gravtrain check configs/x.yaml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text(_block_after("configs/x.yaml", "yaml"))
    # (--no-model: the same lines without starting TensorFlow, since a config with mistakes is never built)
    done = subprocess.run([sys.executable, str(REPO / "config_trainer.py"), "check", "--no-model", "configs/x.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == _block_after(command)


def test_the_python_config_example_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    examples = [(name, text) for name, document in DOCUMENTS.items()
                for language, text, _ in fenced_blocks(document) if language == "python" and "load_config(" in text]
    assert examples
    for name, example in examples:
        exec(compile(example, name, "exec"), {})
