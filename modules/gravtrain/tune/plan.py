"""A sweep checked both ways against its base config before anything runs, and the configs it produces.

`plan_sweep` reads the sweep file and the base config (with any ``--set``) and refuses, naming both files with
their lines:
- a swept path that is no key of the schema (with "did you mean");
- a swept key the base config does not mark with ``sweep`` (it sets a value, or leaves the default), and a
  ``sweep`` in the base config that no parameter covers;
- a swept key that a ``--set`` also fixes;
- a value of a space that the key does not take (type, range, choices), found by validating the base config
  with that value put in; every point of a grid is validated this way;
- a sweep written for another model (``model:`` is not the base config's ``General.name``).

`SweepPlan.concrete_config` then turns sampled values into a `Config`: the values are set at their paths in a
copy of the base config's data (a deep merge: no sibling key is lost) and the result is validated like any
config file.
"""

from __future__ import annotations

import copy
import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any, Iterable, Mapping

from gravtrain.config.errors import ConfigError, ConfigIssue, Origin
from gravtrain.config.loader import SWEEP_MARKER, read_config_data, sweep_markers, validate_config_data
from gravtrain.config.schema import Config
from gravtrain.config.key_paths import KeyPathError, check_value, non_null_type, schema_key
from gravtrain.config.validate import dotted
from gravtrain.config.yaml_reader import LoadedYaml, Path
from gravtrain.tune.spaces import yaml_text
from gravtrain.tune.sweep_file import SweepFile, SweptKey, grid_size, read_sweep_file

SUBJECT = "the sweep and its base config"
#: A grid up to this size has every point validated before the sweep starts; a larger one, each key's values.
MAX_POINTS_VALIDATED = 2_000


@dataclass
class SweepPlan:
    """A sweep file and its base config that agree; `concrete_config` makes the config of one point."""

    sweep: SweepFile
    base_file: FilePath
    base: LoadedYaml
    base_text: bytes
    overrides: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)

    @property
    def keys(self) -> tuple[SweptKey, ...]:
        return self.sweep.keys

    def concrete_data(self, values: Mapping[Path, Any]) -> LoadedYaml:
        """The base config's data with ``values`` set at their paths; each value's origin is its sweep line."""
        data = copy.deepcopy(self.base.data)
        origins = dict(self.base.origins)
        by_path = {swept.path: swept for swept in self.keys}
        for path, value in values.items():
            node = data
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = copy.deepcopy(value)
            for known in [p for p in origins if p[: len(path)] == path]:
                del origins[known]
            origins[path] = by_path[path].origin if path in by_path else Origin("(sweep)")
        return LoadedYaml(data=data, origins=origins)

    def concrete_config(self, values: Mapping[Path, Any], repeat: int = 0) -> Config:
        """The config of one point, trained with ``General.seed + repeat``. Raises `ConfigError`."""
        loaded = self.concrete_data(values)
        config = validate_config_data(loaded, str(self.base_file), quiet=True).config
        if repeat:
            seeded = dict(values)
            seeded[("General", "seed")] = config.General.seed + repeat
            loaded = self.concrete_data(seeded)
            config = validate_config_data(loaded, str(self.base_file), quiet=True).config
        return config

    def grid_points(self) -> list[dict[Path, Any]]:
        """Every point of a grid sweep, in the order of the parameters (the last one varies fastest)."""
        names = [swept.path for swept in self.keys]
        return [dict(zip(names, combo)) for combo in itertools.product(*(swept.space.points() for swept in self.keys))]

    @functools.cached_property
    def base_config(self) -> Config:
        """The config at `first_values`: what every point shares (the store, the experiment, the seed, ...),
        for the parent run, the default storage and the dry run. Valid once `plan_sweep` returned."""
        return self.concrete_config(self.first_values())

    def first_values(self) -> dict[Path, Any]:
        """A valid point to check one key's values against: each key at its first value."""
        return {swept.path: swept.space.ends()[0] for swept in self.keys}


