"""The mirror's record of what it holds (``<mirror home>/state.json``): each file's source signature, each run's
quick-check signature and end, the tags it added, and where the store was written."""

from __future__ import annotations

import json

#: The mirror's format; a mirror with another is rebuilt.
MIRROR_FORMAT = 1


class MirrorState:
    """What the mirror holds: each file's source signature, each run's quick-check signature and end."""

    def __init__(self):
        self.files: dict[str, list[int]] = {}  # relative path -> [size, mtime_ns] of the source file copied
        self.runs: dict[str, dict] = {}  # "<experiment>/<run>" -> {"ended", "signature", "gravtrain", "headline",
        #                                  "sections"}
        self.experiments: list[str] = []
        self.added: dict[str, str] = {}  # tags of the mirror that the source does not have: path -> value
        self.relocated_from: str | None = None  # where the store was written, if not where it is read

    def forget_prefix(self, prefix: str) -> None:
        for path in [p for p in self.files if p.startswith(prefix)]:
            del self.files[path]
        self.added = {path: value for path, value in self.added.items() if not path.startswith(prefix)}

    def to_bytes(self, source: str) -> bytes:
        """The state file's contents, for the mirror of ``source``."""
        return json.dumps({"files": self.files, "runs": self.runs, "experiments": self.experiments,
                           "added": self.added, "relocated_from": self.relocated_from,
                           "format": MIRROR_FORMAT, "source": source}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> "MirrorState | None":
        """The state a state file holds, or None when it is unreadable, of another format or of another source."""
        try:
            saved = json.loads(data)
            if saved.get("format") != MIRROR_FORMAT or saved.get("source") != source:
                return None
            state = cls()
            state.files = {path: list(signature) for path, signature in saved["files"].items()}
            state.runs = dict(saved["runs"])
            state.experiments = list(saved["experiments"])
            state.added = dict(saved["added"])
            state.relocated_from = saved["relocated_from"]
            return state
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
