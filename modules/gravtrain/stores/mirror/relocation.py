"""Artifact locations of a store read at another path than the one it was written at.

A file store records absolute ``file://`` artifact locations (``artifact_uri`` of a run, ``artifact_location``
of an experiment). When the store is read elsewhere (a cluster's ``mlruns`` mounted on a laptop), the mirror's
copy of a ``meta.yaml`` points at the path the store is read at, so that every artifact is served from where it
really is. A location elsewhere (a custom artifact root) is kept.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import yaml

from gravtrain.stores.mirror.layout import ARTIFACTS


def relocated_meta(path: str, data: bytes, source: Path) -> tuple[bytes, Path | None]:
    """The ``meta.yaml`` at ``path`` (relative to the store) as the mirror writes it, and where the store was
    written when that is not ``source`` (None otherwise, and for a damaged file or a custom location)."""
    try:
        meta = yaml.safe_load(data)
    except yaml.YAMLError:
        return data, None  # damaged: mirrored as is, for the doctor to report
    if not isinstance(meta, dict):
        return data, None
    folder = Path(path).parent.as_posix()  # "<experiment>" or "<experiment>/<run>"
    key, suffix = ("artifact_uri", f"{folder}/{ARTIFACTS}") if "/" in folder else ("artifact_location", folder)
    recorded = meta.get(key)
    if not isinstance(recorded, str) or urlparse(recorded).scheme != "file":
        return data, None
    recorded_path = url2pathname(urlparse(recorded).path)
    parts, suffix_parts = Path(recorded_path).parts, tuple(suffix.split("/"))
    if parts[-len(suffix_parts):] != suffix_parts:
        return data, None  # a custom artifact location: kept
    written_at = Path(*parts[:-len(suffix_parts)])
    if written_at == source:
        return data, None
    meta[key] = (source / suffix).as_uri()
    return yaml.safe_dump(meta, default_flow_style=False, sort_keys=False).encode(), written_at
