"""Sharing the one cluster between jobs: short tasks, and a smaller job's tasks run first.

Every job's tasks reach the scheduler at once, but none holds a worker thread for long: a
task writes at most TASK_MAX_BYTES, so a thread frees up every fraction of a second. Each
job's tasks carry a Dask priority that falls with the job's size, and a worker (or the
scheduler's queue) starts the highest-priority task it holds whenever a thread frees: a
default job waits for one short task per thread, not for a large job to drain. Jobs of one
size class run in arrival order. A large job alone still has every thread, so it keeps the
store's bandwidth, and its progress moves with every task that ends.
"""

from __future__ import annotations

import math

# The most bytes one task writes: about 0.2-0.5 s of one worker's share of the store's
# bandwidth here, so a small job waits that long per thread; each task costs the scheduler
# and the app a round trip of a few milliseconds.
TASK_MAX_BYTES = 8 * 2**20


def split(batches: list[range], unit_bytes: int) -> list[range]:
    """The planned tasks cut so that none writes more than TASK_MAX_BYTES (always at least one whole unit each)."""
    per_task = max(1, TASK_MAX_BYTES // max(1, unit_bytes))
    return [
        range(start, min(start + per_task, batch.stop))
        for batch in batches
        for start in range(batch.start, batch.stop, per_task)
    ]


def priority(array_bytes: int) -> int:
    """The Dask priority of a job's tasks (higher runs first): one step lower for every doubling of the array's size."""
    return -math.ceil(math.log2(max(1, array_bytes)))
