"""Bulkhead: at most so many calls at once, a bounded queue for the rest.

The count of holders and of queued callers is the core's
(``SemaphoreCore``); this module keeps the queue itself, FIFO, shared by
threads and asyncio tasks alike. A release with callers queued hands its
permit straight to the first of them (it is never up for grabs in between),
so nobody is overtaken. A permit always comes back: on exceptions, on
cancellation, and when a wait times out just as the permit arrives.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _core
from ._core._validate import count, non_negative
from ._policy import P, Policy, R, check_name
from .errors import BulkheadFullError
from .timeout import remaining

__all__ = ["Bulkhead", "BulkheadStats"]

@dataclass(frozen=True)
class BulkheadStats:
    """A snapshot of a bulkhead."""

    name: str | None
    max_concurrent: int
    max_queue: int
    active: int
    waiting: int
    acquired: int
    rejected: int


class _Waiter:
    """One queued caller: woken by ``grant`` from whichever thread releases."""

    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = False

    def grant(self) -> None:
        raise NotImplementedError


class _ThreadWaiter(_Waiter):
    __slots__ = ("_lock",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._lock.acquire()  # released by grant()

    def grant(self) -> None:
        self.granted = True
        self._lock.release()

    def wait(self, timeout: float) -> None:
        # Waits past what the platform can time count as waits without end.
        self._lock.acquire(timeout=-1 if timeout > threading.TIMEOUT_MAX else timeout)


class _TaskWaiter(_Waiter):
    __slots__ = ("_future", "_loop")

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = self._loop.create_future()

    def grant(self) -> None:
        self.granted = True
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float) -> None:
        # Not asyncio.wait_for: on some versions it returns normally when the
        # wake-up and a cancellation cross, losing the cancellation. Here a
        # cancel always reaches the caller (who then passes any permit on).
        timer = None
        if timeout < threading.TIMEOUT_MAX:
            timer = self._loop.call_later(timeout, self._wake)  # ``granted`` tells which
        try:
            await self._future
        finally:
            if timer is not None:
                timer.cancel()


class Bulkhead(Policy):
    """At most ``max_concurrent`` holders; up to ``max_queue`` more wait (FIFO).

    A waiting caller waits at most ``max_wait`` seconds (or its own
    ``timeout``, and never past the current deadline; real time, woken by
    releases). Anyone else gets ``BulkheadFullError`` at once.
    """

    # No __slots__: instances are of a subclass that also derives from the
    # twin's BulkheadGate (see __new__), whose compiled form has a C layout.

    def __new__(cls, *args: Any, **kwargs: Any) -> Bulkhead:
        # ``with bulkhead:`` must find the compiled __enter__/__exit__ on the
        # type itself, and which twin to use is known only now.
        gate = _core.SELECTED.BulkheadGate
        if not issubclass(cls, gate):
            cls = _gated(gate, cls)  # type: ignore[arg-type]
        return gate.__new__(cls)  # type: ignore[no-any-return]

    def __init__(
        self,
        max_concurrent: int,
        *,
        max_queue: int = 0,
        max_wait: float = 0.0,
        name: str | None = None,
    ) -> None:
        self._impl = _core.SELECTED  # the twin this bulkhead and its wrappers run on
        self._core = self._impl.SemaphoreCore(count("max_concurrent", max_concurrent))
        self._max_queue = count("max_queue", max_queue, 0)
        self._max_wait = non_negative("max_wait", max_wait)
        self._name = check_name(name)
        self._lock = threading.Lock()  # guards the queue; the core's counts follow it
        self._queue: deque[_Waiter] = deque()
        self._bind_core(self._core)

    def _bind_core(self, core: Any) -> None:
        raise NotImplementedError  # provided by the twin's BulkheadGate

    # -- permits -------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a permit if one is free and nobody is queued; never waits."""
        return bool(self._core.try_acquire())

    def _limit(self, wait: float) -> float:
        return min(wait, remaining())

    def _checked(self, timeout: float | None) -> float:
        return self._max_wait if timeout is None else non_negative("timeout", timeout)

    def _enqueue(self, limit: float, make: Callable[[], _Waiter]) -> _Waiter | None:
        """Under the lock: a permit now (None), a place in the queue, or BulkheadFullError."""
        with self._lock:
            full = limit <= 0.0 or len(self._queue) >= self._max_queue
            if full:
                if self._core.try_acquire(False):
                    return None
                self._core.reject()
                raise self._full()
            if self._core.acquire_or_queue():
                return None
            waiter = make()
            self._queue.append(waiter)
            return waiter

    def _give_up(self, waiter: _Waiter) -> bool:
        """After a wait ends unwoken: True if the permit came after all, else leave the queue."""
        with self._lock:
            if waiter.granted:
                return True
            self._queue.remove(waiter)
            self._core.leave_queue()
            return False

    def _full(self) -> BulkheadFullError:
        return BulkheadFullError(self._name, self._core.limit, self._max_queue)

    def acquire(self, timeout: float | None = None) -> None:
        """Take a permit, queueing up to ``timeout`` (default ``max_wait``) for one."""
        wait = self._checked(timeout)
        if self._core.try_acquire(False):
            return
        limit = self._limit(wait)
        waiter = self._enqueue(limit, _ThreadWaiter)
        if waiter is None:
            return
        assert isinstance(waiter, _ThreadWaiter)
        try:
            waiter.wait(limit)
        except BaseException:
            # Interrupted: leave the queue, or pass on a permit that came anyway.
            if self._give_up(waiter):
                self.release()
            raise
        self._after_wait(waiter)

    def _after_wait(self, waiter: _Waiter) -> None:
        if not waiter.granted and not self._give_up(waiter):
            self._core.reject()
            raise self._full()

    async def aacquire(self, timeout: float | None = None) -> None:
        """Take a permit, awaiting one up to ``timeout`` (default ``max_wait``)."""
        wait = self._checked(timeout)
        if self._core.try_acquire(False):
            return
        limit = self._limit(wait)
        waiter = self._enqueue(limit, _TaskWaiter)
        if waiter is None:
            return
        assert isinstance(waiter, _TaskWaiter)
        try:
            await waiter.wait(limit)
        except BaseException:
            # Cancelled: leave the queue, or pass on a permit that came anyway.
            if self._give_up(waiter):
                self.release()
            raise
        self._after_wait(waiter)

    def release(self) -> None:
        """Return a permit: to the first queued caller if any, else to the pool."""
        if self._core.release_unless_queued():
            return
        with self._lock:
            if not self._queue:
                self._core.release()  # the queue emptied meanwhile
                return
            waiter = self._queue.popleft()
            self._core.hand_over()
            waiter.grant()

    # -- call forms ------------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args, **kwargs)`` holding a permit."""
        self.acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self.release()

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(*args, **kwargs)`` holding a permit."""
        if not self._core.try_acquire(False):  # a free permit needs no await
            await self.aacquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        # The compiled twin takes and gives back a free permit in C.
        wrapper = self._impl.BulkheadCall(self, fn)
        functools.update_wrapper(wrapper, fn)
        return wrapper  # type: ignore[no-any-return]

    # ``with`` / ``async with``: from the twin's BulkheadGate. ``async with``
    # gives None, as asyncio.Semaphore does: a value would cost every block
    # a StopIteration.
    if TYPE_CHECKING:

        def __enter__(self) -> Bulkhead: ...

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

        async def __aenter__(self) -> None: ...

        async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> None: ...

    # -- reading -----------------------------------------------------------------

    @property
    def active(self) -> int:
        """Permits held now."""
        return int(self._core.active)

    @property
    def waiting(self) -> int:
        """Callers queued now."""
        return int(self._core.waiting)

    @property
    def stats(self) -> BulkheadStats:
        core = self._core
        return BulkheadStats(
            name=self._name,
            max_concurrent=core.limit,
            max_queue=self._max_queue,
            active=core.active,
            waiting=core.waiting,
            acquired=core.acquired,
            rejected=core.rejected,
        )

    def __repr__(self) -> str:
        return (
            f"<Bulkhead name={self._name!r} active={self.active}/{self._core.limit}"
            f" waiting={self.waiting}/{self._max_queue}>"
        )


@functools.cache
def _gated(gate: type, policy: type[Bulkhead]) -> type[Bulkhead]:
    """``policy`` (Bulkhead or a subclass) with the ``with`` form of one twin's gate."""
    return type(policy.__name__, (gate, policy), {"__module__": policy.__module__})
