"""MkDocs hook: the reference pages generated from the code at build time (never written by hand, so they
cannot drift): every config key from the schema, every sweep-file key, every command and option from the
argparse parser."""

from __future__ import annotations

from mkdocs.structure.files import File, Files

from gravtrain.cli.reference import command_reference_markdown
from gravtrain.config.reference import schema_markdown
from gravtrain.tune.sweep_file import SweepHeader

PAGES = {
    "reference/config.md": (
        "# Config reference\n\n"
        "Every section and key of a config file, generated from gravtrain's schema: its type and allowed values, "
        "its default (or *required*) and its meaning. `gravtrain schema` prints the same in the terminal. A "
        "section left out takes all its defaults; `N` in a path is a list index (`Training.0.epochs`).\n\n",
        lambda: schema_markdown()),
    "reference/sweep-file.md": (
        "# Sweep-file reference\n\n"
        "Every key of a sweep file (`gravtrain tune`), generated from its schema; `gravtrain schema --sweep` "
        "prints the same. The [sweeps guide](../sweeps.md) shows them at work.\n\n",
        lambda: schema_markdown(SweepHeader)),
    "reference/cli.md": (
        "# Command line\n\n"
        "Every command and option of `gravtrain`, generated from its argument parser; `gravtrain COMMAND --help` "
        "prints the same. `python config_trainer.py` is the same program.\n\n",
        lambda: command_reference_markdown()),
}


def on_files(files: Files, config) -> Files:
    for path, (intro, body) in PAGES.items():
        files.append(File.generated(config, path, content=intro + body()))
    return files
