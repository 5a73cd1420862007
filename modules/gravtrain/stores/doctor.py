"""``gravtrain runs doctor``: find the files of an MLflow directory store that a crash or a full disk damaged,
and move them aside so that MLflow's own search and UI work again. Nothing is ever deleted.

MLflow's file store is one directory per experiment (``meta.yaml``) holding one directory per run:
``meta.yaml`` (the run's info), ``metrics/<key>`` (one line ``timestamp value step`` per point), ``params/<key>``
and ``tags/<key>`` (the value itself). A damaged file breaks more than its own run:

============================  ===============================================  =====================================
damage                        what it breaks (MLflow 3)                        what ``--fix`` does
============================  ===============================================  =====================================
run ``meta.yaml`` empty,      ``search_runs`` and the UI's run list fail for   the run's directory is quarantined
unreadable or incomplete      the whole experiment                             (its data kept there)
metric file empty             ``search_runs`` fails for the whole experiment   the file is quarantined
                              ("Metric ... is malformed")
metric line cut mid-write     read as a point at step 0 (or refused): a        the file is quarantined and its
or malformed                  wrong point on the chart                         valid lines written back
experiment ``meta.yaml``      the experiment and all its runs vanish from      quarantined; a new ``meta.yaml``
empty or unreadable           the UI                                           named ``recovered-<id>`` is written
============================  ===============================================  =====================================

An empty param or tag file is a legitimate empty value to MLflow and is not reported. A run that is still being
written (status RUNNING and a file changed within ``LIVE_SECONDS``; with its status unreadable, a ``meta.yaml``
changed within ``META_WRITE_SECONDS``) is never touched, only reported.

The quarantine is ``<store>/QUARANTINE_DIR/<UTC time>/`` with the store's own layout below it. Its name ends in
``.trash`` because MLflow's file store skips top-level folders so named when it lists experiments (as its own
``.trash``), so the quarantine adds no "malformed experiment" warning.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gravtrain.tracking.run_pack import PACK_FILE
from gravtrain.tracking.tracker import STATUS_CODES

logger = logging.getLogger(__name__)

QUARANTINE_DIR = ".gravtrain-quarantine.trash"
#: A RUNNING run with a file changed this recently is taken to be still written, and left alone.
LIVE_SECONDS = 300.0
#: A run whose ``meta.yaml`` is unreadable is taken to be mid-write if that file changed this recently.
META_WRITE_SECONDS = 10.0
#: Top-level folders of a store that are not experiments (MLflow's trash and model registry, our quarantine).
NOT_EXPERIMENTS = (".trash", "models", QUARANTINE_DIR)
#: Folders inside an experiment that are not runs (MLflow's RESERVED_EXPERIMENT_FOLDERS).
NOT_RUNS = ("tags", "datasets", "traces", "models")
#: The keys of a run's and of an experiment's ``meta.yaml`` without which MLflow 3's file store cannot read it
#: (it supplies ``status`` and a run's ``lifecycle_stage`` itself). MLflow writes the keys sorted, so a write cut
#: short lacks the last of them, a run's ``user_id``.
_RUN_INFO_KEYS = ("end_time", "experiment_id", "run_id", "start_time", "user_id")
_EXPERIMENT_INFO_KEYS = ("artifact_location", "experiment_id", "lifecycle_stage", "name")

BREAKS_EXPERIMENT_SEARCH = "search_runs and the UI's run list fail for the whole experiment"


@dataclass(frozen=True)
class Damage:
    """One damaged file (or run) of a store."""

    path: Path  #: the damaged file
    experiment: str  #: the experiment directory's name
    run: str | None  #: the run directory's name (None: the experiment's own meta.yaml)
    problem: str  #: what is wrong with it
    breaks: str  #: what it breaks in MLflow
    fix: str  #: what ``--fix`` does
    valid_lines: tuple[str, ...] | None = None  #: for a metric file with bad lines: the lines to keep

    @property
    def run_info_lost(self) -> bool:
        """A run's ``meta.yaml`` is damaged: nothing of the run is readable (or resumable) without it."""
        return self.run is not None and self.path.name == "meta.yaml"

    def describe(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}: {self.problem}; {self.breaks}. --fix: {self.fix}"


@dataclass
class DoctorReport:
    """What `examine_store` found, and what `repair` did."""

    root: Path
    damages: list[Damage] = field(default_factory=list)
    live: list[str] = field(default_factory=list)  #: runs skipped because they are being written
    runs_examined: int = 0
    quarantine: Path | None = None
    repaired: list[str] = field(default_factory=list)

    @property
    def damaged_runs(self) -> list[str]:
        """The distinct runs (``experiment/run``; ``experiment`` for its meta.yaml) with damage, in order."""
        return list(dict.fromkeys(f"{d.experiment}/{d.run}" if d.run else d.experiment for d in self.damages))

    def summary(self) -> str:
        lines = [f"{self.root}: {self.runs_examined} run(s) examined, {len(self.damages)} damaged file(s) in "
                 f"{len(self.damaged_runs)} run(s) or experiment(s)."]
        lines += [f"  {damage.describe(self.root)}" for damage in self.damages]
        lines += [f"  {run}: still being written (RUNNING, changed in the last {LIVE_SECONDS / 60:.0f} minutes); "
                  "left alone" for run in self.live]
        if self.repaired:
            lines.append(f"Moved aside into {self.quarantine} (nothing deleted):")
            lines += [f"  {entry}" for entry in self.repaired]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- examine
