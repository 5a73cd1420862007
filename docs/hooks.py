"""MkDocs hook: what the documentation shows of the code is generated from it at build time (never written by
hand, so it cannot drift): the reference pages of every config key (from the schema), every sweep-file key and
every command and option (from the argparse parser), and the shard format's tables in the data guide (from the
data room's names), which replace the marker ``SHARD_FORMAT_MARKER`` there."""

from __future__ import annotations

from mkdocs.structure.files import File, Files

from gravtrain.cli.reference import command_reference_markdown
from gravtrain.config.reference import schema_markdown
from gravtrain.data.names import (FEATURE_DTYPE, FEATURE_MEANINGS, FEATURE_NAMES, ROW_SPLITS_DTYPE, TRUTH_DTYPES,
                                  TRUTH_MEANINGS, TRUTH_WIDTHS)
from gravtrain.data.shards import SHARD_FORMAT_VERSION
from gravtrain.tune.sweep_file import SweepHeader

SHARD_FORMAT_MARKER = "<!-- generated: the shard format -->"

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


def shard_format_markdown() -> str:
    """The arrays of a shard, and the feature columns, as two Markdown tables."""
    rows = [
        "| array | shape | dtype | holds |", "|---|---|---|---|",
        f"| `features` | (V, {len(FEATURE_NAMES)}) | {FEATURE_DTYPE} | the feature columns below, in their order |",
        *(f"| `{name}` | (V,{'' if width == 1 else f' {width}'}) | {TRUTH_DTYPES[name]} | {TRUTH_MEANINGS[name]} |"
          for name, width in TRUTH_WIDTHS.items()),
        f"| `row_splits` | (E+1,) | {ROW_SPLITS_DTYPE} | the hits of event i are rows row_splits[i] to "
        "row_splits[i+1] - 1 |",
        f"| `format_version` | () | int64 | {SHARD_FORMAT_VERSION}, this format's version |",
        "| `feature_names`, `truth_names`, `truth_widths` | | | the names and widths above, as written |",
        "| `metadata_json` | () | string | optional: provenance, as JSON |",
    ]
    columns = ["| column | feature | holds |", "|---|---|---|",
               *(f"| {index} | `{name}` | {FEATURE_MEANINGS[name]} |" for index, name in enumerate(FEATURE_NAMES))]
    return "\n".join(rows) + "\n\n" + "\n".join(columns)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if SHARD_FORMAT_MARKER in markdown:
        markdown = markdown.replace(SHARD_FORMAT_MARKER, shard_format_markdown())
    return markdown
