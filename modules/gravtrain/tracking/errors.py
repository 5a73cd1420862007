"""`TrackingError`: what the tracking room raises when a run cannot be opened or a record cannot be kept."""


class TrackingError(ValueError):
    """A tracking problem a user can fix: an unknown resume run ID, a changed param, a store that refuses.

    The message is a full sentence that says what went wrong and what to do about it.
    """
