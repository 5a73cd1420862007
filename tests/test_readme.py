"""The README against today's program: its two set-up commands come first and CI runs the second exactly; every
command it shows parses with today's options and config files; the output it quotes for the sweep's dry run and
for a config's mistakes is what those commands print; and its Python example runs."""

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
#: Every fenced block: (its language, its text, the text before it).
BLOCKS = [(m.group(1), m.group(2), README[:m.start()]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README,
                                                                          re.S | re.M)]
#: The program's command lines the README shows, without comments, shell redirections and the optional parts of
#: a synopsis (``[--json]``).
COMMAND_LINES = [re.sub(r"\s*\[[^]]*\]", "", line.split("#", 1)[0].split(" > ", 1)[0]).strip()
                 for language, text, _ in BLOCKS if language in ("bash", "")
                 for line in text.splitlines()
                 if line.startswith(("gravtrain ", "python config_trainer.py "))]


def test_ci_runs_exactly_the_readme_test_command():
    main_command, test_command = [text.strip() for language, text, _ in BLOCKS if language == "bash"][:2]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "pytest" in test_command and "configs/toy.yaml" in main_command


def test_readme_commands_come_first():
    first_section = README.split("\n## ", 2)[1]
    assert first_section.startswith("Two commands")


def test_the_readme_shows_commands_of_every_kind():
    words = {shlex.split(line)[2 if line.startswith("python") else 1] for line in COMMAND_LINES}
    assert {"check", "train", "ui", "runs", "tune", "evaluate", "simulate", "schema"} <= words, words
    assert len(COMMAND_LINES) >= 15


@pytest.mark.parametrize("line", COMMAND_LINES)
def test_every_command_the_readme_shows_parses_with_todays_options(line):
    words = shlex.split(line)[1 if line.startswith("gravtrain ") else 2:]
    if words[0] not in COMMANDS and not words[0].startswith("-"):
        words.insert(0, "train")  # `gravtrain CONFIG` trains
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exit_:
        pytest.fail(f"`{line}` does not parse (exit {exit_.code})")
    for name in ("config", "sweep"):  # a repository file it names exists
        value = getattr(args, name, None)
        if isinstance(value, str) and value.startswith("configs/"):
            assert (REPO / value).is_file(), f"`{line}` names {value}, which does not exist"


def _block_after(mention: str, language: str = "") -> str:
    """The block (unlabelled: quoted output) the README gives right after a paragraph that names ``mention`` in
    backticks."""
    [text] = [text for kind, text, before in BLOCKS
              if kind == language and f"`{mention}`" in before.rstrip().rsplit("\n\n", 1)[-1]]
    return text


@pytest.mark.slow
def test_the_sweeps_dry_run_prints_what_the_readme_quotes():
    command = "gravtrain tune configs/sweeps/toy.yaml --dry-run"
    done = subprocess.run([sys.executable, "config_trainer.py", *shlex.split(command)[1:]], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == _block_after(command)


def test_the_config_mistakes_example_prints_what_the_readme_quotes(tmp_path):
    command = "gravtrain check configs/x.yaml"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "x.yaml").write_text(_block_after("configs/x.yaml", "yaml"))
    # (--no-model: the same lines without starting TensorFlow, since a config with mistakes is never built)
    done = subprocess.run([sys.executable, str(REPO / "config_trainer.py"), "check", "--no-model", "configs/x.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == _block_after(command)


def test_the_python_api_example_runs(monkeypatch):
    monkeypatch.chdir(REPO)
    [example] = [text for language, text, _ in BLOCKS if language == "python" and "load_config(" in text]
    exec(compile(example, "README.md", "exec"), {})
