"""Sharing the one cluster between jobs: short tasks, a bounded number in flight, owners served in turn.

A job's tasks do not all reach the scheduler at once. The Feeder keeps one task per worker
thread in flight over all the running jobs (SLOTS_PER_THREAD; the thread count is read again
every RESIZE_S, so a lost or added worker changes the budget), and each time a task ends it
gives the free slot to the owner with the fewest tasks in flight (equals in turn; then that
owner's jobs in turn). While several owners have jobs, none holds more than an equal share
of the slots. A task writes at most TASK_MAX_BYTES, so a slot frees every fraction of a
second.

Short jobs first: a job with no more tasks than there are slots (the default job: one task a
worker) is short. While a short job runs, longer jobs get no new slot: the tasks they have
in flight end (each within a fraction of a second), and the short job then has the workers
and the store to itself. Its own store requests (claim, publish, final record) would
otherwise queue behind the longer jobs' PUTs: beside the 1.6 GB job, a default job took 5x
its idle time with equal shares, 2.25x this way, and 1.07x with the anticipation below
(docs/performance.md). A longer job resumes ANTICIPATE_S after the last short job ends (the
next of a notebook's loop of small jobs, or another user's, finds the workers free rather
than held by a longer job's tasks just started: the anticipatory scheduling of disk
schedulers), and while short jobs keep coming it still gets a slot every LONG_EVERY_S, so
its progress never stops. A job alone holds every slot, so it keeps the store's bandwidth. A
job's tasks also carry a Dask priority that falls with its size (a worker holding tasks of
two jobs starts the smaller job's first).

With adaptive scaling (WORKERS_MAX > WORKERS_MIN) the feeder holds nothing back: Dask's
adaptive target follows the scheduler's backlog, which a bounded feed would hide (the cluster
would never grow), so every task is submitted at once and the priority alone shares the workers.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

log = logging.getLogger(__name__)

# The most bytes one task writes: about 0.2-0.5 s of one worker's share of the store's
# bandwidth here, so a small job waits that long for a slot; each task costs the scheduler
# and the app a round trip of a few milliseconds.
TASK_MAX_BYTES = 8 * 2**20
# Tasks in flight over all jobs, per worker thread.
SLOTS_PER_THREAD = 1
# While short jobs run, a longer job still gets a slot this often (it is never held back for good).
LONG_EVERY_S = 1.0
# After the last short job ends, longer jobs wait this long for the next one: more than the
# few tens of milliseconds between a client's job and its next here, less than a task's time.
ANTICIPATE_S = 0.2
# How often the budget follows the cluster's thread count, and how long asking may take.
RESIZE_S = 1.0
RESIZE_TIMEOUT_S = 2.0
# How often a job's runner, waiting for its tasks, looks whether it was cancelled or lost its cluster.
POLL_S = 0.5


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


def allowed_now(feeds: set[Feed], slots: float, short_left: float, long_fed: float) -> set[Feed]:
    """The jobs that may take a free slot now (short jobs first; see the module's docstring).

    `short_left`: when a short job last stopped; `long_fed`: when a longer job last got a slot.
    """
    now = time.monotonic()
    short = {feed for feed in feeds if feed.n <= slots}
    if not short and now - short_left >= ANTICIPATE_S:
        return feeds
    longer = {feed for feed in feeds - short if feed.pending}
    if longer and now - long_fed >= LONG_EVERY_S:
        return longer
    return short


class Feed:
    """One job's tasks, submitted by the Feeder a few at a time: their futures in order, and each as it ends."""

    def __init__(self, owner: str, n: int, submit: Callable[[int], Any], on_end: Callable[[int, Any], None]) -> None:
        self.owner = owner
        self.n = n
        self.submit = submit  # submits task i, returns its future
        self.on_end = on_end
        self.futures: list[Any] = []
        self.in_flight = 0
        self.stopped = False
        self._ended: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @property
    def pending(self) -> bool:
        """True while some of its tasks wait for a slot."""
        return not self.stopped and len(self.futures) < self.n

    def put(self, item: Any) -> None:
        """A task's future that ended, or the exception that stopped the feed, for its runner."""
        self._ended.put(item)

    def ends(self, deadline: float) -> Iterator[Any]:
        """Each task's future as it ends, and None every POLL_S meanwhile; TimeoutError at the deadline (monotonic)."""
        for _ in range(self.n):
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the job's tasks did not end in time")
                try:
                    item = self._ended.get(timeout=min(POLL_S, left))
                except queue.Empty:
                    yield None
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
                break


class Feeder:
    """The running jobs' tasks, fed to the cluster SLOTS_PER_THREAD per worker thread, owners in turn."""

    def __init__(self, bounded: bool = True) -> None:
        # Unbounded for an adaptive cluster (see above).
        self.slots_per_thread = SLOTS_PER_THREAD if bounded else math.inf
        self._lock = threading.Lock()
        # Owners with tasks waiting, in the order they are served next; each owner's jobs likewise.
        self._owners: dict[str, deque[Feed]] = {}
        self._in_flight = 0
        self._held: Counter[str] = Counter()  # tasks in flight per owner
        self._active: Counter[str] = Counter()  # jobs added and not stopped, per owner
        self._feeds: set[Feed] = set()  # jobs added and not stopped
        self._long_fed = -math.inf  # when a longer job last got a slot
        self._short_left = -math.inf  # when a short job last stopped
        self.threads = 1
        self._sized = -math.inf

    def add(self, feed: Feed) -> None:
        """Feed a job's tasks from now on."""
        with self._lock:
            self._active[feed.owner] += 1
            self._feeds.add(feed)
            # First in the turns: those waiting already have had one.
            feeds = self._owners.pop(feed.owner, deque())
            feeds.appendleft(feed)
            self._owners = {feed.owner: feeds, **self._owners}
            self._fill()

    def stop(self, feed: Feed) -> None:
        """Submit no more of a job's tasks; its slots are free at once (its runner cancels what is in flight)."""
        with self._lock:
            if not feed.stopped:
                self._stop(feed)
                self._fill()

    def _stop(self, feed: Feed) -> None:
        """Under the lock: stop() without the refill."""
        self._release(feed)
        feeds = self._owners.get(feed.owner)
        if feeds is not None and feed in feeds:
            feeds.remove(feed)
            if not feeds:
                del self._owners[feed.owner]

    def _release(self, feed: Feed) -> None:
        """Under the lock: the feed gets no more slots, and gives back those it holds."""
        if feed.n <= self.threads * self.slots_per_thread and any(f.pending for f in self._feeds - {feed}):
            self._short_left = time.monotonic()
            # Nothing else may free a slot when the anticipation ends: a timer fills then.
            timer = threading.Timer(ANTICIPATE_S, self.refill)
            timer.daemon = True  # a stopping process does not wait for it
            timer.start()
        feed.stopped = True
        self._feeds.discard(feed)
        self._count(feed, -feed.in_flight)
        self._active[feed.owner] -= 1
        if self._active[feed.owner] <= 0:
            del self._active[feed.owner]

    def _count(self, feed: Feed, tasks: int) -> None:
        """Under the lock: `tasks` more in flight for the feed, its owner and in all (an owner at 0 is forgotten)."""
        feed.in_flight += tasks
        self._in_flight += tasks
        self._held[feed.owner] += tasks
        if self._held[feed.owner] <= 0:
            del self._held[feed.owner]

    def resize(self, client: Any) -> None:
        """Follow the cluster's worker threads (adapt adds and removes workers), at most every RESIZE_S."""
        now = time.monotonic()
        with self._lock:
            if now - self._sized < RESIZE_S:
                return
            self._sized = now
        try:
            threads = sum(client.nthreads(callback_timeout=RESIZE_TIMEOUT_S).values())
        except Exception as exc:  # a lost scheduler: the jobs' runners notice; keep the last count
            log.debug("the cluster's thread count could not be read: %s", type(exc).__name__)
            return
        with self._lock:
            self.threads = max(1, threads)
            self._fill()

    def refill(self) -> None:
        """Give free slots to waiting tasks now (an anticipation ended)."""
        with self._lock:
            self._fill()

    def _fill(self) -> None:
        """Submit waiting tasks while slots are free: each to the owner with the fewest in flight, then its next job.

        Only the jobs _allowed() names take slots. While several owners have such jobs, none
        holds more than an equal share of the slots, even when another leaves its share unused
        for a moment (its job is between tasks, or claiming and publishing): those moments are
        when a small job meets a large one.
        """
        slots = self.threads * self.slots_per_thread
        while self._in_flight < slots:
            allowed = allowed_now(self._feeds, slots, self._short_left, self._long_fed)
            share = slots / max(1, len({feed.owner for feed in allowed}))  # held < share: at most ceil(share) each
            # min() takes the first of equals, and an owner served goes to the end: equals take turns.
            owners = [
                owner
                for owner, feeds in self._owners.items()
                if self._held[owner] < share and any(feed in allowed for feed in feeds)
            ]
            if not owners:
                return
            owner = min(owners, key=self._held.__getitem__)
            feeds = self._owners.pop(owner)
            feed = next(feed for feed in feeds if feed in allowed)
            feeds.remove(feed)
            if feed.n > slots:
                self._long_fed = time.monotonic()
            self._send(feed)
            if feed.pending:
                feeds.append(feed)
            if feeds:
                self._owners[owner] = feeds

    def _send(self, feed: Feed) -> None:
        index = len(feed.futures)
        try:
            future = feed.submit(index)
        except Exception as exc:  # a closed client: the job fails with it
            self._release(feed)
            feed.put(exc)
            return
        feed.futures.append(future)
        self._count(feed, 1)
        future.add_done_callback(partial(self._ended, feed, index))

    def _ended(self, feed: Feed, index: int, future: Any) -> None:
        """A done callback (Dask's callback thread): free the slot, feed the next task, tell the job's runner."""
        feed.on_end(index, future)
        with self._lock:
            if feed.stopped:
                pass
            elif future.status == "finished":
                self._count(feed, -1)
            else:
                # Cancelled (a DELETE, a hand-back, a lost cluster) or failed: its runner ends the job.
                self._stop(feed)
            self._fill()
        feed.put(future)
