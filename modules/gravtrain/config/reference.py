"""The config reference, generated from the schema so it can never drift from it: as indented text
(``gravtrain schema``) and as Markdown tables (the documentation site's reference pages)."""

from __future__ import annotations

import types
import typing

from gravtrain.config.fields import FILE_STEM, KeyInfo, is_partial, is_section, item_section, section_keys, to_plain
from gravtrain.config.loader import yaml_value
from gravtrain.config.schema import Config
from gravtrain.config.validate import expected_text


def schema_reference(root: type = Config, title: str = "gravtrain config reference") -> str:
    """Every section and key of ``root`` (the config's schema, or a sweep file's): type, allowed values,
    default (or 'required') and doc, as indented text."""
    lines = [
        title,
        "Each key: type, allowed values, default ('required' if none). A section left out takes all defaults.",
        "",
    ]
    for info in section_keys(root):
        if is_section(info.type) or item_section(info.type) is not None:
            lines.append(f"{info.yaml_name}:  # {info.spec.doc}")
            _describe_members(info, lines, indent="  ")
            lines.append("")
        else:
            lines.append(f"{info.yaml_name}: {_summary(info, overrides=False)}")
            lines.append(f"    {info.spec.doc}")
    return "\n".join(lines)


def schema_markdown(root: type = Config, heading_level: int = 2) -> str:
    """Every section and key of ``root`` as Markdown: a heading per section (its doc below it) and a table of its
    keys, with the full dotted path of each (``Training.N.epochs``), its type and allowed values, its default and
    its doc. Keys of ``root`` itself that are no section come first, in one table."""
    blocks: list[str] = []
    top = [info for info in section_keys(root) if item_section(info.type) is None]
    if top:
        blocks.append(_key_table([(info.yaml_name, info, False) for info in top]))
    for info in section_keys(root):
        if item_section(info.type) is not None:
            _section_markdown(info, info.yaml_name, blocks, heading_level)
    return "\n\n".join(blocks) + "\n"


def _section_markdown(info: KeyInfo, path: str, blocks: list[str], level: int) -> None:
    inner = item_section(info.type)
    listed = typing.get_origin(info.type) is tuple
    blocks.append(f"{'#' * level} `{path}`")
    blocks.append(markdown_text(info.spec.doc) + (" A list; each item has the keys below." if listed else ""))
    prefix = f"{path}.N" if listed else path
    rows = [(f"{prefix}.{sub.yaml_name}", sub, is_partial(inner)) for sub in section_keys(inner)
            if item_section(sub.type) is None]
    if rows:
        blocks.append(_key_table(rows))
    for sub in section_keys(inner):
        if item_section(sub.type) is not None:
            _section_markdown(sub, f"{prefix}.{sub.yaml_name}", blocks, min(level + 1, 6))


def _key_table(rows: list[tuple[str, KeyInfo, bool]]) -> str:
    lines = ["| key | type, allowed values, default | meaning |", "|---|---|---|"]
    for path, info, overrides in rows:
        lines.append(f"| `{path}` | {markdown_text(_summary(info, overrides))} | {markdown_text(info.spec.doc)} |")
    return "\n".join(lines)


def markdown_text(text: str) -> str:
    """``text`` safe in Markdown, a table cell included (a ``|`` would end the cell; ``<`` could open an HTML
    tag). The command-line reference uses it too."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _describe_members(info: KeyInfo, lines: list[str], indent: str) -> None:
    inner = item_section(info.type)
    if inner is None:
        return
    if typing.get_origin(info.type) is tuple:
        lines.append(f"{indent}# each item:")
    for sub in section_keys(inner):
        lines.append(f"{indent}{sub.yaml_name}: {_summary(sub, overrides=is_partial(inner))}")
        lines.append(f"{indent}    {sub.spec.doc}")
        _describe_members(sub, lines, indent + "  ")


def _summary(info: KeyInfo, overrides: bool) -> str:
    tp = info.type
    if overrides and typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    parts = [_type_name(tp)]
    if info.spec.choices:
        parts.append("one of " + " | ".join(info.spec.choices))
    if info.spec.range_text():
        parts.append(info.spec.range_text())
    if overrides:
        parts.append("optional, default: the section's value")
    elif info.required:
        parts.append("required")
    elif info.default is FILE_STEM:
        parts.append("default the config file's name without its extension")
    elif not is_section(tp):
        parts.append(f"default {yaml_value(to_plain(info.default))}")
    return ", ".join(parts)


def _type_name(tp: typing.Any) -> str:
    if is_section(tp):
        return "section"
    return expected_text(tp).removeprefix("an ").removeprefix("a ")