def plan_sweep(sweep_file: str | FilePath, overrides: Iterable[str] = ()) -> SweepPlan:
    """Read the sweep file and its base config and check them against each other (module docstring).

    Raises:
        ConfigError: every disagreement, each naming the sweep file and the base config with their lines.
    """
    sweep = read_sweep_file(sweep_file)
    overrides = tuple(overrides)
    base_file = sweep.base_path
    base_line = sweep.line_of("base")
    if not base_file.is_file():
        raise ConfigError([ConfigIssue("base", f"the base config {sweep.header.base} ({base_file}) does not exist; "
                                       f"the path is relative to the sweep file.", str(sweep.path), base_line)],
                          subject=SUBJECT)
    loaded, issues = read_config_data(str(base_file), overrides)
    plan = SweepPlan(sweep, base_file, loaded, base_file.read_bytes(), overrides)
    # Every mistake a file shows by itself, at once: the base config's, the model's, the overrides', the swept
    # paths and markers, and each space's values; whole points are checked only once those are right.
    issues = list(issues) + _model_issues(plan) + _override_issues(plan) + _key_issues(plan) + _space_issues(plan)
    if issues:
        raise ConfigError(issues, subject=SUBJECT)
    issues = _point_value_issues(plan)
    if issues:
        raise ConfigError(issues, subject=SUBJECT)
    return plan


def _where(origin: Origin | None, fallback: str) -> str:
    return str(origin) if origin else fallback


def _model_issues(plan: SweepPlan) -> list[ConfigIssue]:
    general = plan.base.data.get("General") if isinstance(plan.base.data, dict) else None
    written = general.get("name") if isinstance(general, dict) else None
    name = written if isinstance(written, str) else plan.base_file.stem
    if name == plan.sweep.header.model:
        return []
    origin = plan.base.origin_of(("General", "name")) if written is not None else None
    said = (f"{_where(origin, str(plan.base_file))} names it '{name}'" if written is not None else
            f"{plan.base_file} sets no General.name, so it is '{name}', the file's name")
    return [ConfigIssue("model", f"the sweep is written for model '{plan.sweep.header.model}', but its base config "
                                 f"is another model: {said}. Point base: at the config of "
                                 f"'{plan.sweep.header.model}', or correct model:.",
                        str(plan.sweep.path), plan.sweep.line_of("model"))]


def _override_issues(plan: SweepPlan) -> list[ConfigIssue]:
    issues = []
    for text in plan.overrides:
        path_text = text.partition("=")[0].strip()
        path = tuple(int(p) if p.lstrip("-").isdigit() else p for p in path_text.split("."))
        for swept in plan.keys:
            shorter = min(len(path), len(swept.path))
            if path[:shorter] == swept.path[:shorter]:
                issues.append(ConfigIssue(f"parameters.{swept.name}", f"is swept, but `--set {text}` fixes "
                                          f"{'it' if path == swept.path else path_text}; drop the --set, or drop "
                                          f"the parameter from the sweep (and give the key a value in "
                                          f"{plan.base_file.name}).", str(plan.sweep.path), swept.origin.line))
    return issues


def _value_at(data: Any, path: Path) -> tuple[bool, Any]:
    node = data
    for part in path:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


def _key_issues(plan: SweepPlan) -> list[ConfigIssue]:
    sweep_name, issues = str(plan.sweep.path), []
    base_name = plan.base_file.name
    for swept in plan.keys:
        where = f"parameters.{swept.name}"
        try:
            info = schema_key(Config, swept.path)
        except KeyPathError as exc:
            issues.append(ConfigIssue(where, f"{exc.message} (the swept path must be a key of the config "
                                             f"{base_name}).", sweep_name, swept.origin.line, exc.suggestions))
            continue
        found, value = _value_at(plan.base.data, swept.path)
        origin = plan.base.origins.get(swept.path)
        if origin is not None and origin.line is None:
            pass  # set by a --set: reported by _override_issues
        elif not found:
            parent = plan.base.origin_of(swept.path[:-1])
            issues.append(ConfigIssue(where, f"is swept, but {base_name} does not set it (near "
                                             f"{_where(parent, str(plan.base_file))}); write `{swept.path[-1]}: "
                                             f"{SWEEP_MARKER}` there, so that the base config shows which keys the "
                                             f"sweep sets.", sweep_name, swept.origin.line))
        elif value != SWEEP_MARKER:
            origin = plan.base.origin_of(swept.path)
            issues.append(ConfigIssue(where, f"is swept, but {_where(origin, str(plan.base_file))} sets it to "
                                             f"{yaml_text(value)}; write `{swept.path[-1]}: {SWEEP_MARKER}` there, or "
                                             f"drop the parameter from the sweep.", sweep_name, swept.origin.line))
        misfit = _space_misfit(swept, info)
        if misfit:
            issues.append(ConfigIssue(where, misfit, sweep_name, swept.origin.line))
    swept_paths = {swept.path for swept in plan.keys}
    for path, origin in sweep_markers(plan.base):
        if path not in swept_paths:
            fix = (f"add `{dotted(path)}: {{choice: [...]}}` (or another space) to its parameters (line "
                   f"{plan.sweep.line_of('parameters')}), or give the key a value here.")
            issues.append(ConfigIssue(dotted(path), f"holds '{SWEEP_MARKER}', but {plan.sweep.path.name} does not "
                                                    f"sweep it; {fix}", origin.file if origin else str(plan.base_file),
                                      origin.line if origin else None))
    return issues


