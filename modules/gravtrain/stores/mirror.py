"""A local, incremental mirror of an MLflow directory store, so that a store on a slow mount (sshfs) browses fast.

Why: MLflow's file store keeps one small file per param, tag and metric, and its server opens them one at a time
for every page it serves. On a mount with a 10 ms round trip, listing 50 runs of 150 params then takes minutes.
`StoreMirror.refresh` reads the store's small files with many requests in flight (sshfs serves them concurrently)
into a local directory store that the local MLflow server reads instead; only new or changed runs are read again.

What the mirror holds, below ``<mirror home>/store``: every experiment's and run's files in MLflow's layout
(``meta.yaml``, ``params/``, ``metrics/``, ``tags/``, ``inputs/``, ...) except the artifacts, which stay where
they are and are read from the source when the UI asks for them. It differs from the source in two ways only:

- **Artifact locations.** A file store records absolute ``file://`` artifact locations (``artifact_uri`` of a
  run, ``artifact_location`` of an experiment). When the store is read at another path than the one it was
  written at (a cluster's ``mlruns`` mounted on a laptop), the mirror's copies point at the path it is read at,
  so every artifact is served from where it really is. A location elsewhere (a custom artifact root) is kept.
- **Experiment tags for the UI.** An experiment holding gravtrain runs (a ``gravtrain.*`` tag) gets, in the
  mirror, ``mlflow.experimentKind: custom_model_development`` (MLflow 3's UI then opens it on the runs table
  rather than as a GenAI project; `gravtrain.tracking.run.EXPERIMENT_KIND_TAGS`) and a runs-table view,
  ``mlflow.sharedViewState.gravtrain``, whose columns are the stage and the headline metrics its runs have
  (`runs_table_view`), opened by an address ending in ``?viewStateShareKey=gravtrain``. A tag the source
  experiment has itself is kept as it is.

The source is only ever listed and read, never written. A new run appears in the mirror complete or not at all
(it is assembled in ``<mirror home>/staging`` and renamed into place); a changed file is replaced atomically, so
the server never reads half a file.

Incremental: ``<mirror home>/state.json`` records the size and modification time (whole seconds, as sshfs gives
them) of every mirrored file, and for each run whether it had ended (FINISHED, FAILED or KILLED). A refresh lists
every experiment and run directory; it descends into a run only if the run is new, still running, or its
``meta.yaml`` or its ``tags`` folder changed. An ended run that gravtrain packed when it ended
(`gravtrain.tracking.run_pack`) is read from its pack, two files instead of about 190, when the pack is current.
Every `DEEP_CHECK_EVERY`-th refresh of a `MirrorRefresher` (and ``refresh(deep=True)``) looks into every run, which
finds a tag overwritten in an ended run. Runs and experiments gone from the source are removed from the mirror.

The mirror is a cache: deleting its home loses nothing, and a mirror written by another version of this module
is rebuilt from scratch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml

from gravtrain.stores.doctor import NOT_EXPERIMENTS, NOT_RUNS
from gravtrain.tracking.errors import TrackingError
from gravtrain.tracking.run import EXPERIMENT_KIND_TAGS
from gravtrain.tracking.headline_metrics import LIST_METRICS
from gravtrain.tracking.run_pack import PACK_FILE, file_signature, read_run_pack
from gravtrain.tracking.store import local_directory, store_uri
from gravtrain.tracking.tracker import ENDED_STATUS_CODES

logger = logging.getLogger(__name__)

#: Files read from the source at once. sshfs pipelines requests over its one connection, so many in flight
#: hide the round trip; on a local disk they cost nothing.
MIRROR_WORKERS = 32
#: A `MirrorRefresher` looks into every run, ended ones included, on every this-many-th refresh.
DEEP_CHECK_EVERY = 30
#: A `MirrorRefresher` waits at least this many times the duration of its last refresh before the next.
BUSY_FACTOR = 2.0
#: The mirror's format; a mirror with another is rebuilt.
MIRROR_FORMAT = 1
#: The key of the runs-table view the mirror gives each gravtrain experiment: MLflow's UI opens an experiment's
#: runs with the view stored in its tag ``mlflow.sharedViewState.<key>`` when the address names the key
#: (``?viewStateShareKey=<key>``), as its "Share" button does.
VIEW_SHARE_KEY = "gravtrain"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: A run's folder whose contents are not mirrored (read from the source when asked for).
ARTIFACTS = "artifacts"
#: The folders MLflow requires of a run's directory before it finds the run by its ID (its
#: ``FileStore._is_valid_run_directory``); the mirror has them, the artifacts one empty.
RUN_FOLDERS = ("metrics", "params", "tags", ARTIFACTS)
#: Experiment folders of MLflow (models, traces) whose items carry artifacts of their own.
_ITEMS_WITH_ARTIFACTS = ("models", "traces")
_GRAVTRAIN_TAG_PREFIX = "gravtrain."


class MirrorError(TrackingError):
    """The source store cannot be listed (not mounted, gone, no permission): the mirror cannot be brought up to
    date. The message says which store and why."""


@dataclass(frozen=True)
class RefreshReport:
    """What one `StoreMirror.refresh` did."""

    seconds: float  #: wall time of the refresh
    experiments: int  #: experiments in the source
    runs: int  #: runs in the source (with a readable ``meta.yaml``)
    runs_added: int  #: runs new to the mirror
    runs_updated: int  #: runs of which at least one file was read again
    runs_removed: int  #: runs gone from the source, removed from the mirror
    files_read: int  #: files read from the source
    directories_listed: int  #: directories of the source listed
    relocated_from: str | None  #: where the store was written, when that is not where it is read

    @property
    def changed(self) -> bool:
        return bool(self.runs_added or self.runs_updated or self.runs_removed)

    def describe(self) -> str:
        """One line for a user: how many runs, what changed, how long it took."""
        changes = ", ".join(f"{count} {what}" for count, what in ((self.runs_added, "new"),
                                                                  (self.runs_updated, "updated"),
                                                                  (self.runs_removed, "removed")) if count)
        return (f"{self.runs} run(s) in {self.experiments} experiment(s)" + (f" ({changes})" if changes else "")
                + f", {self.files_read} file(s) read in {self.seconds:.1f} s")


@dataclass(frozen=True)
class _Entry:
    """One item of a listed directory: what `os.scandir` tells of it (on sshfs, from the listing's own reply)."""

    name: str
    is_dir: bool
    size: int
    mtime_ns: int

    @property
    def signature(self) -> list[int]:
        return file_signature(self.size, self.mtime_ns / 1e9)


def default_mirror_home(source: str | os.PathLike) -> Path:
    """Where the mirror of ``source`` lives by default: the user's cache directory (``$XDG_CACHE_HOME``, else
    ``~/.cache``), ``gravtrain/mirrors/<store folder name>-<hash of its absolute path>``."""
    source = Path(os.path.abspath(Path(source).expanduser()))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    return cache / "gravtrain" / "mirrors" / f"{source.name or 'store'}-{digest}"


class StoreMirror:
    """The local mirror of one directory store (module docstring).

    Args:
        source: the store directory (``mlruns``, perhaps on an sshfs mount). Only read.
        home: the mirror's own directory (default `default_mirror_home`); the mirrored store is ``home/store``.
        workers: files read from the source at once.
    """

    def __init__(self, source: str | os.PathLike, home: str | os.PathLike | None = None, *,
                 workers: int = MIRROR_WORKERS):
        self.source = Path(os.path.abspath(Path(source).expanduser()))
        self.home = Path(home) if home is not None else default_mirror_home(self.source)
        self.store = self.home / "store"
        self.workers = workers
        self._staging = self.home / "staging"
        self._state_path = self.home / "state.json"
        self._lock_path = self.home / "lock"
        self._state = _State()
        self._loaded_version: int | None = None  # st_mtime_ns of the state file as last read or written
        self._initialised = False
        self._counter_lock = threading.Lock()
        self._listed = self._files_read = 0
        self._contents: dict[str, bytes] = {}  # files of this refresh known from packs
        self._dirty = False

    # -------------------------------------------------------------------------------------------- refresh
    def refresh(self, *, deep: bool = False) -> RefreshReport:
        """Bring the mirror up to date with the source (module docstring); ``deep`` looks into every run.

        Raises:
            MirrorError: the source store cannot be listed.
        """
        started = time.monotonic()
        with self._writing_the_mirror(), self._exclusive(), \
                ThreadPoolExecutor(self.workers, thread_name_prefix="mirror") as pool:
            self._dirty = False  # set by every change of the state; an unchanged state is not written again
            self._load_state()
            self.store.mkdir(exist_ok=True)
            self._listed = self._files_read = 0
            listing = self._list_source(pool, deep)
            self._contents = listing.contents
            self._sync_experiments(pool, listing.experiments, listing.experiment_files)
            added, updated = self._sync_runs(pool, listing.run_files, listing.run_listings)
            removed = self._remove_runs_gone(set(listing.unchanged) | set(listing.run_files))
            self._tag_gravtrain_experiments(listing.experiments)
            if self._dirty:
                self._save_state()
            self._contents = {}
        return RefreshReport(seconds=time.monotonic() - started, experiments=len(listing.experiments),
                             runs=len(listing.unchanged) + len(listing.run_files), runs_added=added,
                             runs_updated=updated, runs_removed=removed, files_read=self._files_read,
                             directories_listed=self._listed, relocated_from=self._state.relocated_from)

    def _list_source(self, pool: ThreadPoolExecutor, deep: bool) -> "_SourceListing":
        """List the source: its experiments and their own files, and every file of the runs that need looking
        into (new, not ended, or with a changed ``meta.yaml`` or ``tags`` folder; all of them if ``deep``)."""
        try:
            top = self._list("")
        except OSError as exc:
            raise MirrorError(f"cannot read the store {self.source}: {exc.strerror or exc}; is it mounted, and is "
                              "it the directory that holds the experiments (mlruns)?") from exc
        experiments = sorted(entry.name for entry in top if entry.is_dir and _is_experiment(entry.name))
        listings = self._list_all(pool, experiments)
        listing = _SourceListing(experiments=[name for name in experiments if listings[name] is not None])

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
        listing.experiment_files.update(self._walk(pool, experiment_folders))

        # The runs: each one's own listing tells whether it needs looking into; a current pack stands for the
        # files of an ended one (gravtrain.tracking.run_pack).
        listing.run_listings = self._list_all(pool, run_dirs)
        looked_into = []
        for run in run_dirs:
            entries = listing.run_listings[run]
            if entries is None or not any(e.name == "meta.yaml" and not e.is_dir for e in entries):
                continue  # vanished, or being created: next refresh
            known = self._state.runs.get(run)
            if known and known["ended"] and known["signature"] == _run_signature(entries) and not deep:
                listing.unchanged.append(run)
                continue
            looked_into.append(run)
        packed = [] if deep else [run for run in looked_into
                                  if any(e.name == PACK_FILE for e in listing.run_listings[run])]
        for run, files in zip(packed, pool.map(self._read_pack, packed)):
            if files is not None:
                listing.run_files[run] = {path: entry for path, (entry, _) in files.items()}
                listing.contents.update((path, data) for path, (_, data) in files.items())
        walked = [run for run in looked_into if run not in listing.run_files]
        for run in walked:
            listing.run_files[run] = {f"{run}/{e.name}": e for e in listing.run_listings[run]
                                      if not e.is_dir and e.name != PACK_FILE}
        folders = [f"{run}/{e.name}" for run in walked for e in listing.run_listings[run]
                   if e.is_dir and e.name != ARTIFACTS]
        for path, entry in self._walk(pool, folders).items():
            listing.run_files[_run_of(path)][path] = entry
        return listing

    def prepare(self) -> None:
        """Read the mirror's state (rebuilding a mirror it does not describe) and create the mirrored store's
        folder, so that a server can be started on it before the first refresh."""
        with self._writing_the_mirror(), self._exclusive():
            self._load_state()
            self.store.mkdir(exist_ok=True)

    def _read_pack(self, run: str) -> dict[str, tuple[_Entry, bytes]] | None:
        """The files of the run folder ``run`` from its pack, if the pack is current (`gravtrain.tracking.run_pack`:
        same ``meta.yaml``, same tag files and sizes); else None, and the run's files are read one by one."""
        try:
            meta = (self.source / run / "meta.yaml").read_bytes()
            pack = read_run_pack((self.source / run / PACK_FILE).read_bytes())
            tags = self._list_or_none(f"{run}/tags") or []
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            return None
        with self._counter_lock:
            self._files_read += 2
        if pack is None or pack.get("meta.yaml", (None,))[0] != meta:
            return None
        packed_tags = {path[len("tags/"):]: len(data) for path, (data, _) in pack.items() if path.startswith("tags/")}
        if packed_tags != {entry.name: entry.size for entry in tags if not entry.is_dir}:
            return None
        return {f"{run}/{path}": (_Entry(Path(path).name, False, signature[0], signature[1] * 10**9), data)
                for path, (data, signature) in pack.items()}

    # ------------------------------------------------------------------------------------------ listing
    def _list(self, relative: str) -> list[_Entry]:
        """The entries of the source directory ``relative`` (raises OSError)."""
        entries = []
        with os.scandir(self.source / relative if relative else self.source) as listing:
            for item in listing:
                try:
                    is_dir = item.is_dir(follow_symlinks=False)
                    status = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listed
                entries.append(_Entry(item.name, is_dir, status.st_size, status.st_mtime_ns))
        with self._counter_lock:
            self._listed += 1
        return entries

    def _list_or_none(self, relative: str) -> list[_Entry] | None:
        try:
            return self._list(relative)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _list_all(self, pool: ThreadPoolExecutor, directories: list[str]) -> dict[str, list[_Entry] | None]:
        return dict(zip(directories, pool.map(self._list_or_none, directories)))

    def _walk(self, pool: ThreadPoolExecutor, roots: Iterable[str]) -> dict[str, _Entry]:
        """Every file below the source directories ``roots`` (breadth first, each level listed at once),
        artifact folders skipped."""
        files: dict[str, _Entry] = {}
        frontier = [root for root in roots if not _holds_artifacts(root)]
        while frontier:
            listings = self._list_all(pool, frontier)
            frontier = []
            for directory, entries in listings.items():
                for entry in entries or ():
                    path = f"{directory}/{entry.name}"
                    if not entry.is_dir:
                        files[path] = entry
                    elif not _holds_artifacts(path):
                        frontier.append(path)
        return files

    # ------------------------------------------------------------------------------------------ copying
    def _sync_experiments(self, pool, experiments: list[str], files: dict[str, _Entry]) -> None:
        """Copy the experiments' changed files in place, drop their removed ones and removed experiments."""
        for experiment in experiments:
            (self.store / experiment).mkdir(parents=True, exist_ok=True)
        changed = [path for path, entry in files.items() if self._state.files.get(path) != entry.signature]
        self._copy_pairs(pool, [(path, self.store) for path in changed], files)
        kept = set(experiments)
        for path in [p for p in self._state.files if _run_of(p) is None]:
            experiment = path.split("/", 1)[0]
            if path not in files and path not in self._state.added:
                if experiment in kept:
                    _remove_file(self.store / path)
                del self._state.files[path]
                self._dirty = True
        for experiment in [e for e in self._state.experiments if e not in kept]:
            shutil.rmtree(self.store / experiment, ignore_errors=True)
            self._state.forget_prefix(f"{experiment}/")
            logger.info("experiment %s is gone from %s; removed from the mirror", experiment, self.source)
        if self._state.experiments != sorted(kept):
            self._state.experiments = sorted(kept)
            self._dirty = True

    def _sync_runs(self, pool, run_files: dict[str, dict[str, _Entry]],
                   listings: dict[str, list[_Entry] | None]) -> tuple[int, int]:
        """Copy new runs whole (through the staging folder) and the changed files of known ones; returns the
        counts of runs added and updated."""
        new = [run for run in run_files if run not in self._state.runs]
        known = [run for run in run_files if run in self._state.runs]
        to_copy: list[tuple[str, Path]] = []
        for run in new:
            to_copy += [(path, self._staging) for path in run_files[run]]
        updated_runs = set()
        for run in known:
            for path, entry in run_files[run].items():
                if self._state.files.get(path) != entry.signature:
                    to_copy.append((path, self.store))
                    updated_runs.add(run)
        shutil.rmtree(self._staging, ignore_errors=True)
        failed = self._copy_pairs(pool, to_copy, {p: e for files in run_files.values() for p, e in files.items()})

        for run in new:
            if any(path in failed for path in run_files[run]) or f"{run}/meta.yaml" in failed:
                self._state.forget_prefix(f"{run}/")  # try again next time; nothing of it in the mirror
                self._dirty = True
                continue
            for folder in RUN_FOLDERS:  # MLflow finds a run by ID only if these exist, empty or not
                (self._staging / run / folder).mkdir(parents=True, exist_ok=True)
            target = self.store / run
            if target.exists():  # left by an interrupted refresh whose state was not saved
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._staging / run, target)
        for run in known:  # files gone from a known run (a deleted tag)
            for path in [p for p in self._state.files if _run_of(p) == run and p not in run_files[run]]:
                _remove_file(self.store / path)
                del self._state.files[path]
                updated_runs.add(run)
                self._dirty = True
        for run in run_files:
            if run in new and not (self.store / run).exists():
                continue
            files = run_files[run]
            info = {
                "ended": _has_ended(self.store / run / "meta.yaml"),
                "signature": _run_signature(listings[run]),
                "gravtrain": any(path.startswith(f"{run}/tags/{_GRAVTRAIN_TAG_PREFIX}") for path in files),
                "headline": sorted(key for key in (path[len(run) + len("/metrics/"):] for path in files
                                                   if path.startswith(f"{run}/metrics/")) if key in LIST_METRICS),
            }
            if self._state.runs.get(run) != info:
                self._state.runs[run] = info
                self._dirty = True
        shutil.rmtree(self._staging, ignore_errors=True)
        return sum(1 for run in new if run in self._state.runs), len(updated_runs - set(new))

    def _copy_pairs(self, pool, pairs: list[tuple[str, Path]], entries: dict[str, _Entry]) -> set[str]:
        """Copy each source file ``path`` to ``root/path``; record what was copied; returns the paths that
        could not be read."""
        failed = set()
        copies = pool.map(lambda pair: self._copy(pair[0], pair[1], entries[pair[0]].mtime_ns), pairs)
        for (path, _), ok in zip(pairs, copies):
            if ok:
                self._state.files[path] = entries[path].signature
                self._dirty = True
                self._state.added.pop(path, None)  # the source's own file replaced the mirror's
                self._files_read += path not in self._contents
            else:
                failed.add(path)
        return failed

    def _copy(self, path: str, root: Path, mtime_ns: int) -> bool:
        """Copy one source file to ``root/path`` (atomically, with the source's modification time, which the
        doctor reads), rewriting a ``meta.yaml``; False if it cannot be read."""
        data = self._contents.get(path)
        try:
            data = (self.source / path).read_bytes() if data is None else data
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            logger.debug("not mirrored: %s (%s)", path, exc)
            return False
        if Path(path).name == "meta.yaml":
            data = self._relocate(path, data)
        self._write(root / path, data, mtime_ns)
        return True

    def _write(self, path: Path, data: bytes, mtime_ns: int | None = None) -> None:
        """Write ``path`` of the mirror atomically, through a scratch folder outside the mirrored store (a
        partial file inside it would be read by MLflow as a metric or a tag)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.home / "scratch" / f"{threading.get_ident()}-{path.name}"
        partial.parent.mkdir(exist_ok=True)
        partial.write_bytes(data)
        if mtime_ns is not None:
            os.utime(partial, ns=(mtime_ns, mtime_ns))
        os.replace(partial, path)

    # ---------------------------------------------------------------------------------------- relocation
    def _relocate(self, path: str, data: bytes) -> bytes:
        """A ``meta.yaml`` whose recorded ``file://`` artifact location is the store's own folder under another
        root, with that location moved to where the source is read."""
        try:
            meta = yaml.safe_load(data)
        except yaml.YAMLError:
            return data  # damaged: mirrored as is, for the doctor to report
        if not isinstance(meta, dict):
            return data
        folder = Path(path).parent.as_posix()  # "<experiment>" or "<experiment>/<run>"
        key, suffix = ("artifact_uri", f"{folder}/{ARTIFACTS}") if "/" in folder else ("artifact_location", folder)
        recorded = meta.get(key)
        if not isinstance(recorded, str) or urlparse(recorded).scheme != "file":
            return data
        recorded_path = url2pathname(urlparse(recorded).path)
        parts, suffix_parts = Path(recorded_path).parts, tuple(suffix.split("/"))
        if parts[-len(suffix_parts):] != suffix_parts:
            return data  # a custom artifact location: kept
        written_at = Path(*parts[:-len(suffix_parts)])
        if written_at == self.source:
            return data
        if self._state.relocated_from != str(written_at):
            self._state.relocated_from = str(written_at)
            self._dirty = True
        meta[key] = (self.source / suffix).as_uri()
        return yaml.safe_dump(meta, default_flow_style=False, sort_keys=False).encode()

    # --------------------------------------------------------------------------------------- bookkeeping
    def _remove_runs_gone(self, present: set[str]) -> int:
        gone = [run for run in self._state.runs if run not in present]
        for run in gone:
            shutil.rmtree(self.store / run, ignore_errors=True)
            self._state.forget_prefix(f"{run}/")
            del self._state.runs[run]
            self._dirty = True
        return len(gone)

    def _tag_gravtrain_experiments(self, experiments: list[str]) -> None:
        """Give the mirror's copy of each gravtrain experiment its kind and its runs-table view (module
        docstring), unless the source experiment has tags of these names itself."""
        (kind, custom), = EXPERIMENT_KIND_TAGS.items()
        runs_of: dict[str, list[dict]] = {}
        for run, info in self._state.runs.items():
            runs_of.setdefault(run.split("/", 1)[0], []).append(info)
        for experiment in experiments:
            infos = [info for info in runs_of.get(experiment, ()) if info["gravtrain"]]
            headline = sorted({key for info in infos for key in info.get("headline", ())}, key=LIST_METRICS.index)
            self._set_mirror_tag(experiment, kind, custom if infos else None)
            self._set_mirror_tag(experiment, f"{SHARED_VIEW_TAG_PREFIX}{VIEW_SHARE_KEY}",
                                 runs_table_view(headline) if infos else None)

    def _set_mirror_tag(self, experiment: str, key: str, value: str | None) -> None:
        """Write (or with None remove) an experiment tag of the mirror that the source does not have."""
        tag = f"{experiment}/tags/{key}"
        if tag in self._state.files and tag not in self._state.added:
            return  # the source has its own
        if value is not None and self._state.added.get(tag) != value:
            self._write(self.store / tag, value.encode())
            self._state.added[tag] = value
            self._state.files[tag] = [-1, -1]  # never equal to a source file's: a source tag replaces it
            self._dirty = True
        elif value is None and tag in self._state.added:
            _remove_file(self.store / tag)
            del self._state.added[tag]
            self._dirty = True
            self._state.files.pop(tag, None)

    def newest_gravtrain_experiment(self) -> str | None:
        """The ID of the gravtrain experiment whose run changed last (by its ``meta.yaml``), or None."""
        changed = [((info["signature"][0] or [0, 0])[1], run.split("/", 1)[0])
                   for run, info in self._state.runs.items() if info["gravtrain"]]
        return max(changed)[1] if changed else None

    @contextlib.contextmanager
    def _writing_the_mirror(self) -> Iterator[None]:
        """Create the mirror's home; a write of the mirror that fails (no permission, a full disk) becomes a
        `MirrorError` that says where and what to do. Reading the source fails with its own message."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            yield
        except MirrorError:
            raise
        except OSError as exc:
            raise MirrorError(f"cannot write the local mirror in {self.home}: {exc.strerror or exc}; free space "
                              "there, choose another folder (--mirror), or read the store directly (--direct)") \
                from exc

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One refresh of this mirror at a time, across processes (``gravtrain ui`` and ``runs list``)."""
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process lock
            yield
            return
        with open(self._lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_state(self) -> None:
        """Read ``state.json`` unless this process wrote or read it last (another process refreshing the same
        mirror changes it); a missing, unreadable, foreign or other-format state rebuilds the mirror."""
        try:
            version = self._state_path.stat().st_mtime_ns
        except FileNotFoundError:
            version = None
        if (version is not None and version == self._loaded_version) or (version is None and self._initialised):
            return  # what this process holds is current
        self._initialised = True
        self._loaded_version = version
        try:
            saved = json.loads(self._state_path.read_text())
            if saved.get("format") == MIRROR_FORMAT and saved.get("source") == str(self.source):
                self._state = _State.from_dict(saved)
                return
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        if self.store.exists():
            logger.info("rebuilding the mirror %s", self.store)
            shutil.rmtree(self.store)
        self._state = _State()
        self._dirty = True

    def _save_state(self) -> None:
        state = self._state.to_dict()
        state.update(format=MIRROR_FORMAT, source=str(self.source))
        self._write(self._state_path, json.dumps(state, separators=(",", ":")).encode())
        self._loaded_version = self._state_path.stat().st_mtime_ns


@dataclass
class _SourceListing:
    """What one refresh found in the source (`StoreMirror._list_source`)."""

    experiments: list[str]
    experiment_files: dict[str, _Entry] = field(default_factory=dict)  #: path -> entry, experiments' own files
    run_listings: dict[str, list[_Entry] | None] = field(default_factory=dict)  #: each run folder's entries
    run_files: dict[str, dict[str, _Entry]] = field(default_factory=dict)  #: runs looked into: their files
    unchanged: list[str] = field(default_factory=list)  #: ended runs whose quick check found no change
    contents: dict[str, bytes] = field(default_factory=dict)  #: files known from runs' packs: path -> bytes


class _State:
    """What the mirror holds: each file's source signature, each run's quick-check signature and end."""

    def __init__(self):
        self.files: dict[str, list[int]] = {}  # relative path -> [size, mtime_ns] of the source file copied
        self.runs: dict[str, dict] = {}  # "<experiment>/<run>" -> {"ended", "signature", "gravtrain"}
        self.experiments: list[str] = []
        self.added: dict[str, str] = {}  # tags of the mirror that the source does not have: path -> value
        self.relocated_from: str | None = None  # where the store was written, if not where it is read

    def forget_prefix(self, prefix: str) -> None:
        for path in [p for p in self.files if p.startswith(prefix)]:
            del self.files[path]
        self.added = {path: value for path, value in self.added.items() if not path.startswith(prefix)}

    def to_dict(self) -> dict:
        return {"files": self.files, "runs": self.runs, "experiments": self.experiments,
                "added": self.added, "relocated_from": self.relocated_from}

    @classmethod
    def from_dict(cls, saved: dict) -> "_State":
        state = cls()
        state.files = {path: list(signature) for path, signature in saved["files"].items()}
        state.runs = dict(saved["runs"])
        state.experiments = list(saved["experiments"])
        state.added = dict(saved["added"])
        state.relocated_from = saved["relocated_from"]
        return state


class MirrorRefresher(threading.Thread):
    """Refreshes a `StoreMirror` in the background until `stop` (a daemon thread): ``interval`` seconds after
    the end of the last refresh, or `BUSY_FACTOR` times that refresh's duration if longer, so that refreshing a
    large store on a slow mount never takes more than a third of the time.

    A change is logged (info); a refresh that fails (the mount went away) is logged once as a warning, and
    the refresher keeps trying; the mirror keeps serving what it last had.
    """

    def __init__(self, mirror: StoreMirror, interval: float, *, clock: Callable[[], float] = time.monotonic):
        super().__init__(name="gravtrain-mirror", daemon=True)
        self.mirror = mirror
        self.interval = interval
        self.refreshes = 0
        self.last_report: RefreshReport | None = None
        self._stopped = threading.Event()
        self._failing = False
        self._clock = clock  #: seconds, for the duration of a refresh (a test gives its own)
        self.pause = interval  #: seconds until the next refresh

    def run(self) -> None:
        while not self._stopped.wait(self.pause):
            self.refresh_once()

    def refresh_once(self) -> None:
        """One refresh (every `DEEP_CHECK_EVERY`-th a deep one), and the pause before the next (class docstring)."""
        self.refreshes += 1
        started = self._clock()
        try:
            report = self.mirror.refresh(deep=self.refreshes % DEEP_CHECK_EVERY == 0)
        except (MirrorError, OSError) as exc:
            if not self._failing:
                logger.warning("cannot refresh the mirror: %s (the UI shows what was mirrored before; "
                               "retrying every %.0f s)", exc, self.interval)
            self._failing = True
            return
        finally:
            self.pause = max(self.interval, BUSY_FACTOR * (self._clock() - started))
        if self._failing:
            logger.info("the store %s can be read again", self.mirror.source)
        self._failing = False
        self.last_report = report
        if report.changed:
            logger.info("mirror refreshed: %s", report.describe())

    def stop(self, timeout: float | None = None) -> None:
        self._stopped.set()
        if self.is_alive():
            self.join(timeout)


def mirrored_store_uri(store: str, *, mirror_home=None, direct: bool = False) -> str:
    """The URI to read ``store`` from: for a directory store its mirror, refreshed now (unless ``direct``);
    any other store as it is.

    Raises:
        TrackingError: the store directory does not exist or cannot be listed.
    """
    uri = store_uri(store)
    directory = local_directory(uri)
    if directory is None:
        return uri
    if not directory.is_dir():
        raise TrackingError(f"{directory} does not exist; name the store you trained into.")
    if direct:
        return uri
    mirror = StoreMirror(directory, mirror_home)
    report = mirror.refresh()
    logger.debug("mirror of %s: %s", directory, report.describe())
    return store_uri(str(mirror.store))


# ---------------------------------------------------------------------------------------------- helpers
def runs_table_view(headline: list[str]) -> str:
    """The runs-table view of a gravtrain experiment, as MLflow's UI stores a shared view: the stage and the
    ``headline`` metrics as columns, newest run first."""
    columns = ["tags.`gravtrain.stage`", *(f"metrics.`{key}`" for key in headline), "attributes.`Source`"]
    return json.dumps({"selectedColumns": columns, "orderByKey": "attributes.start_time", "orderByAsc": False})


def _is_experiment(name: str) -> bool:
    """Whether a top-level folder of a store is an experiment (MLflow skips ``*.trash`` and ``models``)."""
    return name not in NOT_EXPERIMENTS and not name.endswith(".trash")


def _holds_artifacts(path: str) -> bool:
    """Whether the folder ``path`` (relative to the store) is a run's (or a logged model's, a trace's)
    artifacts, which are not mirrored."""
    parts = path.split("/")
    return parts[-1] == ARTIFACTS and (len(parts) == 3 or (len(parts) == 4 and parts[1] in _ITEMS_WITH_ARTIFACTS))


def _run_of(path: str) -> str | None:
    """``<experiment>/<run>`` of a file below a run's folder; None for an experiment's own file."""
    parts = path.split("/")
    if len(parts) < 3 or parts[1] in NOT_RUNS:
        return None
    return f"{parts[0]}/{parts[1]}"


def _run_signature(entries: list[_Entry] | None) -> list:
    """What a quick check compares: the size and modification time, as precise as the file system gives it, of
    the ``meta.yaml`` and the ``tags`` folder of a run's listing."""
    found = {entry.name: [entry.size, entry.mtime_ns] for entry in entries or () if entry.name in ("meta.yaml", "tags")}
    return [found.get("meta.yaml"), found.get("tags")]


def _has_ended(meta: Path) -> bool:
    """Whether the mirrored run's ``meta.yaml`` gives an ended status."""
    try:
        info = yaml.safe_load(meta.read_bytes())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(info, dict) and info.get("status") in ENDED_STATUS_CODES


def _remove_file(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
