"""Helpers for testing code that uses resilience: a clock you move by hand, and
an instant mode in which nothing sleeps.

``instant()`` (a context manager and a decorator) and ``set_testing(on)``
switch the whole process to instant mode: the default sleep of every wait
made through the execution protocol — a retry's backoff, a rate limiter's
wait for the tokens it reserved, chaos latency — returns at once (an async
one still yields to the loop once), and ``Chaos`` injects nothing unless its
``enabled`` was set explicitly (``Chaos(enabled=True)``, or assigned), not
read from ``RESILIENCE_CHAOS``. Every decision stays as in production: a
retry makes the same attempts, a limiter reserves and refuses as it would, a
bulkhead still waits for a permit. A ``sleep=`` given to a policy is still
called. Clocks do not move, since nothing slept: a retry bounded only by a
deadline tries until the deadline passes in real time.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from . import _policy
from ._core import _fork
from ._core._validate import finite, non_negative_finite

__all__ = ["FakeClock", "instant", "set_testing"]

F = TypeVar("F", bound=Callable[..., Any])

# Instant mode is on while the switch is on or any instant() block is open:
# a count, not a saved state, so blocks opened and closed by several threads
# in any order leave it as the others expect.
_lock = _fork.lock()
_switch = False
_open_blocks = 0


def _apply() -> None:
    """Under ``_lock``: publish the mode to the sleep hook."""
    _policy.instant = _switch or _open_blocks > 0


def set_testing(on: bool) -> None:
    """Switch instant mode on or off for the whole process (e.g. in a conftest).

    Switching it off does not end ``instant()`` blocks still open: the mode
    stays on until the last of them exits.
    """
    global _switch
    if not isinstance(on, bool):
        raise TypeError(f"on must be a bool, got {on!r}")
    with _lock:
        _switch = on
        _apply()


class _Instant:
    """What ``instant()`` returns: a context manager and a decorator (sync or async)."""

    __slots__ = ()

    def __enter__(self) -> None:
        global _open_blocks
        with _lock:
            _open_blocks += 1
            _apply()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        global _open_blocks
        with _lock:
            if _open_blocks == 0:  # a count below zero would void the next block
                raise RuntimeError("instant() exited without a block open")
            _open_blocks -= 1
            _apply()

    def __call__(self, fn: F) -> F:
        """Run each call of ``fn`` (a function or a coroutine function) in instant mode."""
        if not callable(fn):
            raise TypeError(f"instant() decorates a callable, got {fn!r}")
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await fn(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]


def instant() -> _Instant:
    """Instant mode for the whole process while a ``with`` block (or a decorated
    function) runs; blocks nest, in one thread or many.

    ::

        with instant():
            flaky_call_with_retries()  # no backoff is slept
    """
    return _Instant()


class FakeClock:
    """A clock that stands still until told to move.

    Pass it as ``clock=`` (and its ``sleep`` / ``asleep`` as ``sleep=``) so
    that waits, timeouts and windows run instantly and deterministically::

        clock = FakeClock()
        bucket = TokenBucket(1.0, 1.0, clock=clock)
        clock.advance(0.5)
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = finite("start", start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        self._now += non_negative_finite("seconds", seconds)
        return self._now

    def set(self, now: float) -> float:
        """Jump to ``now``, backwards too (a wall clock set back), and return it.

        The library's objects keep the durations that had passed when their
        clock steps back (see the README's notes on clocks)."""
        self._now = finite("now", now)
        return self._now

    def sleep(self, seconds: float) -> None:
        """A ``time.sleep`` that only advances this clock."""
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        """An async sleep that advances this clock and yields once to the loop (asyncio or Trio)."""
        self.advance(seconds)
        # A turn of the loop, not a sleep of the library's hook (``instant()``
        # and the tests that watch the hook do not see it).
        if _policy.running_trio():
            import trio

            await trio.lowlevel.checkpoint()
        else:
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
