"""Reading the source store with many requests in flight: listings, and what a refresh needs to look into."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

from gravtrain.stores.doctor import NOT_RUNS
from gravtrain.stores.mirror.layout import (
    ARTIFACTS, Entry, SourceListing, holds_artifacts, is_experiment, run_of, run_signature,
)
from gravtrain.stores.mirror.state import MirrorState
from gravtrain.tracking.errors import TrackingError
from gravtrain.tracking.run_pack import PACK_FILE, read_run_pack


class MirrorError(TrackingError):
    """The source store cannot be listed (not mounted, gone, no permission), or the mirror cannot be written: the
    mirror cannot be brought up to date. The message says which store and why."""


class SourceScanner:
    """Lists and reads the source store ``source`` (never writes it), counting the directories listed and the
    files read (``listed``, ``files_read``; safe across the pool's threads)."""

    def __init__(self, source: Path):
        self.source = source
        self.listed = self.files_read = 0
        self._counter_lock = threading.Lock()

    def count_read(self, files: int = 1) -> None:
        with self._counter_lock:
            self.files_read += files

    def list_source(self, pool: ThreadPoolExecutor, state: MirrorState, deep: bool) -> SourceListing:
        """List the source: its experiments and their own files, and every file of the runs that need looking
        into (new, not ended, or with a changed ``meta.yaml`` or ``tags`` folder since ``state``; all of them if
        ``deep``).

        Raises:
            MirrorError: the source cannot be listed.
        """
        try:
            top = self.list("")
        except OSError as exc:
            raise MirrorError(f"cannot read the store {self.source}: {exc.strerror or exc}; is it mounted, and is "
                              "it the directory that holds the experiments (mlruns)?") from exc
        experiments = sorted(entry.name for entry in top if entry.is_dir and is_experiment(entry.name))
        listings = self.list_all(pool, experiments)
        listing = SourceListing(experiments=[name for name in experiments if listings[name] is not None])

        # The experiments' own files: meta.yaml and MLflow's folders (tags, datasets, ...), always read.
        experiment_folders, run_dirs = [], []
        for experiment in listing.experiments:
            for entry in listings[experiment]:
                path = f"{experiment}/{entry.name}"
                if not entry.is_dir:
                    listing.experiment_files[path] = entry
                elif entry.name in NOT_RUNS:
                    experiment_folders.append(path)
                else:
                    run_dirs.append(path)
        listing.experiment_files.update(self.walk(pool, experiment_folders))

        # The runs: each one's own listing tells whether it needs looking into; a current pack stands for the
        # files of an ended one (gravtrain.tracking.run_pack).
        listing.run_listings = self.list_all(pool, run_dirs)
        looked_into = []
        for run in run_dirs:
            entries = listing.run_listings[run]
            if entries is None or not any(e.name == "meta.yaml" and not e.is_dir for e in entries):
                continue  # vanished, or being created: next refresh
            known = state.runs.get(run)
            if known and known["ended"] and known["signature"] == run_signature(entries) and not deep:
                listing.unchanged.append(run)
                continue
            looked_into.append(run)
        packed = [] if deep else [run for run in looked_into
                                  if any(e.name == PACK_FILE for e in listing.run_listings[run])]
        for run, files in zip(packed, pool.map(self.read_pack, packed)):
            if files is not None:
                listing.run_files[run] = {path: entry for path, (entry, _) in files.items()}
                listing.contents.update((path, data) for path, (_, data) in files.items())
        walked = [run for run in looked_into if run not in listing.run_files]
        for run in walked:
            listing.run_files[run] = {f"{run}/{e.name}": e for e in listing.run_listings[run]
                                      if not e.is_dir and e.name != PACK_FILE}
        folders = [f"{run}/{e.name}" for run in walked for e in listing.run_listings[run]
                   if e.is_dir and e.name != ARTIFACTS]
        for path, entry in self.walk(pool, folders).items():
            listing.run_files[run_of(path)][path] = entry
        return listing

    def read_pack(self, run: str) -> dict[str, tuple[Entry, bytes]] | None:
        """The files of the run folder ``run`` from its pack, if the pack is current (`gravtrain.tracking.run_pack`:
        same ``meta.yaml``, same tag files and sizes); else None, and the run's files are read one by one."""
        try:
            meta = (self.source / run / "meta.yaml").read_bytes()
            pack = read_run_pack((self.source / run / PACK_FILE).read_bytes())
            tags = self.list_or_none(f"{run}/tags") or []
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None
        self.count_read(2)
        if pack is None or pack.get("meta.yaml", (None,))[0] != meta:
            return None
        packed_tags = {path[len("tags/"):]: len(data) for path, (data, _) in pack.items() if path.startswith("tags/")}
        if packed_tags != {entry.name: entry.size for entry in tags if not entry.is_dir}:
            return None
        return {f"{run}/{path}": (Entry(Path(path).name, False, signature[0], signature[1] * 10**9), data)
                for path, (data, signature) in pack.items()}

    def list(self, relative: str) -> list[Entry]:
        """The entries of the source directory ``relative`` (raises OSError)."""
        entries = []
        with os.scandir(self.source / relative if relative else self.source) as listing:
            for item in listing:
                try:
                    is_dir = item.is_dir(follow_symlinks=False)
                    status = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listed
                entries.append(Entry(item.name, is_dir, status.st_size, status.st_mtime_ns))
        with self._counter_lock:
            self.listed += 1
        return entries

    def list_or_none(self, relative: str) -> list[Entry] | None:
        try:
            return self.list(relative)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list_all(self, pool: ThreadPoolExecutor, directories: list[str]) -> dict[str, list[Entry] | None]:
        return dict(zip(directories, pool.map(self.list_or_none, directories)))

    def walk(self, pool: ThreadPoolExecutor, roots: Iterable[str]) -> dict[str, Entry]:
        """Every file below the source directories ``roots`` (breadth first, each level listed at once),
        artifact folders skipped."""
        files: dict[str, Entry] = {}
        frontier = [root for root in roots if not holds_artifacts(root)]
        while frontier:
            listings = self.list_all(pool, frontier)
            frontier = []
            for directory, entries in listings.items():
                for entry in entries or ():
                    path = f"{directory}/{entry.name}"
                    if not entry.is_dir:
                        files[path] = entry
                    elif not holds_artifacts(path):
                        frontier.append(path)
        return files
