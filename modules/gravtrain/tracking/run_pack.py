"""A run's metadata in one file, so that a store on a slow mount is read in two files per run instead of hundreds.

MLflow's file store keeps one file per param, tag and metric: about 190 for a gravtrain run. Over sshfs every
file costs several round trips, and sshfs serves at most ten requests at once. When a run of a directory store
ends, gravtrain writes `PACK_FILE` into the run's directory (beside ``meta.yaml``): a JSON object with the text
of every file of the run's directory that MLflow reads (``meta.yaml``, ``params/``, ``metrics/``, ``tags/``,
``inputs/``, ``outputs/``; not the artifacts), and each file's size and modification time (whole seconds, as
sshfs reports them). It is written under a temporary name and renamed, so a reader sees a whole pack or none.

`gravtrain.stores.mirror` reads a pack instead of the files when it is current: its ``meta.yaml`` is the
run's (a resumed or deleted run rewrites that file) and the run's ``tags`` folder holds the files it lists, of
the sizes it lists (a tag set later adds a file or changes a size). MLflow ignores the file; `gravtrain runs
doctor --fix` moves it aside with a run it repairs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

PACK_FILE = "gravtrain-run-pack.json"
PACK_FORMAT = 1
#: Folders of a run directory whose files are not packed.
_NOT_PACKED = ("artifacts",)


def file_signature(size: int, mtime: float) -> list[int]:
    """How a file is recognised unchanged: its size and its modification time in whole seconds (the precision
    of sshfs, whose SFTP protocol carries seconds)."""
    return [int(size), int(mtime)]


def write_run_pack(run_dir: str | os.PathLike) -> Path | None:
    """Write the pack of the run directory ``run_dir`` (module docstring); returns its path, or None (with a
    warning) when it cannot be written: a pack only speeds reading up, so its failure never fails a run."""
    run_dir = Path(run_dir)
    files = {}
    try:
        for path in sorted(run_dir.rglob("*")):
            relative = path.relative_to(run_dir)
            if relative.parts[0] in _NOT_PACKED or relative.name == PACK_FILE or not path.is_file():
                continue
            status = path.stat()
            files[relative.as_posix()] = {"text": path.read_bytes().decode("utf-8"),
                                          "signature": file_signature(status.st_size, status.st_mtime)}
        target = run_dir / PACK_FILE
        partial = run_dir / f".{PACK_FILE}.partial"
        partial.write_text(json.dumps({"format": PACK_FORMAT, "files": files}, separators=(",", ":")),
                           encoding="utf-8")
        os.replace(partial, target)
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("could not write the summary file %s of run %s (%s); the run is complete, only reading "
                       "it over a slow mount is slower", PACK_FILE, run_dir.name, exc)
        return None
    return target


def read_run_pack(data: bytes) -> dict[str, tuple[bytes, list[int]]] | None:
    """The files of a pack (path relative to the run directory -> bytes and signature), or None if ``data`` is
    not a pack of this format."""
    try:
        pack = json.loads(data)
        if pack.get("format") != PACK_FORMAT:
            return None
        return {path: (entry["text"].encode("utf-8"), [int(value) for value in entry["signature"]])
                for path, entry in pack["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
