"""Progress from inside a chunk task: chunks written so far, sent to the app as a Dask event.

A task sends at most one event every REPORT_S (a few bytes over the worker's batched stream
to the scheduler, which forwards it to the subscribed client): the cost is a dictionary a
quarter second, whatever the chunk count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from distributed import Worker, get_worker

# The one topic every job's tasks report on: the scheduler keeps a bounded log per topic, so
# a topic per job would leave one log per job behind.
TOPIC = "gateway-dask-zarr-progress"
REPORT_S = 0.25


@dataclass
class TaskProgress:
    """Counts one task's chunks written and reports the running total now and then (never from outside a worker)."""

    job_id: str
    done: int = 0
    sent_at: float = field(default_factory=time.monotonic)
    worker: Worker | None = field(default=None, init=False)  # None in-process (tests, bench): nobody to tell
    key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        """Find the worker and task this runs in, and report at once."""
        try:
            self.worker = get_worker()
        except ValueError:
            return
        self.key = str(self.worker.get_current_task())
        # A first report at once: the app learns the job's tasks run (its queued_s).
        self.worker.log_event(TOPIC, {"job": self.job_id, "key": self.key, "done": 0})

    def add(self, chunks: int) -> None:
        """Count chunks written; report the total if REPORT_S has passed since the last report."""
        self.done += chunks
        now = time.monotonic()
        if self.worker is not None and now - self.sent_at >= REPORT_S:
            self.sent_at = now
            self.worker.log_event(TOPIC, {"job": self.job_id, "key": self.key, "done": self.done})
