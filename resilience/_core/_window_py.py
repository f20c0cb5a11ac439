"""Sliding outcome windows, pure-Python twins of ``_window_c.pyx``.

Both keep running totals, adding on record and subtracting on evict, so a
record and a snapshot cost O(1) whatever the window's size. The public
methods lock; ``BreakerCore`` calls the underscored ones under its own lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from math import floor
from time import monotonic

from . import _fork
from ._clock_py import Timeline, read_now
from ._nocopy import NoCopy
from ._validate import clock as check_clock
from ._validate import count, outcome_counts, positive, slice_width

FAILURE = 1
SLOW = 2
SLICE_LIMIT = 2.0**61
COUNT_LIMIT = 2**63 - 1  # the compiled twin's signed 64-bit totals
# Memory follows these settings (a byte per call; 24 bytes per slice,
# compiled): refused above 1 MB and 2.4 MB.
MAX_WINDOW_CALLS = 1_000_000
MAX_TIME_SLICES = 100_000


class CountWindow(NoCopy):
    """The last ``size`` calls: a ring of one byte per call (failure and slow bits)."""

    __slots__ = ("_calls", "_failures", "_filled", "_head", "_lock", "_ring", "_size", "_slow")

    def __init__(self, size: int) -> None:
        self._size = count("size", size, maximum=MAX_WINDOW_CALLS)
        self._ring = bytearray(self._size)
        self._lock = _fork.lock()
        self._clear()

    def _clear(self) -> None:
        self._head = 0
        self._filled = 0
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def _record(self, now: float, failure: bool, slow: bool) -> None:
        bits = (FAILURE if failure else 0) | (SLOW if slow else 0)
        head = self._head
        ring = self._ring
        if self._filled == self._size:
            old = ring[head]
            if old != bits:  # evicting a call with the same bits changes no total
                ring[head] = bits
                self._failures += (bits & FAILURE) - (old & FAILURE)
                self._slow += (bits >> 1) - (old >> 1)
        else:
            self._filled += 1
            self._calls += 1
            ring[head] = bits
            if bits:
                self._failures += bits & FAILURE
                self._slow += bits >> 1
        head += 1
        self._head = 0 if head == self._size else head

    def _totals(self, now: float) -> tuple[int, int, int]:
        return self._calls, self._failures, self._slow

    def record(self, failure: bool, slow: bool = False, now: float | None = None) -> None:
        """Add one call's outcome, evicting the oldest once full."""
        # _record inlined; the lock taken without ``with`` (cheaper on CPython).
        lock = self._lock
        lock.acquire()
        try:
            bits = (FAILURE if failure else 0) | (SLOW if slow else 0)
            head = self._head
            ring = self._ring
            if self._filled == self._size:
                old = ring[head]
                if old != bits:
                    ring[head] = bits
                    self._failures += (bits & FAILURE) - (old & FAILURE)
                    self._slow += (bits >> 1) - (old >> 1)
            else:
                self._filled += 1
                self._calls += 1
                ring[head] = bits
                if bits:
                    self._failures += bits & FAILURE
                    self._slow += bits >> 1
            head += 1
            self._head = 0 if head == self._size else head
        finally:
            lock.release()

    def totals(self, now: float | None = None) -> tuple[int, int, int]:
        """``(calls, failures, slow_calls)`` in the window."""
        with self._lock:
            return self._calls, self._failures, self._slow

    def reset(self) -> None:
        """Empty the window."""
        with self._lock:
            self._clear()

    @property
    def size(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"<CountWindow size={self._size} calls={self._calls}"
            f" failures={self._failures} slow_calls={self._slow}>"
        )