def examine_store(root: str | os.PathLike, *, now: float | None = None, read_metrics: bool = True) -> DoctorReport:
    """Every damaged file of the directory store ``root`` (see the module docstring).

    ``read_metrics=False`` only looks at the sizes of metric files, not at their lines: it finds all the damage
    that breaks MLflow's search (for `gravtrain ui`, on a store that may be mounted over the network), though
    not a line cut short in a file that has others.
    """
    root = Path(root)
    report = DoctorReport(root=root)
    if not root.is_dir():
        return report
    now = time.time() if now is None else now
    for experiment in sorted(path for path in root.iterdir() if path.is_dir() and path.name not in NOT_EXPERIMENTS):
        report.damages += _examine_experiment_meta(experiment)
        for run_dir in sorted(path for path in experiment.iterdir() if path.is_dir() and path.name not in NOT_RUNS):
            report.runs_examined += 1
            damages = examine_run(run_dir, read_metrics=read_metrics)
            if damages and _is_live(run_dir, now):
                report.live.append(f"{experiment.name}/{run_dir.name}")
                continue
            report.damages += damages
    return report


def examine_run(run_dir: Path, *, read_metrics: bool = True) -> list[Damage]:
    """The damaged files of one run directory (``read_metrics``: as in `examine_store`)."""
    experiment, run = run_dir.parent.name, run_dir.name
    meta = run_dir / "meta.yaml"
    info, problem = _read_meta(meta, _RUN_INFO_KEYS)
    if problem:
        return [Damage(meta, experiment, run, problem, BREAKS_EXPERIMENT_SEARCH,
                       "the run's directory is moved to the quarantine, with all it holds")]
    damages = []
    metrics = run_dir / "metrics"
    for path in sorted(p for p in metrics.rglob("*") if p.is_file()) if metrics.is_dir() else []:
        damages += _examine_metric(path, path.relative_to(metrics).as_posix(), experiment, run, read_metrics)
    return damages


def _examine_experiment_meta(experiment: Path) -> list[Damage]:
    meta = experiment / "meta.yaml"
    _, problem = _read_meta(meta, _EXPERIMENT_INFO_KEYS)
    if not problem:
        return []
    return [Damage(meta, experiment.name, None, problem,
                   "the experiment and all its runs are missing from the UI and from search_experiments",
                   f"it is moved to the quarantine and a new meta.yaml names the experiment "
                   f"'recovered-{experiment.name}'")]


def _read_meta(path: Path, required: tuple[str, ...]) -> tuple[dict | None, str | None]:
    """The YAML mapping of a ``meta.yaml`` and None, or None and what is wrong with it."""
    try:
        return _parse_meta(path.read_bytes(), required)
    except FileNotFoundError:
        return None, "meta.yaml is missing"
    except OSError as exc:
        return None, f"meta.yaml cannot be read ({exc})"


def meta_problem(data: bytes, *, of_run: bool) -> str | None:
    """What is wrong with the bytes of a run's (``of_run``) or an experiment's ``meta.yaml``; None if MLflow
    reads it."""
    return _parse_meta(data, _RUN_INFO_KEYS if of_run else _EXPERIMENT_INFO_KEYS)[1]


