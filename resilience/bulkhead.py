"""Bulkhead: at most so many calls at once, a bounded queue for the rest.

The count of holders and of queued callers is the core's
(``SemaphoreCore``); this module keeps the queue itself, FIFO, shared by
threads, asyncio tasks and Trio tasks alike. A release with callers queued
hands its permit straight to the first of them (it is never up for grabs in
between), so nobody is overtaken. A permit always comes back: on exceptions, on
cancellation, and when a wait times out just as the permit arrives.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _core
from ._core import _fork
from ._core._validate import count, non_negative
from ._policy import (
    Acquiring,
    Policy,
    Wait,
    check_name,
    finish_async,
    finish_sync,
    keeps,
    running_trio,
)
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


class _TrioWaiter(_Waiter):
    """A queued Trio task: woken through its run's token, which any thread may use."""

    __slots__ = ("_event", "_token", "_trio")

    def __init__(self) -> None:
        super().__init__()
        import trio  # only here, where a Trio task waits: importing resilience never does

        self._trio = trio
        self._token = trio.lowlevel.current_trio_token()
        self._event = trio.Event()

    def grant(self) -> None:
        self.granted = True
        # Event.set is for the run's own thread; the releaser may be another.
        self._token.run_sync_soon(self._event.set)

    async def wait(self, timeout: float) -> None:
        # A cancel from outside propagates (the caller then passes any permit
        # on); the end of ``timeout`` returns and ``granted`` tells which.
        with self._trio.move_on_after(timeout):
            await self._event.wait()


class _Queued(Wait):
    """A place in the bulkhead's queue, taken when the wait starts (so the
    waiter is of the kind the caller can wait on: a thread or a task)."""

    __slots__ = ("_bulkhead", "_limit", "_waiter")

    def __init__(self, bulkhead: Bulkhead, limit: float) -> None:
        self._bulkhead = bulkhead
        self._limit = limit
        self._waiter: _Waiter | None = None

    def wait_sync(self) -> None:
        waiter = self._waiter = self._bulkhead._enqueue(self._limit, _ThreadWaiter)
        if waiter is not None:
            assert isinstance(waiter, _ThreadWaiter)
            waiter.wait(self._limit)

    async def wait_async(self) -> None:
        make = _TrioWaiter if running_trio() else _TaskWaiter
        waiter = self._waiter = self._bulkhead._enqueue(self._limit, make)
        if waiter is not None:
            assert isinstance(waiter, (_TaskWaiter, _TrioWaiter))
            await waiter.wait(self._limit)

    def done(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.granted and not self._bulkhead._give_up(waiter):
            raise self._bulkhead._rejected()

    def abandon(self) -> None:
        # Interrupted: leave the queue, or pass on a permit that came anyway.
        waiter = self._waiter
        if waiter is not None and self._bulkhead._give_up(waiter):
            self._bulkhead.release()


class Bulkhead(_core.SELECTED.BulkheadGate, Policy):  # type: ignore[misc,name-defined]
    """At most ``max_concurrent`` holders; up to ``max_queue`` more wait (FIFO).

    A waiting caller waits at most ``max_wait`` seconds (or its own
    ``timeout``, and never past the current deadline; real time, woken by
    releases). Anyone else gets ``BulkheadFullError`` at once.
    """

    # The base gives the ``with`` forms, from the twin selected at import:
    # the compiled one takes a free permit in C (see _core/_calls_c.pyx).
    __slots__ = (
        "__weakref__",
        "_core",
        "_impl",
        "_lock",
        "_max_queue",
        "_max_wait",
        "_name",
        "_plain",
        "_queue",
    )

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
        self._lock = _fork.lock()  # guards the queue; the core's counts follow it
        self._queue: deque[_Waiter] = deque()
        _fork.register(self)
        # Fast paths stand in for acquire / release only where a subclass kept them.
        self._plain = keeps(self, Bulkhead, "acquire", "aacquire", "release")
        self._bind_core(self._core if self._plain else None)

    # -- permits -------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a permit if one is free and nobody is queued; never waits."""
        return bool(self._core.try_acquire())

    def _begin(self, timeout: float | None) -> _Queued | None:
        """A free permit now (None), or the wait for one."""
        wait = self._max_wait if timeout is None else non_negative("timeout", timeout)
        if self._core.try_acquire(False):
            return None
        return _Queued(self, min(wait, remaining()))

    def _enqueue(self, limit: float, make: Callable[[], _Waiter]) -> _Waiter | None:
        """Under the lock: a permit now (None), a place in the queue, or BulkheadFullError."""
        with self._lock:
            full = limit <= 0.0 or len(self._queue) >= self._max_queue
            if full:
                if self._core.try_acquire(False):
                    return None
                raise self._rejected()
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

    def _rejected(self) -> BulkheadFullError:
        self._core.reject()
        return BulkheadFullError(self._name, self._core.limit, self._max_queue)

    def acquire(self, timeout: float | None = None) -> None:
        """Take a permit, queueing up to ``timeout`` (default ``max_wait``) for one."""
        finish_sync(self._begin(timeout))

    async def aacquire(self, timeout: float | None = None) -> None:
        """Take a permit, awaiting one up to ``timeout`` (default ``max_wait``)."""
        await finish_async(self._begin(timeout))

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

    def _reset_in_child(self) -> None:
        """In a forked child: the parent's threads are gone, so are their permits and places."""
        # Only this thread runs in the child: no lock needed.
        self._queue.clear()
        core = self._core
        for _ in range(core.waiting):
            core.leave_queue()
        for _ in range(core.active):
            core.release()

    # -- the protocol ------------------------------------------------------------

    def _enter(self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None) -> Any:
        return self._begin(None) if self._plain else Acquiring(self)

    def _exit(self, token: Any, error: BaseException | None, result: Any) -> None:
        self.release()

    def _fast_sync(self, fn: Callable[..., Any]) -> Any:
        if not self._plain:
            return None
        return self._impl.BulkheadCall(fn, self._core, self.acquire, self.release)

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
