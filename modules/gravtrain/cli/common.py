"""What every command shares: the exit codes, the ``gravtrain`` logger and its plain format, and the line between
a user's mistake and the environment's failure."""

from __future__ import annotations

import errno
import logging
import sys

log = logging.getLogger("gravtrain")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _UserFacingFormatter(logging.Formatter):
    """Plain messages for INFO, ``error: ...``/``warning: ...`` otherwise."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def configure_logging(verbose: bool) -> None:
    """The ``gravtrain`` logger to stderr, plain for INFO (DEBUG with ``verbose``), not passed to the root."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UserFacingFormatter())
    root = logging.getLogger("gravtrain")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def environment_failure(error: OSError) -> bool:
    """A full or failing disk (exit 1), as opposed to a path the user got wrong (exit 2)."""
    from gravtrain.tracking.errors import is_disk_full

    return is_disk_full(error) or error.errno in (errno.EIO, errno.EROFS)


