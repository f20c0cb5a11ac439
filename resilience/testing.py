"""Helpers for testing code that uses resilience: a clock you move by hand."""

from __future__ import annotations

import asyncio

from ._core._validate import finite, non_negative_finite


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
        """An ``asyncio.sleep`` that advances this clock and yields once to the loop."""
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
