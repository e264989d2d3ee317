"""A job's progress from its tasks' reports: chunks written, never above the total, never going back."""

from __future__ import annotations

import threading
from typing import Any

from gateway_dask_zarr.jobs.job import Job
from gateway_dask_zarr.worker.progress import TOPIC


class JobProgress:
    """Per task the most chunks it reported (or all of them once it finished); job.done is their sum, only ever raised.

    A task rerun on another worker (its worker was lost) reports from 0 again: its earlier,
    higher count stands, so the sum neither goes back nor passes the total.
    """

    def __init__(self, job: Job, keys: list[str], sizes: list[int]) -> None:
        self.job = job
        self.sizes = dict(zip(keys, sizes, strict=True))
        self.counts = dict.fromkeys(keys, 0)
        self._lock = threading.Lock()

    def report(self, key: str, done: int) -> None:
        """A task's running count of chunks written (a report of another attempt's key is ignored)."""
        size = self.sizes.get(key)
        if size is None:
            return
        with self._lock:
            self.job.started_running()  # the first report ends its time in the queue
            self.counts[key] = max(self.counts[key], min(done, size))
            self.job.done = max(self.job.done, sum(self.counts.values()))

    def finished(self, key: str, future: Any) -> None:
        """A done callback: a task that finished wrote all its chunks."""
        if future.status == "finished":
            self.report(key, self.sizes[key])


class Progress:
    """The progress of the jobs running here, raised by their tasks' events and ends."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobProgress] = {}

    def watch(self, client: Any, job: Job, keys: list[str], sizes: list[int]) -> JobProgress:
        """Follow a job's tasks (their keys, `sizes` chunks each) until end(job.id); finished() as each ends."""
        tally = self.jobs[job.id] = JobProgress(job, keys, sizes)
        # The same handler each time (a client keeps one per topic): a new cluster client gets it too.
        client.subscribe_topic(TOPIC, self.on_event)
        return tally

    def on_event(self, event: tuple[float, Any]) -> None:
        """The Dask event handler: pass a task's report to its job's progress, if the job runs here."""
        _, message = event
        if isinstance(message, dict) and (tally := self.jobs.get(str(message.get("job")))) is not None:
            tally.report(str(message.get("key")), int(message.get("done", 0)))

    def end(self, job_id: str) -> None:
        """Stop following a job."""
        self.jobs.pop(job_id, None)
