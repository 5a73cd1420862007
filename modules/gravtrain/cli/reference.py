"""The command-line reference as Markdown, generated from the argparse parser itself (the documentation site's
"Command line" page), so that every command and option the program takes is documented as it is parsed."""

from __future__ import annotations

import argparse
from typing import Iterator

from gravtrain.cli.parser import build_parser
from gravtrain.config.reference import markdown_text


def command_reference_markdown(heading_level: int = 2) -> str:
    """Every command of ``gravtrain`` (sub-commands included), each with its usage, its help and a table of its
    arguments and options, as argparse parses them. Options hidden from ``--help`` are left out here too."""
    blocks = []
    for words, parser, help_text in _commands(build_parser()):
        name = " ".join(words)
        blocks.append(f"{'#' * heading_level} `{name}`")
        if help_text or parser.description:
            blocks.append(markdown_text(help_text or parser.description))
        usage = " ".join(parser.format_usage().split())  # one line: argparse wraps it at the terminal's width
        blocks.append(f"```text\n{usage.removeprefix('usage: ')}\n```")
        rows = [_row(action) for action in parser._actions  # argparse keeps no public list of its arguments
                if action.help != argparse.SUPPRESS and not isinstance(action, argparse._SubParsersAction)]
        if rows:
            blocks.append("\n".join(["| argument or option | meaning |", "|---|---|", *rows]))
    return "\n\n".join(blocks) + "\n"


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("gravtrain",),
              help_text: str | None = None) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    yield words, parser, help_text
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield from _commands(sub, (*words, name), helps.get(name))


def _row(action: argparse.Action) -> str:
    if action.option_strings:
        metavar = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
        if action.nargs == "?":
            metavar = f" [{metavar.strip()}]"
        spelled = ", ".join(f"`{option}{metavar}`" for option in action.option_strings)
    else:
        spelled = f"`{action.metavar or action.dest}`" + (" ..." if action.nargs in ("+", "*") else "")
    meaning = action.help or ""
    if action.choices is not None and not isinstance(action.choices, dict):
        meaning += f" (one of: {', '.join(str(choice) for choice in action.choices)})"
    if action.required and action.option_strings:
        meaning += " (required)"
    return f"| {spelled} | {markdown_text(meaning)} |"