def _space_misfit(swept: SweptKey, info) -> str:
    """Why the kind of ``swept``'s space cannot sweep its key (schema ``info``); "" when it can."""
    kind, inner = swept.space.kind, non_null_type(info.type)
    if kind in ("uniform", "loguniform") and inner is int:
        return f"{swept.name} is an integer key; sweep it with int: [lo, hi] (a {kind} range gives fractions)."
    if kind in ("uniform", "loguniform", "int") and inner not in (int, float):
        return f"{swept.name} is not a number; sweep it with choice: [...]."
    return ""


def _space_issues(plan: SweepPlan) -> list[ConfigIssue]:
    """Each value of each space checked as its key's value (type, range, choices), for every swept path that is a
    key of the config and a space of a kind that fits it (the others are `_key_issues`' to report)."""
    found: dict[str, ConfigIssue] = {}
    for swept in plan.keys:
        try:
            info = schema_key(Config, swept.path)
        except KeyPathError:
            continue
        if _space_misfit(swept, info):  # its kind is the mistake, reported once by _key_issues
            continue
        for value in swept.space.ends():
            for issue in check_value(Config, swept.path, value):
                issue = _named_at_space(plan, swept, value, issue)
                found.setdefault(str(issue), issue)
    return list(found.values())


def _point_value_issues(plan: SweepPlan) -> list[ConfigIssue]:
    """Whole configs: every point of a grid (up to `MAX_POINTS_VALIDATED`) must be valid. For a sampled sweep,
    the rules that tie keys together (a section's cross-check) are tried with each value and the other keys at
    their first values: a conflict there is a warning (`SweepPlan.warnings`), since its trials fail and the sweep
    goes on."""
    found: dict[str, ConfigIssue] = {}
    if plan.sweep.header.sampler == "grid":
        if grid_size(plan.keys) <= MAX_POINTS_VALIDATED:
            for point in plan.grid_points():
                for issue in _point_issues(plan, point):
                    found.setdefault(str(issue), issue)
        return list(found.values())
    first = plan.first_values()
    for swept in plan.keys:
        for value in swept.space.ends():
            for issue in _point_issues(plan, {**first, swept.path: value}):
                if str(issue) not in plan.warnings:
                    plan.warnings.append(str(issue))
    return []


def _named_at_space(plan: SweepPlan, swept: SweptKey, value: Any, issue: ConfigIssue) -> ConfigIssue:
    marker = plan.base.origin_of(swept.path)
    return ConfigIssue(f"parameters.{swept.name}", f"the value {yaml_text(value)} of its {swept.space.kind} space "
                                                   f"is refused: {issue.message} ({_where(marker, str(plan.base_file))} "
                                                   f"holds '{SWEEP_MARKER}')", str(plan.sweep.path),
                       swept.origin.line, issue.suggestions)


def _point_issues(plan: SweepPlan, point: dict[Path, Any]) -> list[ConfigIssue]:
    """The validator's issues for one point: an issue at a swept key is named at that key's sweep line with its
    value at the point; any other names the point."""
    try:
        plan.concrete_config(point)
    except ConfigError as exc:
        issues = []
        point_text = ", ".join(f"{dotted(p)}={yaml_text(v)}" for p, v in point.items())
        for issue in exc.errors:
            owner = next((k for k in plan.keys if issue.path == k.name or issue.path.startswith(k.name + ".")), None)
            if owner is not None:
                issue = _named_at_space(plan, owner, point[owner.path], issue)
            issues.append(ConfigIssue(issue.path, f"{issue.message} (at the point {point_text})", issue.file,
                                      issue.line, issue.suggestions))
        return issues
    return []
