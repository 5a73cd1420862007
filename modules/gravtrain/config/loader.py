"""`load_config`: file -> YAML 1.2 data -> legacy stage style -> ``--set`` overrides -> validated `Config`."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Any, Iterable

import logging

import yaml

from gravtrain.config.errors import ConfigError, ConfigIssue, Origin
from gravtrain.config.fields import section_keys
from gravtrain.config.schema import Config, Stage
from gravtrain.config.validate import Validated, dotted, key_path, validate_section
from gravtrain.config.yaml_reader import MAX_YAML_CHARACTERS, LoadedYaml, Path, read_yaml_text

logger = logging.getLogger(__name__)


def load_config(path: str | FilePath, overrides: Iterable[str] = (), explicit: bool = False) -> Config:
    """Read, override and validate a config file.

    Args:
        path: the YAML file.
        overrides: ``Section.key=value`` strings (``Training.1.learning_rate=1e-4`` indexes lists); values are
            YAML, so ``1e-4``, ``true``, ``[1, 2]`` mean what they say.
        explicit: refuse a config in which any key fell back to its default; the error lists those keys and
            `ConfigError.hint` holds them as YAML to paste into the file.

    Raises:
        ConfigError: every mistake found, each with its file:line (or override) and suggestions.
    """
    return resolve_config(path, overrides, explicit).config


def resolve_config(path: str | FilePath, overrides: Iterable[str] = (), explicit: bool = False, *,
                   quiet: bool = False) -> Validated:
    """Like `load_config`, but also returns which keys took their defaults. Logs the keys that default to the
    file's stem (``General.name``) unless ``quiet`` (a check before the same file is read again).

    A config that still holds `SWEEP_MARKER` values is refused: those values come from a sweep file."""
    filename = str(path)
    loaded, issues = read_config_data(filename, overrides)
    markers = sweep_markers(loaded)
    if markers:
        raise marker_error(markers, filename)
    return validate_config_data(loaded, filename, issues, explicit=explicit, quiet=quiet)


def read_config_data(filename: str, overrides: Iterable[str] = ()) -> tuple[LoadedYaml, list[ConfigIssue]]:
    """A config file's plain data and origins, in the plain stage style, with ``overrides`` applied, before
    validation; and the issues met on the way (a duplicate key, a bad override), for `validate_config_data`.

    Raises:
        ConfigError: the file cannot be read or is no YAML; nothing more can be checked.
    """
    loaded = _read_file(filename)
    if loaded.data is None and loaded.issues:  # unreadable, or a syntax error: nothing more to check
        raise ConfigError(loaded.issues)
    normalise_legacy_stages(loaded)
    return loaded, loaded.issues + apply_overrides(loaded, overrides)  # e.g. duplicate keys: keep checking


def validate_config_data(loaded: LoadedYaml, filename: str, issues: Iterable[ConfigIssue] = (), *,
                         explicit: bool = False, quiet: bool = False) -> Validated:
    """Validate data from `read_config_data` (perhaps changed since, e.g. a sweep's values put in), reporting
    ``issues`` together with the validator's own."""
    issues = list(issues)
    try:
        validated = validate_section(Config, loaded.data, loaded.origins, filename)
    except ConfigError as exc:
        raise ConfigError(issues + exc.errors) from None
    if issues:
        raise ConfigError(issues)
    validated.origins = loaded.origins
    if explicit and validated.defaulted:
        raise explicit_mode_error(validated, filename)
    if not quiet:
        for path, stem in validated.file_stem_defaults:
            logger.info("%s is not set: it defaults to '%s', the name of %s.", dotted(path), stem, filename)
    return validated


# ------------------------------------------------------------------------------------ sweep markers
SWEEP_MARKER = "sweep"
"""The value that marks a key of a sweep's base config as set by the sweep (``learning_rate: sweep``)."""


def sweep_markers(loaded: LoadedYaml) -> list[tuple[Path, Origin | None]]:
    """Every key path whose value is `SWEEP_MARKER`, with where it was written, in file order."""
    found: list[tuple[Path, Origin | None]] = []

    def walk(node: Any, path: Path) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(value, path + (name,))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, path + (index,))
        elif node == SWEEP_MARKER:
            found.append((path, loaded.origin_of(path)))

    walk(loaded.data, ())
    return found


