"""Timeouts and deadlines.

``deadline(seconds)`` sets a time budget for everything inside it (nested
ones keep the earliest); ``remaining()`` tells what is left. Waits of the
limiter, the bulkhead and retries never go past it. ``Timeout`` bounds one
call: async work is cancelled at the limit; sync work runs in a worker
thread, and the caller gets ``TimeoutExceeded`` at the limit while the
thread — which Python cannot kill — runs on to its end in the background.
"""

from __future__ import annotations

import contextvars
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import _core
from ._bounded import Scope, Worker
from ._core._clock_py import reader
from ._core._validate import clock as check_clock
from ._core._validate import non_negative
from ._policy import (
    AsyncBlock,
    P,
    Policy,
    R,
    SyncEntry,
    check_name,
    pop_entry,
    push_entry,
    running_trio,
)
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
        self._clock: Callable[[], float] = reader(check_clock(clock))  # readings checked

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


class _TrioScope:
    """``Scope`` under Trio: a cancel scope with the limit as its deadline.

    Entered here and exited by ``expired`` in the same task, around the
    work, as a ``with`` block would; Trio then tells its own cancel apart
    from any other (an outer scope's cancel passes through)."""

    __slots__ = ("_scope", "limit")

    def __init__(self, limit: float) -> None:
        self.limit = limit

    def enter(self) -> None:
        import trio  # only under Trio: importing resilience never does

        self._scope = trio.CancelScope(deadline=trio.current_time() + self.limit)
        self._scope.__enter__()

    def expired(self, exc: BaseException | None) -> bool:
        """At the work's end: whether ``exc``, what it ended with, is this scope's timeout."""
        if exc is None:
            self._scope.__exit__(None, None, None)
            return False
        # True: the scope caught its own Cancelled (anything else it lets through).
        return bool(self._scope.__exit__(type(exc), exc, exc.__traceback__))


class Timeout(AsyncBlock, Policy):
    """At most ``seconds`` for a call (or less, when the current deadline is nearer).

    ``math.inf`` sets no limit of its own; 0 leaves no time (a sync call is
    not started; an async one is cancelled at its first suspension).

    Async calls and ``async with`` blocks are cancelled at the limit and raise
    ``TimeoutExceeded``. Sync calls run in a new daemon worker thread (with the
    caller's context variables); at the limit the caller gets
    ``TimeoutExceeded`` and the thread runs on unobserved — Python cannot stop
    it — so give sync code its own timeouts where it has them.
    """

    __slots__ = ("_counts", "_name", "seconds")

    def __init__(self, seconds: float, *, name: str | None = None) -> None:
        self.seconds = non_negative("seconds", seconds)
        self._name = check_name(name)
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
        worker = Worker(
            functools.partial(fn, *args, **kwargs), name=f"resilience-timeout-{self._name}"
        )
        if not worker.wait(limit):
            raise self._timed_out(limit)
        return worker.result()

    # -- the protocol, for async calls and blocks (a sync call is ``call``'s own) --------

    def _enter(
        self, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None
    ) -> Scope | _TrioScope:
        scope = _TrioScope(self._limit()) if running_trio() else Scope(self._limit())
        self._counts.add(CALLS)
        scope.enter()
        return scope

    def _exit(self, token: Scope | _TrioScope, error: BaseException | None, result: Any) -> None:
        if token.expired(error):
            raise self._timed_out(token.limit) from error

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, name={self._name!r})"


@dataclass(frozen=True)
class TimeoutStats:
    """Lifetime counts of a Timeout."""

    name: str | None
    calls: int
    timeouts: int


CALLS, TIMEOUTS = range(2)
