"""What the mirror knows of an MLflow directory store's layout: which folders are experiments, runs and artifacts,
what a listed item and a listing of the source are, and the quick check of a run."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gravtrain.stores.doctor import NOT_EXPERIMENTS, NOT_RUNS
from gravtrain.tracking.run_pack import file_signature
from gravtrain.tracking.tracker import ENDED_STATUS_CODES

#: A run's folder whose contents are not mirrored (read from the source when asked for).
ARTIFACTS = "artifacts"
#: The folders MLflow requires of a run's directory before it finds the run by its ID (its
#: ``FileStore._is_valid_run_directory``); the mirror has them, the artifacts one empty.
RUN_FOLDERS = ("metrics", "params", "tags", ARTIFACTS)
#: Experiment folders of MLflow (models, traces) whose items carry artifacts of their own.
ITEMS_WITH_ARTIFACTS = ("models", "traces")
#: The prefix of gravtrain's run tags: a run with one is a gravtrain run.
GRAVTRAIN_TAG_PREFIX = "gravtrain."


@dataclass(frozen=True)
class Entry:
    """One item of a listed directory: what `os.scandir` tells of it (on sshfs, from the listing's own reply)."""

    name: str
    is_dir: bool
    size: int
    mtime_ns: int

    @property
    def signature(self) -> list[int]:
        return file_signature(self.size, self.mtime_ns / 1e9)


@dataclass
class SourceListing:
    """What one refresh found in the source (`gravtrain.stores.mirror.scan.SourceScanner.list_source`)."""

    experiments: list[str]
    experiment_files: dict[str, Entry] = field(default_factory=dict)  #: path -> entry, experiments' own files
    run_listings: dict[str, list[Entry] | None] = field(default_factory=dict)  #: each run folder's entries
    run_files: dict[str, dict[str, Entry]] = field(default_factory=dict)  #: runs looked into: their files
    unchanged: list[str] = field(default_factory=list)  #: ended runs whose quick check found no change
    contents: dict[str, bytes] = field(default_factory=dict)  #: files known from runs' packs: path -> bytes


def is_experiment(name: str) -> bool:
    """Whether a top-level folder of a store is an experiment (MLflow skips ``*.trash`` and ``models``)."""
    return name not in NOT_EXPERIMENTS and not name.endswith(".trash")


def holds_artifacts(path: str) -> bool:
    """Whether the folder ``path`` (relative to the store) is a run's (or a logged model's, a trace's)
    artifacts, which are not mirrored."""
    parts = path.split("/")
    return parts[-1] == ARTIFACTS and (len(parts) == 3 or (len(parts) == 4 and parts[1] in ITEMS_WITH_ARTIFACTS))


def run_of(path: str) -> str | None:
    """``<experiment>/<run>`` of a file below a run's folder; None for an experiment's own file."""
    parts = path.split("/")
    if len(parts) < 3 or parts[1] in NOT_RUNS:
        return None
    return f"{parts[0]}/{parts[1]}"


def run_signature(entries: list[Entry] | None) -> list:
    """What a quick check compares: the size and modification time, as precise as the file system gives it, of
    the ``meta.yaml`` and the ``tags`` folder of a run's listing."""
    found = {entry.name: [entry.size, entry.mtime_ns] for entry in entries or () if entry.name in ("meta.yaml", "tags")}
    return [found.get("meta.yaml"), found.get("tags")]


def has_ended(meta: Path) -> bool:
    """Whether the mirrored run's ``meta.yaml`` gives an ended status."""
    try:
        info = yaml.safe_load(meta.read_bytes())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(info, dict) and info.get("status") in ENDED_STATUS_CODES


def remove_file(path: Path) -> None:
    """Remove ``path`` of the mirror if it is there."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
