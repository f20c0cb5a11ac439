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
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from time import monotonic
from typing import Any

from .._core import _fork
from .._core._validate import positive
from .._policy import logger

__all__ = ["Job", "Worker", "stop_worker", "worker_for"]


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

    @property
    def active(self) -> bool:
        """Whether the job is still registered (not cancelled, its worker not stopped)."""
        return self._worker._has(self)


class Worker:
    """A daemon thread running periodic jobs, started by the first job."""

    __slots__ = ("__weakref__", "_jobs", "_name", "_stopped", "_thread", "_wake")

    def __init__(self, name: str) -> None:
        self._name = name
        self._wake = threading.Condition(_fork.lock())
        self._jobs: list[Job] = []
        self._thread: threading.Thread | None = None
        self._stopped = False

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
                    return None
                job = min(self._jobs, key=_due)
                now = monotonic()
                if job.due <= now:
                    # The next turn one interval on, or from now if it fell behind:
                    # a late job runs once, not once per missed turn.
                    job.due = max(job.due + job.interval, now)
                    return job
                left = job.due - now
                self._wake.wait(left if left < threading.TIMEOUT_MAX else None)

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
            worker = _workers.by_store[store] = Worker(getattr(store, "prefix", "store"))
        return worker


def stop_worker(store: Any) -> None:
    """Stop the worker of ``store`` if it has one (what ``store.close()`` calls)."""
    with _workers.lock:
        worker = _workers.by_store.pop(store, None)
    if worker is not None:
        worker.stop()

