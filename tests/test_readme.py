"""The README's two commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    return [block.strip() for block in blocks[:2]]


def test_ci_runs_exactly_the_readme_test_command():
    main_command, test_command = readme_commands()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines
    assert "pytest" in test_command and "configs/toy.yaml" in main_command


def test_readme_commands_come_first():
    text = (REPO / "README.md").read_text()
    first_section = text.split("\n## ", 2)[1]
    assert first_section.startswith("Two commands")
