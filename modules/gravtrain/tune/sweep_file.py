"""The sweep file: which base config it varies, how points are sampled, what is optimised, and each swept key's
space. Read with the config's strict YAML reader and validated by the config's validator, so a mistake reads
the same as in a config: file:line, what is wrong, and "did you mean".

    base: ../toy.yaml               # the base config, relative to this file; swept keys hold `sweep` there
    model: toy                      # must equal the base config's General.name
    sampler: random                 # grid | random | tpe
    trials: 20                      # trainings of distinct points (a grid: at most, and by default, its size)
    seed: 1                         # the sampler's seed
    pruner: median                  # none | median: stop a trial whose per-epoch objective trails the median
    pruner_warmup_epochs: 0         # epochs every trial trains before the pruner may stop it
    objective: {metric: val/objective, direction: minimize}
    repeats: 2                      # each point trained with General.seed + 0, ..., + repeats - 1
    parameters:
      Training.0.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
      Architecture.gravnet.0.n: {int: [4, 16], step: 4}
      LossOptions.q_min: {choice: [0.1, 0.5]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Any

from gravtrain.config.errors import ConfigError, ConfigIssue, Origin
from gravtrain.config.fields import FILE_STEM, key, section
from gravtrain.config.validate import describe, did_you_mean, dotted, validate_section
from gravtrain.config.yaml_reader import MAX_YAML_CHARACTERS, LoadedYaml, Path, read_yaml_text
from gravtrain.tune.spaces import SPACE_KINDS, Space

SUBJECT = "the sweep file"
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("none", "median")
DEFAULT_OBJECTIVE = "val/objective"
#: A grid larger than this is refused: its points are listed and validated one by one before the sweep starts.
MAX_GRID_POINTS_CHECKED = 100_000


@section("What the sweep optimises: a metric the training logs, and which way is better")
class Objective:
    metric: str = key(DEFAULT_OBJECTIVE, doc="a metric name of the training runs: val/objective (the validation "
                                             "loss, the default), val/loss/<term>, or physics/<name>")
    direction: str | None = key(None, choices=("minimize", "maximize"),
                                doc="minimize or maximize; required unless the metric is the default")

    def cross_check(self) -> list[tuple[str, str]]:
        if self.direction is None and self.metric != DEFAULT_OBJECTIVE:
            return [("direction", f"say whether {self.metric} is to be minimized or maximized "
                                  f"(direction: minimize | maximize).")]
        return []

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"


@section("A sweep file")
class SweepHeader:
    base: str = key(doc="the base config, a path relative to the sweep file")
    model: str = key(doc="the model the sweep is written for: must equal the base config's General.name")
    name: str = key(FILE_STEM, doc="the study's name in the Optuna storage (default: the sweep file's name)")
    sampler: str = key(choices=SAMPLERS, doc="grid (every point of the choice and int spaces), random, or tpe")
    trials: int | None = key(None, min=1, doc="how many points are trained; a grid's default is its size")
    seed: int = key(0, min=0, doc="the sampler's seed")
    pruner: str = key("none", choices=PRUNERS, doc="none, or median: prune a trial whose objective at an epoch "
                                                    "is worse than the median of earlier trials at that epoch")
    pruner_warmup_epochs: int = key(0, min=0, doc="epochs every trial trains before the pruner may stop it (0: it "
                                                  "may stop a trial after its first epoch, whose objective is "
                                                  "noisy); with the base config's epochs or more, none is pruned")
    objective: Objective = key(Objective(), doc="the metric that ranks the trials")
    repeats: int = key(1, min=1, doc="trainings of each point, with General.seed + 0, 1, ..., repeats - 1")
    parameters: Any = key(doc="dotted config paths (list items by index: Training.0.learning_rate), each with one "
                              "space: {choice: [v1, v2, ...]}, {uniform: [lo, hi]}, {loguniform: [lo, hi]} (lo > 0) "
                              "or {int: [lo, hi], step: s}; each key holds the value `sweep` in the base config")


@dataclass(frozen=True)
class SweptKey:
    """One entry of ``parameters``: the config path it sets, its space, and where it is written."""

    path: Path
    space: Space
    origin: Origin

    @property
    def name(self) -> str:
        """The dotted path, as the sweep file writes it and Optuna names the param."""
        return dotted(self.path)


@dataclass(frozen=True)
class SweepFile:
    """A valid sweep file. ``text`` is its bytes as read, for the parent run."""

    path: FilePath
    header: SweepHeader
    keys: tuple[SweptKey, ...]
    text: bytes
    origins: dict

    def line_of(self, *path) -> int | None:
        """The line of a key of the sweep file (or of its nearest parent)."""
        origin = LoadedYaml(None, self.origins).origin_of(tuple(path))
        return origin.line if origin else None

    @property
    def base_path(self) -> FilePath:
        return (self.path.parent / self.header.base).resolve()

    @property
    def n_trials(self) -> int:
        """The number of points trained: ``trials``, or a grid's size."""
        return self.header.trials if self.header.trials is not None else grid_size(self.keys)

    @property
    def n_trainings(self) -> int:
        """Training runs in all: trials x repeats."""
        return self.n_trials * self.header.repeats