def marker_error(markers: list[tuple[Path, Origin | None]], filename: str) -> ConfigError:
    """What `gravtrain train` (or check, evaluate) says of a sweep's base config: each marker at its line."""
    issues = [ConfigIssue(dotted(path), f"holds '{SWEEP_MARKER}': this value comes from a sweep.",
                          origin.file if origin else filename, origin.line if origin else None)
              for path, origin in markers]
    keys = ", ".join(dotted(path) for path, _ in markers)
    return ConfigError(issues, hint=(
        f"{filename} is the base config of a sweep: {keys} {'is' if len(markers) == 1 else 'are'} set by the "
        f"sweep file. Run the sweep with `gravtrain tune SWEEP.yaml`, or give each a value (in the file, or with "
        f"--set KEY=VALUE) to train one model."))


def _read_file(filename: str) -> LoadedYaml:
    try:
        with open(filename, encoding="utf-8") as stream:
            text = stream.read(MAX_YAML_CHARACTERS + 1)  # enough to tell that it is too large
    except FileNotFoundError:
        return _unreadable(filename, "no such file; check the path (it is relative to where you run the command).")
    except IsADirectoryError:
        return _unreadable(filename, "is a directory; give a YAML file inside it.")
    except UnicodeDecodeError as exc:
        return _unreadable(filename, f"is not UTF-8 text ({exc.reason} at byte {exc.start}); is it really YAML?")
    except OSError as exc:
        return _unreadable(filename, f"cannot be read: {exc.strerror}.")
    return read_yaml_text(text, filename)


def _unreadable(filename: str, message: str) -> LoadedYaml:
    return LoadedYaml(data=None, issues=[ConfigIssue("", message, filename, None)])


# ----------------------------------------------------------------------------- legacy stage style
def normalise_legacy_stages(loaded: LoadedYaml) -> None:
    """Rewrite the field's stage style into plain stages, in place, keeping line numbers.

    The field writes a stage as ``- stage_1:`` followed by its keys at the same indentation, which YAML reads
    as ``{stage_1: null, epochs: ..., ...}``: the one key that is no stage key and has a null value is the
    stage's name. The nested form ``- stage_1: {epochs: ...}`` (keys indented under the name) is accepted too.
    Anything else is left for the validator to report.
    """
    data = loaded.data
    if not isinstance(data, dict) or not isinstance(data.get("Training"), list):
        return
    stage_keys = {info.yaml_name for info in section_keys(Stage)}
    for index, stage in enumerate(data["Training"]):
        if not isinstance(stage, dict):
            continue
        here = ("Training", index)
        null_names = [k for k, v in stage.items() if k not in stage_keys and v is None]
        if len(stage) == 1 and not null_names:
            (name, body), = stage.items()
            if name not in stage_keys and isinstance(body, dict) and "name" not in body:
                data["Training"][index] = {"name": name, **body}
                _move_origins(loaded, here + (name,), here, name)
            continue
        if len(null_names) == 1 and "name" not in stage:
            name = null_names[0]
            rebuilt = {"name": name}
            rebuilt.update((k, v) for k, v in stage.items() if k != name)
            data["Training"][index] = rebuilt
            loaded.origins[here + ("name",)] = loaded.origins.pop(here + (name,), loaded.origin_of(here))


def _move_origins(loaded: LoadedYaml, old: Path, new: Path, name: str) -> None:
    moved = {}
    for path, origin in list(loaded.origins.items()):
        if path[: len(old)] == old and len(path) > len(old):
            moved[new + path[len(old):]] = origin
            del loaded.origins[path]
    loaded.origins.update(moved)
    loaded.origins[new + ("name",)] = loaded.origins.pop(old, loaded.origin_of(new))


# ----------------------------------------------------------------------------------------- overrides
def apply_overrides(loaded: LoadedYaml, overrides: Iterable[str]) -> list[ConfigIssue]:
    """Apply ``--set PATH=VALUE`` strings to the raw data; each value's origin becomes its override."""
    issues: list[ConfigIssue] = []
    for text in overrides:
        origin = Origin(f"--set {text}")
        path_text, sep, value_text = text.partition("=")
        path_text = path_text.strip()
        if not sep or not path_text:
            issues.append(ConfigIssue("", "an override must look like Section.key=value "
                                          "(e.g. Training.0.learning_rate=1e-4).", origin.file))
            continue
        path: Path = key_path(path_text)
        if any(p == "" for p in path):
            issues.append(ConfigIssue(path_text, "empty part in the key path; separate keys with single dots.",
                                      origin.file))
            continue
        parsed = read_yaml_text(value_text, origin.file)
        if parsed.issues:
            issues.append(ConfigIssue(path_text, f"the value is not valid YAML ({parsed.issues[0].message})",
                                      origin.file))
            continue
        problem = _set_path(loaded, path, parsed.data, origin)
        if problem:
            issues.append(ConfigIssue(path_text, problem, origin.file))
    return issues


