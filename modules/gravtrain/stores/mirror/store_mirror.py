"""`StoreMirror`: bring a local copy of a directory store up to date with the source (`gravtrain.stores.mirror`)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from gravtrain.stores.doctor import META_WRITE_SECONDS, meta_problem
from gravtrain.stores.mirror.layout import (
    GRAVTRAIN_TAG_PREFIX, RUN_FOLDERS, Entry, has_ended, remove_file, run_of, run_signature,
)
from gravtrain.stores.mirror.relocation import relocated_meta
from gravtrain.stores.mirror.scan import MirrorError, SourceScanner
from gravtrain.stores.mirror.state import MirrorState
from gravtrain.stores.mirror.views import experiment_view_tags
from gravtrain.tracking.errors import TrackingError
from gravtrain.tracking.headline_metrics import LIST_METRICS, chart_section
from gravtrain.tracking.store import local_directory, store_uri

logger = logging.getLogger(__name__)

#: Files read from the source at once. sshfs pipelines requests over its one connection, so many in flight
#: hide the round trip; on a local disk they cost nothing.
MIRROR_WORKERS = 32


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


def gravtrain_cache() -> Path:
    """gravtrain's folder in the user's cache directory (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gravtrain"


def default_mirror_home(source: str | os.PathLike) -> Path:
    """Where the mirror of ``source`` lives by default: `gravtrain_cache`'s
    ``mirrors/<store folder name>-<hash of its absolute path>``."""
    source = Path(os.path.abspath(Path(source).expanduser()))
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    return gravtrain_cache() / "mirrors" / f"{source.name or 'store'}-{digest}"


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
        self._state = MirrorState()
        self._loaded_version: int | None = None  # st_mtime_ns of the state file as last read or written
        self._initialised = False
        self._scanner = SourceScanner(self.source)
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
            self._scanner = SourceScanner(self.source)  # counts this refresh's reads
            listing = self._scanner.list_source(pool, self._state, deep)
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
                             runs_updated=updated, runs_removed=removed, files_read=self._scanner.files_read,
                             directories_listed=self._scanner.listed, relocated_from=self._state.relocated_from)

    def prepare(self) -> None:
        """Read the mirror's state (rebuilding a mirror it does not describe) and create the mirrored store's
        folder, so that a server can be started on it before the first refresh."""
        with self._writing_the_mirror(), self._exclusive():
            self._load_state()
            self.store.mkdir(exist_ok=True)

    # ------------------------------------------------------------------------------------------ copying
    def _sync_experiments(self, pool, experiments: list[str], files: dict[str, Entry]) -> None:
        """Copy the experiments' changed files in place, drop their removed ones and removed experiments."""
        for experiment in experiments:
            (self.store / experiment).mkdir(parents=True, exist_ok=True)
        changed = [path for path, entry in files.items() if self._state.files.get(path) != entry.signature]
        self._copy_pairs(pool, [(path, self.store) for path in changed], files)
        kept = set(experiments)
        for path in [p for p in self._state.files if run_of(p) is None]:
            experiment = path.split("/", 1)[0]
            if path not in files and path not in self._state.added:
                if experiment in kept:
                    remove_file(self.store / path)
                del self._state.files[path]
                self._dirty = True
        for experiment in [e for e in self._state.experiments if e not in kept]:
            shutil.rmtree(self.store / experiment, ignore_errors=True)
            self._state.forget_prefix(f"{experiment}/")
            logger.info("experiment %s is gone from %s; removed from the mirror", experiment, self.source)
        if self._state.experiments != sorted(kept):
            self._state.experiments = sorted(kept)
            self._dirty = True

    def _sync_runs(self, pool, run_files: dict[str, dict[str, Entry]],
                   listings: dict[str, list[Entry] | None]) -> tuple[int, int]:
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
            for path in [p for p in self._state.files if run_of(p) == run and p not in run_files[run]]:
                remove_file(self.store / path)
                del self._state.files[path]
                updated_runs.add(run)
                self._dirty = True
        for run in run_files:
            if run in new and not (self.store / run).exists():
                continue
            files = run_files[run]
            metrics = [path[len(run) + len("/metrics/"):] for path in files if path.startswith(f"{run}/metrics/")]
            info = {
                "ended": has_ended(self.store / run / "meta.yaml"),
                "signature": run_signature(listings[run]),
                "gravtrain": any(path.startswith(f"{run}/tags/{GRAVTRAIN_TAG_PREFIX}") for path in files),
                "headline": sorted(key for key in metrics if key in LIST_METRICS),
                "sections": sorted({chart_section(key) for key in metrics}),
            }
            if self._state.runs.get(run) != info:
                self._state.runs[run] = info
                self._dirty = True
        shutil.rmtree(self._staging, ignore_errors=True)
        return sum(1 for run in new if run in self._state.runs), len(updated_runs - set(new))

    def _copy_pairs(self, pool, pairs: list[tuple[str, Path]], entries: dict[str, Entry]) -> set[str]:
        """Copy each source file ``path`` to ``root/path``; record what was copied; returns the paths that
        could not be read."""
        failed = set()
        copies = pool.map(lambda pair: self._copy(pair[0], pair[1], entries[pair[0]].mtime_ns), pairs)
        for (path, _), ok in zip(pairs, copies):
            if ok:
                self._state.files[path] = entries[path].signature
                self._dirty = True
                self._state.added.pop(path, None)  # the source's own file replaced the mirror's
                if path not in self._contents:
                    self._scanner.count_read()
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
        if self._being_written(path, data, mtime_ns):
            return False
        if Path(path).name == "meta.yaml":
            data, written_at = relocated_meta(path, data, self.source)
            if written_at is not None and self._state.relocated_from != str(written_at):
                self._state.relocated_from = str(written_at)
                self._dirty = True
        self._write(root / path, data, mtime_ns)
        return True

    @staticmethod
    def _being_written(path: str, data: bytes, mtime_ns: int) -> bool:
        """Whether ``path`` is a file MLflow is writing now: a run's or an experiment's ``meta.yaml`` that is not
        readable, or a metric whose last line is not whole (an empty one included), changed within
        `META_WRITE_SECONDS`. MLflow rewrites a ``meta.yaml`` in place and appends a metric's lines, and one such
        file read half-written makes its whole experiment's search fail (`gravtrain.stores.doctor`). It is not
        mirrored: a new run waits for the next refresh, a known one keeps its last whole copy. An older damaged
        file is mirrored as it is, for the doctor's warning to name."""
        parts = path.split("/")
        run = run_of(path)
        if parts[-1] == "meta.yaml" and (len(parts) == 2 or (len(parts) == 3 and run)):
            problem = meta_problem(data, of_run=len(parts) == 3)
        elif run and parts[2] == "metrics" and not data.endswith(b"\n"):
            problem = "its last line is not whole"
        else:
            return False
        if problem is None or time.time_ns() - mtime_ns >= META_WRITE_SECONDS * 1e9:
            return False
        logger.debug("not mirrored yet: %s is being written (%s)", path, problem)
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
        for experiment, tags in experiment_view_tags(self._state.runs, experiments).items():
            for key, value in tags.items():
                self._set_mirror_tag(experiment, key, value)

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
            remove_file(self.store / tag)
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
            saved = MirrorState.from_bytes(self._state_path.read_bytes(), str(self.source))
        except OSError:
            saved = None
        if saved is not None:
            self._state = saved
            return
        if self.store.exists():
            logger.info("rebuilding the mirror %s", self.store)
            shutil.rmtree(self.store)
        self._state = MirrorState()
        self._dirty = True

    def _save_state(self) -> None:
        self._write(self._state_path, self._state.to_bytes(str(self.source)))
        self._loaded_version = self._state_path.stat().st_mtime_ns
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
