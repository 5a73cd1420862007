"""What the tracking room raises: `TrackingError` when a run cannot be opened or a record cannot be kept, and its
`StoreWriteError` when the store itself failed a write (a full or failing disk)."""

from __future__ import annotations

import errno


class TrackingError(ValueError):
    """A tracking problem a user can fix: an unknown resume run ID, a changed param, a store that refuses.

    The message is a full sentence that says what went wrong and what to do about it.
    """


class StoreWriteError(TrackingError):
    """The MLflow store failed a write (full disk, lost mount): an environment failure, not a mistake."""


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it wraps (MLflow, h5py wrap the OSError), says the disk or quota is full."""
    chain, seen = error, set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, OSError) and chain.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = getattr(chain, "message", None) or str(chain)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        chain = chain.__cause__ or chain.__context__
    return False


def describe_store_failure(error: BaseException) -> str:
    """A short reason for a failed store write: "the store's disk is full (...)" when it is, else the error."""
    text = getattr(error, "message", None) or str(error)
    return f"the store's disk is full ({text})" if is_disk_full(error) else f"{type(error).__name__}: {text}"
