"""Timeouts and deadlines.

``deadline(seconds)`` sets a time budget for everything inside it (nested
ones keep the earliest); ``remaining()`` tells what is left. Waits of the
limiter, the bulkhead and retries never go past it. ``Timeout`` bounds one
call: async work is cancelled at the limit; sync work runs in a worker
thread, and the caller gets ``TimeoutExceeded`` at the limit while the
thread — which Python cannot kill — runs on to its end in the background.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import _core
from ._core._validate import clock as check_clock
from ._core._validate import non_negative
from ._policy import P, Policy, R, SyncEntry, check_name, pop_entry, push_entry
from .errors import TimeoutExceeded

__all__ = ["Timeout", "TimeoutStats", "deadline", "remaining"]

# The earliest deadline in force here: (expiry, the clock it is read with).
_current: contextvars.ContextVar[tuple[float, Callable[[], float]] | None] = (
    contextvars.ContextVar("resilience_deadline", default=None)
)


def remaining() -> float:
    """Seconds left before the current deadline (``inf`` when there is none, never < 0)."""
    current = _current.get()
    if current is None:
        return math.inf
    expiry, clock = current
    return max(0.0, expiry - clock())


class deadline(SyncEntry):
    """Within this block, everything has at most ``seconds`` (sync and async).

    Nested deadlines keep the earliest. ``math.inf`` sets no limit; 0 leaves
    no time at all. The deadline belongs to the thread or asyncio task that
    entered it (and to tasks started inside it).
    """

    __slots__ = ("_clock", "seconds")

    def __init__(self, seconds: float, *, clock: Callable[[], float] | None = None) -> None:
        self.seconds = non_negative("seconds", seconds)
        self._clock: Callable[[], float] = check_clock(clock) or time.monotonic

    def __enter__(self) -> deadline:
        mine = (self._clock() + self.seconds, self._clock)
        current = _current.get()
        earliest = mine if current is None or self.seconds < remaining() else current
        # Kept per thread / task, so one deadline object can be entered by many.
        push_entry(self, _current.set(earliest))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _current.reset(pop_entry(self))

    def __repr__(self) -> str:
        return f"deadline({self.seconds!r})"


class Timeout(Policy):
    """At most ``seconds`` for a call (or less, when the current deadline is nearer).

    ``math.inf`` sets no limit of its own; 0 leaves no time (a sync call is
    not started; an async one is cancelled at its first suspension).

    Async calls and ``async with`` blocks are cancelled at the limit and raise
    ``TimeoutExceeded``. Sync calls run in a new daemon worker thread (with the
    caller's context variables); at the limit the caller gets
    ``TimeoutExceeded`` and the thread runs on unobserved — Python cannot stop
    it — so give sync code its own timeouts where it has them.
    """

    __slots__ = ("_counts", "_name", "_scopes", "seconds")

    def __init__(self, seconds: float, *, name: str | None = None) -> None:
        self.seconds = non_negative("seconds", seconds)
        self._name = check_name(name)
        self._scopes: list[Any] = []
        self._counts = _core.SELECTED.Counters(2)  # CALLS, TIMEOUTS

    def _timed_out(self, limit: float) -> TimeoutExceeded:
        self._counts.add(TIMEOUTS)
        return TimeoutExceeded(limit, self._name)

    @property
    def stats(self) -> TimeoutStats:
        return TimeoutStats(self._name, *self._counts.snapshot())

    def _limit(self) -> float:
        return min(self.seconds, remaining())

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn`` in a worker thread and wait for it at most the limit."""
        limit = self._limit()
        self._counts.add(CALLS)
        if limit <= 0.0:
            raise self._timed_out(limit)
        outcome: list[Any] = []
        done = threading.Event()
        context = contextvars.copy_context()

        def work() -> None:
            try:
                outcome.append((True, context.run(fn, *args, **kwargs)))
            except BaseException as exc:  # handed to the caller
                outcome.append((False, exc))
            finally:
                done.set()

        threading.Thread(target=work, name=f"resilience-timeout-{self._name}", daemon=True).start()
        if not done.wait(None if limit > threading.TIMEOUT_MAX else limit):
            raise self._timed_out(limit)
        ok, value = outcome[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    async def acall(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """``await fn(...)``, cancelled at the limit."""
        async with self:
            return await fn(*args, **kwargs)

    async def __aenter__(self) -> Timeout:
        scope = _Scope(self._limit())
        self._counts.add(CALLS)
        self._scopes.append(scope)
        scope.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Scopes of one Timeout object nest within a task; tasks sharing the
        # object each find their own scope.
        task = asyncio.current_task()
        for i in range(len(self._scopes) - 1, -1, -1):
            if self._scopes[i].task is task:
                scope = self._scopes.pop(i)
                break
        else:  # pragma: no cover - __aexit__ without __aenter__
            raise RuntimeError("Timeout.__aexit__ without a matching __aenter__ in this task")
        if scope.expired(exc):
            raise self._timed_out(scope.limit) from exc

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, name={self._name!r})"


@dataclass(frozen=True)
class TimeoutStats:
    """Lifetime counts of a Timeout."""

    name: str | None
    calls: int
    timeouts: int


CALLS, TIMEOUTS = range(2)


class _Scope:
    """One ``async with Timeout``: cancels its task at the limit, tells its timeout apart.

    The same job as ``asyncio.timeout`` (3.11+), written once so 3.10 behaves
    alike: the cancel it sends is told apart from any other by counting it,
    and withdrawn (``uncancel``) where the interpreter tracks such counts.
    """

    __slots__ = ("_cancelling", "_handle", "fired", "limit", "task")

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.fired = False
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Timeout must be used inside an asyncio task")
        self.task = task
        self._handle: asyncio.TimerHandle | None = None

    def enter(self) -> None:
        if self.limit == math.inf:
            return  # no limit: nothing to schedule
        # Cancels already pending on the task are not ours to turn into a timeout.
        self._cancelling = 0
        if sys.version_info >= (3, 11):
            self._cancelling = self.task.cancelling()
        loop = asyncio.get_running_loop()
        self._handle = loop.call_at(loop.time() + self.limit, self._fire)

    def _fire(self) -> None:
        self.fired = True
        self.task.cancel()

    def expired(self, exc: BaseException | None) -> bool:
        """At the block's end: whether its CancelledError is this scope's timeout."""
        if self._handle is not None:
            self._handle.cancel()
        if not self.fired:
            return False
        if sys.version_info >= (3, 11):
            if self.task.uncancel() > self._cancelling:
                return False  # someone else cancelled the task too: let that cancel through
        return isinstance(exc, asyncio.CancelledError)