class TimeWindow(NoCopy):
    """The calls of the last ``duration`` seconds, in ``buckets`` fixed time slices.

    A call lands in the slice ``floor(now / width)``; slices older than the
    window are subtracted from the totals as time moves past them. By default
    a slice is one second wide, with at least 10 and at most 100 slices; a
    slice is never narrower than a microsecond. When the clock steps back,
    the window's time is shifted by the step: nothing expires sooner or
    later than the time that really passed.
    """

    __slots__ = (
        "_buckets",
        "_calls",
        "_calls_in",
        "_clock",
        "_duration",
        "_epoch",
        "_failures",
        "_failures_in",
        "_lock",
        "_slow",
        "_slow_in",
        "_timeline",
        "_width",
    )

    def __init__(
        self,
        duration: float,
        buckets: int | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._duration = positive("duration", duration)
        if buckets is None:
            self._buckets = default_buckets(self._duration)
            self._width = slice_width("duration", self._duration, self._buckets)
        else:
            self._buckets = count("buckets", buckets, maximum=MAX_TIME_SLICES)
            self._width = slice_width("duration", self._duration, self._buckets, "buckets")
        self._clock = check_clock(clock)
        self._lock = _fork.lock()
        self._clear()
        start = read_now(self._clock, None)
        self._timeline = Timeline(start)
        self._epoch = self._slice_of(start)

    def _clear(self) -> None:
        n = self._buckets
        self._calls_in = [0] * n
        self._failures_in = [0] * n
        self._slow_in = [0] * n
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def _slice_of(self, now: float) -> int:
        return slice_of(now, self._width)

    def _advance(self, now: float) -> None:
        # A reading before the last one shifts the window's time (Timeline):
        # the slices keep the time that had passed.
        now = self._timeline.at(now)
        x = now / self._width
        if x < self._epoch + 1:
            # floor(x) <= the current slice (an exact int-float comparison;
            # the clamp cannot change that): nothing to advance.
            return
        # slice_of, inlined for the common case
        epoch = floor(x) if -SLICE_LIMIT <= x <= SLICE_LIMIT else slice_of(now, self._width)
        steps = epoch - self._epoch
        if steps <= 0:
            return  # the same slice
        if steps >= self._buckets:
            self._clear()
        else:
            n = self._buckets
            for e in range(self._epoch + 1, epoch + 1):
                i = e % n
                self._calls -= self._calls_in[i]
                self._failures -= self._failures_in[i]
                self._slow -= self._slow_in[i]
                self._calls_in[i] = 0
                self._failures_in[i] = 0
                self._slow_in[i] = 0
        self._epoch = epoch

    def _record(self, now: float, failure: bool, slow: bool) -> None:
        self._advance(now)
        i = self._epoch % self._buckets
        self._calls_in[i] += 1
        self._calls += 1
        if failure:
            self._failures_in[i] += 1
            self._failures += 1
        if slow:
            self._slow_in[i] += 1
            self._slow += 1

    def _totals(self, now: float) -> tuple[int, int, int]:
        self._advance(now)
        return self._calls, self._failures, self._slow

    def record(self, failure: bool, slow: bool = False, now: float | None = None) -> None:
        """Add one call's outcome at ``now``."""
        t = monotonic() if now is None and self._clock is None else read_now(self._clock, now)
        lock = self._lock
        lock.acquire()
        try:
            self._advance(t)
            i = self._epoch % self._buckets
            self._calls_in[i] += 1
            self._calls += 1
            if failure:
                self._failures_in[i] += 1
                self._failures += 1
            if slow:
                self._slow_in[i] += 1
                self._slow += 1
        finally:
            lock.release()

    def add(self, calls: int, failures: int = 0, slow: int = 0, now: float | None = None) -> None:
        """Add ``calls`` outcomes at ``now``, ``failures`` and ``slow`` of them so."""
        c, f, s = outcome_counts(calls, failures, slow)
        t = read_now(self._clock, now)
        with self._lock:
            self._advance(t)
            if c > COUNT_LIMIT - self._calls:
                raise OverflowError(f"a window cannot count more than {COUNT_LIMIT} calls")
            i = self._epoch % self._buckets
            self._calls_in[i] += c
            self._failures_in[i] += f
            self._slow_in[i] += s
            self._calls += c
            self._failures += f
            self._slow += s

    def trailing(self, seconds: float, now: float | None = None) -> tuple[int, int, int]:
        """``(calls, failures, slow_calls)`` of the last ``seconds``.

        That is the last ``ceil(seconds / width)`` slices, the current one
        included, and at most the whole window.
        """
        span = positive("seconds", seconds)
        t = read_now(self._clock, now)
        with self._lock:
            self._advance(t)
            n = self._buckets
            slices = span / self._width
            if slices >= n:
                return self._calls, self._failures, self._slow
            calls = failures = slow = 0
            for e in range(self._epoch - math.ceil(slices) + 1, self._epoch + 1):
                i = e % n
                calls += self._calls_in[i]
                failures += self._failures_in[i]
                slow += self._slow_in[i]
            return calls, failures, slow

    @property
    def width(self) -> float:
        """Seconds per slice."""
        return self._width

    def totals(self, now: float | None = None) -> tuple[int, int, int]:
        """``(calls, failures, slow_calls)`` within the window at ``now``."""
        t = read_now(self._clock, now)
        with self._lock:
            return self._totals(t)

    def reset(self) -> None:
        """Empty the window."""
        with self._lock:
            self._clear()

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def buckets(self) -> int:
        return self._buckets

    def __repr__(self) -> str:
        return (
            f"<TimeWindow duration={self._duration!r} buckets={self._buckets}"
            f" calls={self._calls} failures={self._failures} slow_calls={self._slow}>"
        )


def slice_of(now: float, width: float) -> int:
    """The slice ``now`` falls in: ``floor(now / width)``, clamped so that slice
    numbers and their differences fit a C int64."""
    return math.floor(min(max(now / width, -SLICE_LIMIT), SLICE_LIMIT))


def default_buckets(duration: float) -> int:
    """One-second slices, at least 10 and at most 100 of them."""
    return min(100, max(10, math.ceil(duration)))
