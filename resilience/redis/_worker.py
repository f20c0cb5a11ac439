"""The store's sync worker: one daemon thread per store that runs periodic jobs.

The shared policies need a few things done in the background — a bulkhead
renews the leases of its holders, a breaker exchanges its counts — and a
store may have only one background thread for all of them. ``worker_for(store)``
gives the store's worker (made on first use); ``.every(interval, job)``
runs ``job()`` every ``interval`` seconds on its thread, which starts with
the first job and ends when no job is left (or the store closes:
``stop_worker(store)``). Jobs that are bound methods are held weakly: a
policy that is garbage collected stops being served without saying so.
A forked child has no worker until a policy there asks for one.

``job.wake_on(channel)`` also runs a job as soon as a message is published
on that Redis channel: between jobs the worker then waits on the store's
pub/sub subscription (in slices of ``LISTEN_SLICE``, so a job registered
meanwhile is never long late) instead of sleeping. A breaker learns of a
fleet's change within a round trip this way, not within its interval.
While the subscription cannot be made or read (an outage), the worker
sleeps as before and tries again every ``RESUBSCRIBE`` seconds.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any

from .._core import _fork
from .._core._validate import positive
from .._policy import logger

__all__ = ["Job", "Worker", "stop_worker", "worker_for"]

LISTEN_SLICE = 0.1  # seconds: the longest wait on the subscription
RESUBSCRIBE = 1.0  # seconds between attempts to subscribe during an outage


class Job:
    """One periodic job of a worker; ``cancel()`` removes it."""

    __slots__ = ("_call", "_worker", "due", "interval")

    def __init__(
        self, worker: Worker, interval: float, call: Callable[[], Callable[[], Any] | None]
    ) -> None:
        self._worker = worker
        self.interval = interval
        self._call = call  # gives the job's function, or None once its owner is gone
        self.due = monotonic() + interval

    def function(self) -> Callable[[], Any] | None:
        return self._call()

    def cancel(self) -> None:
        """Run this job no more (it may be running now: that run finishes)."""
        self._worker._remove(self)

    def wake_on(self, channel: str) -> None:
        """Run this job also whenever a message is published on ``channel``."""
        self._worker._listen(channel, self)

    @property
    def active(self) -> bool:
        """Whether the job is still registered (not cancelled, its worker not stopped)."""
        return self._worker._has(self)


class Worker:
    """A daemon thread running periodic jobs, started by the first job."""

    __slots__ = (
        "__weakref__",
        "_channels",
        "_jobs",
        "_name",
        "_pubsub",
        "_resubscribe_at",
        "_stopped",
        "_subscribed",
        "_subscriber",
        "_thread",
        "_wake",
    )

    def __init__(self, name: str, subscriber: Callable[[], Any] | None = None) -> None:
        self._name = name
        self._wake = threading.Condition(_fork.lock())
        self._jobs: list[Job] = []
        self._thread: threading.Thread | None = None
        self._stopped = False
        # Pub/sub: what makes a subscription (the store's sync client's
        # ``pubsub``), the channels jobs wake on, and the worker thread's own
        # subscription (read and changed on that thread only).
        self._subscriber = subscriber
        self._channels: dict[str, list[Job]] = {}
        self._pubsub: Any = None
        self._subscribed: frozenset[str] = frozenset()
        self._resubscribe_at = 0.0

    def every(self, interval: float, job: Callable[[], Any]) -> Job:
        """Run ``job()`` every ``interval`` seconds from now on, on this worker's thread.

        A bound method is held weakly (its object may go away; the job ends
        with it). An exception a job raises is logged; the job keeps its turn.
        """
        seconds = positive("interval", interval)
        if not callable(job):
            raise TypeError(f"job must be callable, got {job!r}")
        call: Callable[[], Callable[[], Any] | None]
        if hasattr(job, "__self__") and hasattr(job, "__func__"):
            call = weakref.WeakMethod(job)
        else:

            def call() -> Callable[[], Any]:  # held strongly: the job is the caller's
                return job

        entry = Job(self, seconds, call)
        with self._wake:
            if self._stopped:
                raise RuntimeError(f"the worker of {self._name!r} is stopped: its store was closed")
            self._jobs.append(entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"resilience-redis-{self._name}", daemon=True
                )
                self._thread.start()
            self._wake.notify()  # the new job may be due before the thread's next wake
        return entry

    def _has(self, job: Job) -> bool:
        with self._wake:
            return job in self._jobs

    def _remove(self, job: Job) -> None:
        with self._wake:
            if job in self._jobs:
                self._jobs.remove(job)
                self._wake.notify()
            for channel, waking in list(self._channels.items()):
                if job in waking:
                    waking.remove(job)
                    if not waking:
                        del self._channels[channel]

    def _listen(self, channel: str, job: Job) -> None:
        if not isinstance(channel, str) or not channel:
            raise TypeError(f"channel must be a non-empty str, got {channel!r}")
        with self._wake:
            waking = self._channels.setdefault(channel, [])
            if job not in waking:
                waking.append(job)
            self._wake.notify()

    @property
    def running(self) -> bool:
        """Whether the thread is alive now."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def jobs(self) -> int:
        """Jobs registered (those of collected owners count until their next turn)."""
        with self._wake:
            return len(self._jobs)

    def stop(self) -> None:
        """End the thread (after the job it may be running) and refuse new jobs."""
        with self._wake:
            self._stopped = True
            self._jobs.clear()
            thread = self._thread
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            function = job.function()
            if function is None:  # its owner was collected
                self._remove(job)
                continue
            try:
                function()
            except Exception:
                logger.exception("resilience: the Redis worker's job %r failed", function)
            del function  # no strong reference to the owner while asleep

    def _next(self) -> Job | None:
        """The next job, once it is due; None when the thread must end."""
        with self._wake:
            while True:
                if self._stopped or not self._jobs:
                    self._thread = None  # a later job starts a new thread
                    self._close_subscription()  # under the lock: before a new thread's
                    return None
                job = min(self._jobs, key=_due)
                now = monotonic()
                if job.due <= now:
                    # The next turn one interval on, or from now if it fell behind:
                    # a late job runs once, not once per missed turn.
                    job.due = max(job.due + job.interval, now)
                    return job
                left = job.due - now
                if self._channels and self._subscriber is not None:
                    channels = frozenset(self._channels)
                    self._wake.release()  # the subscription is read without the lock
                    try:
                        heard = self._hear(channels, min(left, LISTEN_SLICE))
                    finally:
                        self._wake.acquire()
                    now = monotonic()
                    for channel in heard:
                        for waking in self._channels.get(channel, ()):
                            waking.due = now  # a message: the job runs at once
                    continue
                self._wake.wait(left if left < threading.TIMEOUT_MAX else None)

    def _hear(self, channels: frozenset[str], timeout: float) -> list[str]:
        """On the worker thread: wait up to ``timeout`` for a message on
        ``channels``; the channels heard. Sleeps instead during an outage."""
        pubsub = self._pubsub
        try:
            if pubsub is None:
                if monotonic() < self._resubscribe_at:
                    time.sleep(timeout)
                    return []
                assert self._subscriber is not None
                pubsub = self._pubsub = self._subscriber()
                self._subscribed = frozenset()
            if channels != self._subscribed:
                gone = self._subscribed - channels
                if gone:
                    pubsub.unsubscribe(*gone)
                new = channels - self._subscribed
                if new:
                    pubsub.subscribe(*new)
                self._subscribed = channels
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except Exception:  # Redis unreachable: sleep, then subscribe again
            self._close_subscription()
            self._resubscribe_at = monotonic() + RESUBSCRIBE
            time.sleep(timeout)
            return []
        if not message or message.get("type") != "message":
            return []
        channel = message["channel"]
        return [channel.decode() if isinstance(channel, bytes) else channel]

    def _close_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed = frozenset()
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:
                logger.debug("resilience: closing a Redis subscription failed", exc_info=True)

    def __repr__(self) -> str:
        return f"<Worker {self._name!r} jobs={self.jobs} running={self.running}>"


def _due(job: Job) -> float:
    return job.due


class _Workers:
    """The workers of this process, by store; none are inherited by a forked child."""

    def __init__(self) -> None:
        self.lock = _fork.lock()
        self.by_store: weakref.WeakKeyDictionary[Any, Worker] = weakref.WeakKeyDictionary()
        _fork.register(self)

    def _reset_in_child(self) -> None:
        # The parent's threads do not exist here; a policy asks for a new worker.
        self.by_store = weakref.WeakKeyDictionary()


_workers = _Workers()


def worker_for(store: Any) -> Worker:
    """The worker of ``store`` (a ``RedisStore``), made on first use."""
    with _workers.lock:
        worker = _workers.by_store.get(store)
        if worker is None:
            client = getattr(store, "client", None)
            subscriber = getattr(client, "pubsub", None)
            name = getattr(store, "prefix", "store")
            worker = _workers.by_store[store] = Worker(name, subscriber)
        return worker


def stop_worker(store: Any) -> None:
    """Stop the worker of ``store`` if it has one (what ``store.close()`` calls)."""
    with _workers.lock:
        worker = _workers.by_store.pop(store, None)
    if worker is not None:
        worker.stop()