def read_sweep_file(filename: str | FilePath) -> SweepFile:
    """Read and check a sweep file on its own (the checks against the base config are `plan_sweep`'s).

    Raises:
        ConfigError: every mistake found, each with its line.
    """
    filename = str(filename)
    try:
        raw = FilePath(filename).read_bytes()
    except FileNotFoundError:
        raise _unreadable(filename, "no such sweep file; check the path.") from None
    except IsADirectoryError:
        raise _unreadable(filename, "is a directory; give a sweep YAML file.") from None
    except OSError as exc:
        raise _unreadable(filename, f"cannot be read: {exc.strerror}.") from None
    if len(raw) > MAX_YAML_CHARACTERS:
        raise _unreadable(filename, f"is larger than {MAX_YAML_CHARACTERS} bytes; a sweep file is a few lines.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unreadable(filename, f"is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    loaded = read_yaml_text(text, filename)
    if loaded.data is None and loaded.issues:
        raise ConfigError(loaded.issues, subject=SUBJECT)
    issues = list(loaded.issues)
    try:
        header = validate_section(SweepHeader, loaded.data, loaded.origins, filename).config
    except ConfigError as exc:
        issues += exc.errors
        header = None
    parameters = loaded.data.get("parameters") if isinstance(loaded.data, dict) else None
    keys = read_parameters(parameters, loaded, filename, issues) if parameters is not None else ()
    if header is not None and not issues:
        _check_counts(header, keys, loaded, filename, issues)
    if issues:
        raise ConfigError(issues, subject=SUBJECT)
    return SweepFile(FilePath(filename), header, keys, raw, loaded.origins)


def _unreadable(filename: str, message: str) -> ConfigError:
    return ConfigError([ConfigIssue("", message, filename)], subject=SUBJECT)


def read_parameters(parameters: Any, loaded: LoadedYaml, filename: str, issues: list) -> tuple[SweptKey, ...]:
    """The ``parameters`` mapping as `SweptKey`s; mistakes go to ``issues``."""
    def add(path: Path, message: str, suggestions: tuple[str, ...] = ()) -> None:
        origin = loaded.origin_of(path)
        issues.append(ConfigIssue(dotted(path), message, filename, origin.line if origin else None, suggestions))

    here = ("parameters",)
    if not isinstance(parameters, dict) or not parameters:
        add(here, "expected a mapping of dotted config paths to spaces, e.g. "
                  "`Training.0.learning_rate: {loguniform: [1.0e-4, 1.0e-2]}`" +
                  ("" if isinstance(parameters, dict) else f", got {describe(parameters)}") + ".")
        return ()
    keys, seen = [], {}
    for name, body in parameters.items():
        where = here + (name,)
        path = tuple(int(p) if p.isdigit() else p for p in str(name).split("."))
        if any(p == "" for p in path):
            add(where, "empty part in the key path; separate keys with single dots (Training.0.learning_rate).")
            continue
        if path in seen:  # e.g. `Training.0.learning_rate` and `Training.00.learning_rate`
            add(where, f"sweeps the same key as line {seen[path]}; give each key one space.")
            continue
        origin = loaded.origin_of(where)
        seen[path] = origin.line if origin else "?"
        space = _read_space(body, where, loaded, add)
        if space is not None:
            keys.append(SweptKey(path, space, origin or Origin(filename)))
    return tuple(keys)


def _read_space(body: Any, where: Path, loaded: LoadedYaml, add) -> Space | None:
    if not isinstance(body, dict):
        add(where, f"expected a space such as {{choice: [a, b]}}, {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}} "
                   f"or {{int: [lo, hi], step: s}}, got {describe(body)}.")
        return None
    ok = True
    for name in body:
        if name not in SPACE_KINDS and name != "step":
            add(where + (name,), f"unknown space '{name}'; a space is one of {', '.join(SPACE_KINDS)} (int may add "
                                 f"step).", did_you_mean(str(name), SPACE_KINDS + ("step",)))
            ok = False
    kinds = [k for k in SPACE_KINDS if k in body]
    if ok and len(kinds) != 1:
        add(where, "give exactly one space: " + (f"{' and '.join(kinds)} are both given." if kinds else
                                                 f"one of {', '.join(SPACE_KINDS)}."))
        return None
    if not ok:
        return None
    kind = kinds[0]
    value = body[kind]
    at = where + (kind,)
    if kind == "choice":
        if not isinstance(value, list) or not value:
            add(at, "expected a non-empty list of values." if isinstance(value, list) or value is None else
                f"expected a list of values, got {describe(value)}.")
            return None
        if "step" in body:
            add(where + ("step",), "step goes with int only.")
            return None
        duplicates = [v for i, v in enumerate(value) if v in value[:i]]
        if duplicates:
            add(at, f"{describe(duplicates[0])} is listed twice; list each value once.")
            return None
        return Space("choice", tuple(value))
    if not isinstance(value, list) or len(value) != 2:
        add(at, f"expected [lo, hi], got {describe(value)}" + (f" of {len(value)}" if isinstance(value, list) else "")
            + ".")
        return None
    lo, hi = value
    integer = kind == "int"
    for end in (lo, hi):
        number = isinstance(end, (int, float)) and not isinstance(end, bool)
        if not number or (integer and not isinstance(end, int)) or (number and not math.isfinite(end)):
            add(at, f"the ends must be {'integers' if integer else 'finite numbers'}, got {describe(end)}.")
            return None
    if lo > hi or (lo == hi and not integer):
        add(at, f"the space is empty: lo ({lo!r}) must be below hi ({hi!r})." if lo > hi else
            f"lo equals hi ({lo!r}): a single value is no space; set it in the base config instead.")
        return None
    if kind == "loguniform" and lo <= 0:
        add(at, f"a log-uniform range needs lo > 0, got {lo!r}.")
        return None
    step = body.get("step", 1)
    if "step" in body:
        if not integer:
            add(where + ("step",), "step goes with int only.")
            return None
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            add(where + ("step",), f"step must be an integer >= 1, got {describe(step)}.")
            return None
    if integer and lo == hi:
        add(at, f"lo equals hi ({lo}): a single value is no space; set it in the base config instead.")
        return None
    return Space(kind, (lo, hi), step)


def _check_counts(header: SweepHeader, keys: tuple[SweptKey, ...], loaded: LoadedYaml, filename: str,
                  issues: list) -> None:
    """The grid's rules: finite spaces only, and no more points than ``trials``."""
    if header.sampler != "grid":
        if header.trials is None:
            origin = loaded.origin_of(("sampler",))
            issues.append(ConfigIssue("trials", f"a {header.sampler} sweep needs trials: how many points to train.",
                                      filename, origin.line if origin else None))
        return
    continuous = [k for k in keys if not k.space.finite]
    for swept in continuous:
        issues.append(ConfigIssue(f"parameters.{swept.name}", f"a grid needs a list of points: {swept.space.kind} "
                                  f"is continuous; use choice or int (or sampler: random | tpe).", filename,
                                  swept.origin.line))
    if continuous:
        return
    size = grid_size(keys)
    if header.trials is not None and size > header.trials:
        origin = loaded.origin_of(("trials",))
        sizes = " x ".join(str(int(k.space.size())) for k in keys)
        issues.append(ConfigIssue("trials", f"the grid has {size} points ({sizes}) but trials is {header.trials}; raise trials to {size}, drop trials (a grid's "
                                  f"default is its size), or make the spaces smaller.", filename,
                                  origin.line if origin else None))
    elif header.trials is not None and size < header.trials:
        origin = loaded.origin_of(("trials",))
        issues.append(ConfigIssue("trials", f"the grid has only {size} points but trials is {header.trials}; a grid "
                                  f"trains each point once (repeats: N trains each N times): set trials to {size} "
                                  f"or drop it.", filename, origin.line if origin else None))
    elif size > MAX_GRID_POINTS_CHECKED:
        origin = loaded.origin_of(("sampler",))
        issues.append(ConfigIssue("sampler", f"the grid has {size} points, more than {MAX_GRID_POINTS_CHECKED} can "
                                  f"be listed and checked; use sampler: random or tpe.", filename,
                                  origin.line if origin else None))


def grid_size(keys: tuple[SweptKey, ...]) -> int:
    """The number of points of the grid of ``keys`` (all finite)."""
    size = 1
    for swept in keys:
        size *= int(swept.space.size())
    return size

