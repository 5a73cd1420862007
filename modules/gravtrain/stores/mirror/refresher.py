"""Keeping a mirror current while ``gravtrain ui`` serves it: a background thread of refreshes."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from gravtrain.stores.mirror.scan import MirrorError
from gravtrain.stores.mirror.store_mirror import RefreshReport, StoreMirror

logger = logging.getLogger(__name__)

#: A `MirrorRefresher` looks into every run, ended ones included, on every this-many-th refresh.
DEEP_CHECK_EVERY = 30
#: A `MirrorRefresher` waits at least this many times the duration of its last refresh before the next.
BUSY_FACTOR = 2.0


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
