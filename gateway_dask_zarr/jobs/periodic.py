"""A background duty of a replica (resume, retention, sweeping): `run_once` in a daemon thread, every interval."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar, Self

log = logging.getLogger(__name__)


class Periodic:
    """Calls `run_once` every `interval_s` in a daemon thread from start() until close(); a failed run is logged."""

    name: ClassVar[str]
    failure: ClassVar[str]  # what a failed run did not do, for its log line

    def __init__(self, interval_s: float, *, first_s: float | None = None) -> None:
        self.interval_s = interval_s
        self._first_s = interval_s if first_s is None else first_s
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Run in a daemon thread until close()."""
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        delay = self._first_s
        while not self._closed.wait(delay):
            delay = self.interval_s
            try:
                self.run_once()
            except Exception as exc:
                # Only the type: a store's message may carry a URL with a signature in it.
                log.warning("%s: %s: %s", self.name, self.failure, type(exc).__name__)

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed.is_set()

    def run_once(self) -> Any:
        """One run of the duty."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop after the run in progress, if any."""
        self._closed.set()
