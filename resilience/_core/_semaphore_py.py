"""Bulkhead counter, pure-Python twin of ``_semaphore_c.pyx``."""

from __future__ import annotations

from . import _fork
from ._nocopy import NoCopy
from ._validate import count


class SemaphoreCore(NoCopy):
    """At most ``limit`` permits out at once; counts what it grants and refuses.

    It also counts the callers queued for a permit (``waiting``), so that a
    permit is never taken past them: while anyone waits, ``try_acquire``
    refuses and ``release_unless_queued`` leaves the permit for the caller to
    hand over. The queue itself and the waking belong to the ``Bulkhead``
    policy, which calls the queue methods under a lock of its own.
    """

    __slots__ = ("_acquired", "_active", "_limit", "_lock", "_rejected", "_waiting")

    def __init__(self, limit: int) -> None:
        self._limit = count("limit", limit)
        self._active = 0
        self._acquired = 0
        self._rejected = 0
        self._waiting = 0
        self._lock = _fork.lock()

    # The lock is taken with acquire() and try/finally rather than ``with``:
    # on CPython that skips looking up and calling __enter__/__exit__, which
    # is most of the cost of these few-store methods. (The counts are ints
    # >= 0, so ``not self._waiting`` is ``self._waiting == 0``.)

    def try_acquire(self, count_rejection: bool = True) -> bool:
        """Take a free permit unless someone is queued; a refusal counts unless told not to."""
        lock = self._lock
        lock.acquire()
        try:
            if self._active < self._limit and not self._waiting:
                self._active += 1
                self._acquired += 1
                return True
            if count_rejection:
                self._rejected += 1
            return False
        finally:
            lock.release()

    def release(self) -> None:
        """Return a permit; RuntimeError if none is out."""
        lock = self._lock
        lock.acquire()
        try:
            active = self._active
            if not active:
                raise RuntimeError("release() called with no permit held")
            self._active = active - 1
        finally:
            lock.release()

    def acquire_or_queue(self) -> bool:
        """Take a free permit (True), or count the caller as queued (False)."""
        lock = self._lock
        lock.acquire()
        try:
            if self._active < self._limit and self._waiting == 0:
                self._active += 1
                self._acquired += 1
                return True
            self._waiting += 1
            return False
        finally:
            lock.release()

    def release_unless_queued(self) -> bool:
        """Return a permit (True), unless someone is queued: then keep it for them (False)."""
        lock = self._lock
        lock.acquire()
        try:
            if self._waiting:
                return False
            active = self._active
            if not active:
                raise RuntimeError("release() called with no permit held")
            self._active = active - 1
            return True
        finally:
            lock.release()

    def hand_over(self) -> None:
        """A queued caller gets the permit kept for it by ``release_unless_queued``."""
        with self._lock:
            self._leave()
            self._acquired += 1

    def leave_queue(self) -> None:
        """A queued caller gave up waiting."""
        with self._lock:
            self._leave()

    def _leave(self) -> None:
        if self._waiting == 0:
            raise RuntimeError("nobody is queued")
        self._waiting -= 1

    def reject(self) -> None:
        """Count a refusal decided by the caller (a full queue, a timed-out wait)."""
        lock = self._lock
        lock.acquire()
        try:
            self._rejected += 1
        finally:
            lock.release()

    def set_limit(self, limit: int) -> None:
        """Change the limit; holders above a lowered limit keep their permits."""
        new = count("limit", limit)
        with self._lock:
            self._limit = new

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def active(self) -> int:
        """Permits currently out."""
        return self._active

    @property
    def available(self) -> int:
        """Permits that could be taken now."""
        return max(0, self._limit - self._active)

    @property
    def waiting(self) -> int:
        """Callers queued for a permit."""
        return self._waiting

    @property
    def acquired(self) -> int:
        """Permits granted in all."""
        return self._acquired

    @property
    def rejected(self) -> int:
        """Refusals in all."""
        return self._rejected

    def __repr__(self) -> str:
        return (
            f"<SemaphoreCore active={self._active} limit={self._limit} waiting={self._waiting}>"
        )
