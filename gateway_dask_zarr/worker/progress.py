"""Progress from inside a chunk task: chunks written so far, sent to the app as a Dask event.

A task sends at most one event every REPORT_S (a few bytes over the worker's batched stream
to the scheduler, which forwards it to the subscribed client): the cost is a dictionary a
quarter second, whatever the chunk count.
"""

from __future__ import annotations

import time

from distributed import Worker, get_worker

# The one topic every job's tasks report on: the scheduler keeps a bounded log per topic, so
# a topic per job would leave one log per job behind.
TOPIC = "gateway-dask-zarr-progress"
REPORT_S = 0.25


class TaskProgress:
    """Counts one task's chunks written and reports the running total now and then (never from outside a worker)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.done = 0
        self.sent_at = time.monotonic()
        self.worker: Worker | None = None
        self.key = ""
        try:
            self.worker = get_worker()
            self.key = str(self.worker.get_current_task())
            # A first report at once: the app learns the job's tasks run (its queued_s).
            self.worker.log_event(TOPIC, {"job": self.job_id, "key": self.key, "done": 0})
        except ValueError:  # called in-process (tests, bench): nobody to tell
            pass

    def add(self, chunks: int) -> None:
        """Count chunks written; report the total if REPORT_S has passed since the last report."""
        self.done += chunks
        now = time.monotonic()
        if self.worker is not None and now - self.sent_at >= REPORT_S:
            self.sent_at = now
            self.worker.log_event(TOPIC, {"job": self.job_id, "key": self.key, "done": self.done})