def _set_path(loaded: LoadedYaml, path: Path, value: Any, origin: Origin) -> str | None:
    if loaded.data is None:
        loaded.data = {}
    negative = [part for part in path if isinstance(part, int) and part < 0]
    if negative:
        return (f"negative index {negative[0]}: items are counted from 0 at the start of the list (Training.0 is "
                "the first stage); write the index of the item itself.")
    node = loaded.data
    for depth, part in enumerate(path[:-1]):
        nxt = path[depth + 1]
        if isinstance(node, list):
            if not isinstance(part, int) or not part < len(node):
                return f"{dotted(path[:depth])} has {len(node)} items; index {part} does not exist."
            if node[part] is None and isinstance(nxt, str):
                node[part] = {}
                loaded.origins[path[:depth + 1]] = origin  # created by the override: errors inside name it
            node = node[part]
        elif isinstance(node, dict):
            if not isinstance(part, str):
                return f"{dotted(path[:depth]) or 'the top level'} is a mapping; use a key name, not {part}."
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
                loaded.origins[path[:depth + 1]] = origin
            node = node[part]
        else:
            return f"{dotted(path[:depth])} is a single value; it has no key '{part}'."
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or not last < len(node):
            return f"{dotted(path[:-1])} has {len(node)} items; index {last} does not exist."
    elif isinstance(node, dict):
        if not isinstance(last, str):
            return f"{dotted(path[:-1]) or 'the top level'} is a mapping; use a key name, not {last}."
    else:
        return f"{dotted(path[:-1])} is a single value; it has no key '{last}'."
    node[last] = value
    full = path[:-1] + (last,)
    for known in [p for p in loaded.origins if p[: len(full)] == full]:
        del loaded.origins[known]  # the old value's lines no longer describe it
    loaded.origins[full] = origin
    return None


# ------------------------------------------------------------------------------------- explicit mode
def explicit_mode_error(validated: Validated, filename: str) -> ConfigError:
    """One issue per defaulted key, and the YAML that would make them all explicit."""
    issues = [
        ConfigIssue(dotted(path), f"not set; it would default to {yaml_value(value)}.", filename, None)
        for path, value in validated.defaulted
    ]
    tree: dict[str, Any] = {}
    for path, value in validated.defaulted:
        _insert(tree, path, value)
    snippet = yaml.safe_dump(_listify(tree), sort_keys=False, default_flow_style=False, width=100)
    hint = (
        f"--explicit: {len(issues)} key(s) fell back to defaults. To accept them, add this YAML to "
        f"{filename} (merge each section with the one already there):\n\n{snippet}"
    )
    return ConfigError(issues, hint=hint)


def yaml_value(value: Any) -> str:
    """A value as it would be written in YAML (``null``, ``true``, ``[2, 10]``)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("...").strip()


def _insert(tree: dict, path: Path, value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def _listify(tree: Any) -> Any:
    """Turn dicts keyed by list indices back into lists (missing items as empty mappings)."""
    if not isinstance(tree, dict):
        return tree
    if tree and all(isinstance(k, int) for k in tree):
        return [_listify(tree.get(i, {})) for i in range(max(tree) + 1)]
    return {k: _listify(v) for k, v in tree.items()}


class _ConfigDumper(yaml.SafeDumper):
    """Block style for sections; flow style for lists of scalars and for all-scalar list items (``{n: 64}``)."""


class _FlowMapping(dict):
    pass


def _represent_list(dumper: yaml.SafeDumper, items: list) -> yaml.Node:
    flat = all(not isinstance(i, (list, dict)) for i in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flat)


def _represent_flow_mapping(dumper: yaml.SafeDumper, mapping: dict) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", mapping.items(), flow_style=True)


_ConfigDumper.add_representer(list, _represent_list)
_ConfigDumper.add_representer(_FlowMapping, _represent_flow_mapping)


def _mark_flow_items(value: Any, in_list: bool = False) -> Any:
    if isinstance(value, dict):
        items = {k: _mark_flow_items(v) for k, v in value.items()}
        flat = in_list and all(not isinstance(v, (list, dict)) for v in items.values())
        return _FlowMapping(items) if flat else items
    if isinstance(value, list):
        return [_mark_flow_items(v, in_list=True) for v in value]
    return value


def resolved_yaml(config: Config) -> str:
    """The resolved config (every default filled in) as YAML that loads back to the same Config."""
    return yaml.dump(_mark_flow_items(config.to_dict()), Dumper=_ConfigDumper, sort_keys=False, width=100, allow_unicode=True)