def _parse_meta(data: bytes, required: tuple[str, ...]) -> tuple[dict | None, str | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"meta.yaml cannot be read ({exc})"
    if not text.strip():
        return None, "meta.yaml is empty (a write cut short)"
    try:
        info = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, "meta.yaml is not valid YAML (a write cut short)"
    if not isinstance(info, dict):
        return None, "meta.yaml is not a mapping (a write cut short)"
    missing = [key for key in required if key not in info]
    if missing:
        return None, f"meta.yaml lacks {', '.join(missing)} (a write cut short)"
    return info, None


def _examine_metric(path: Path, key: str, experiment: str, run: str, read: bool = True) -> list[Damage]:
    try:
        if not read and path.stat().st_size > 0:
            return []
        data = path.read_bytes()
    except OSError as exc:
        return [Damage(path, experiment, run, f"metric file cannot be read ({exc})", BREAKS_EXPERIMENT_SEARCH,
                       "the file is moved to the quarantine")]
    if not data.strip():
        return [Damage(path, experiment, run, "metric file is empty (a write cut short, e.g. by a full disk)",
                       f"{BREAKS_EXPERIMENT_SEARCH} (\"Metric '{key}' is malformed\")",
                       "the file is moved to the quarantine")]
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    cut = not text.endswith("\n")  # MLflow ends every line it appends with a newline
    body, last = (lines[:-1], lines[-1]) if cut else (lines[:-1], None)
    valid, bad = [], []
    for number, line in enumerate(body, start=1):
        (valid if _metric_line_ok(line) else bad).append((number, line))
    if last is not None:
        bad.append((len(body) + 1, last))
    if not bad:
        return []
    where = ", ".join(str(number) for number, _ in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    what = "cut mid-write" if cut and len(bad) == 1 else "malformed or cut mid-write"
    breaks = ("MLflow reads it as a point at step 0 or refuses the file: a wrong point on the chart, or "
              f"{BREAKS_EXPERIMENT_SEARCH}")
    return [Damage(path, experiment, run, f"metric '{key}': line(s) {where} {what}", breaks,
                   f"the file is moved to the quarantine and its {len(valid)} valid line(s) written back",
                   valid_lines=tuple(line for _, line in valid))]


def _metric_line_ok(line: str) -> bool:
    """``timestamp value step``: an integer, a float (nan and inf allowed), an integer."""
    parts = line.split(" ")
    if len(parts) != 3:
        return False
    try:
        int(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        return False
    return True


def _is_live(run_dir: Path, now: float) -> bool:
    """Status RUNNING (or no ``meta.yaml`` yet) and a file changed within LIVE_SECONDS; with a ``meta.yaml`` that
    cannot be read, that file changed within META_WRITE_SECONDS (MLflow rewrites it in one go)."""
    meta = run_dir / "meta.yaml"
    info, _ = _read_meta(meta, _RUN_INFO_KEYS)
    try:
        if info is None and meta.exists():
            return now - meta.stat().st_mtime < META_WRITE_SECONDS
        if info is not None and info.get("status") != STATUS_CODES["RUNNING"]:
            return False
        # RUNNING, or no meta.yaml yet (a run being created): its newest file decides.
        newest = max((path.stat().st_mtime for path in [run_dir, *run_dir.rglob("*")]), default=0.0)
    except OSError:  # files vanishing under us: something is writing
        return True
    return now - newest < LIVE_SECONDS


# ------------------------------------------------------------------------------------------------ repair
def repair(report: DoctorReport, *, stamp: str | None = None) -> DoctorReport:
    """Move every damaged file of ``report`` into a new quarantine folder of its store (see the module
    docstring); metric files get their valid lines back, experiments a new ``meta.yaml``. Returns ``report``
    with ``quarantine`` and ``repaired`` filled in."""
    if not report.damages:
        return report
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    quarantine = report.root / QUARANTINE_DIR / stamp
    report.quarantine = quarantine
    moved_runs = set()
    for damage in report.damages:
        if damage.run is not None and (damage.experiment, damage.run) in moved_runs:
            continue
        if damage.run_info_lost:
            source = damage.path.parent  # the whole run: nothing of it is readable without its info
            moved_runs.add((damage.experiment, damage.run))
        else:
            source = damage.path
        target = quarantine / source.relative_to(report.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), str(target))
        if damage.valid_lines:
            _write_atomically(damage.path, "".join(line + "\n" for line in damage.valid_lines))
        if damage.run is None:
            _write_atomically(damage.path, yaml.safe_dump(_recovered_experiment(damage.path.parent)))
        report.repaired.append(f"{source.relative_to(report.root)}: {damage.fix}")
        pack = report.root / damage.experiment / damage.run / PACK_FILE if damage.run is not None else None
        if pack is not None and pack.is_file():  # the run's summary no longer matches it: aside with the damage
            target = quarantine / pack.relative_to(report.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(pack), str(target))
    logger.info("moved %d damaged item(s) of %s into %s", len(report.repaired), report.root, quarantine)
    return report


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _recovered_experiment(experiment: Path) -> dict:
    """A ``meta.yaml`` for an experiment whose own was damaged, with what its directory tells."""
    return {"artifact_location": experiment.resolve().as_uri(), "creation_time": int(time.time() * 1000),
            "experiment_id": experiment.name, "last_update_time": int(time.time() * 1000),
            "lifecycle_stage": "active", "name": f"recovered-{experiment.name}"}


def find_run_directory(root: str | os.PathLike, run_id: str) -> Path | None:
    """The directory of run ``run_id`` in the directory store ``root`` (any experiment), or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    for experiment in root.iterdir():
        if experiment.is_dir() and experiment.name not in NOT_EXPERIMENTS and (experiment / run_id).is_dir():
            return experiment / run_id
    return None


def repair_run(root: str | os.PathLike, run_id: str) -> DoctorReport:
    """Examine and repair the metrics of one run about to be resumed (so not being written, whatever its
    files' times). A damaged ``meta.yaml`` is reported, not moved: without it the run cannot be resumed."""
    root = Path(root)
    report = DoctorReport(root=root)
    run_dir = find_run_directory(root, run_id)
    if run_dir is None:
        return report
    report.runs_examined = 1
    report.damages = examine_run(run_dir)
    if any(damage.run_info_lost for damage in report.damages):
        return report
    return repair(report)
