"""Reading the time, for the pure-Python twins and the policies (see _clock_c.pxd).

Every reading of a user's ``clock`` goes through ``clock_reading``: a reading
that is not a finite real number raises (naming ``clock``) before the caller
changes anything, on both twins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from time import monotonic

from . import _fork
from ._validate import clock_reading, finite


def read_now(clock: Callable[[], float] | None, now: float | None) -> float:
    """The time of an operation: ``now`` when given, else the clock's reading."""
    if now is None:
        return monotonic() if clock is None else clock_reading(clock())
    if type(now) is float and now - now == 0.0:  # finite float: the common case
        return now
    return finite("now", now)


def elapsed(clock: Callable[[], float] | None, start: float) -> float:
    """Seconds since ``start`` on ``clock``; 0.0 when the clock stepped back
    past ``start`` (a wall clock set back), for a duration is never negative."""
    return max(0.0, read_now(clock, None) - start)


class Timeline:
    """Readings made into a time that never runs backwards (to within
    rounding) and loses no elapsed duration when the clock steps back.

    A reading earlier than the last one adds the step to ``offset``, which is
    added to every reading from then on: in effect every time stored against
    this timeline is shifted by the step, so an interval under way keeps
    what was left of it (an open breaker stays open for what remained of its
    timeout; a deadline keeps its remaining time) instead of waiting for the
    clock to come back. ``at`` is idempotent for a repeated reading. The
    caller serialises calls (under its lock).

    Readings of a user clock taken by several threads may arrive out of
    order. Where that matters (a token bucket would refill twice), the
    object tells a stale reading from a step back: a reading is a step back
    only when no other reading arrived while it was taken (see ``reader``).
    Elsewhere an inversion counts as a step back of the gap between the two
    readings (microseconds), so that object's time runs that much ahead.
    """

    __slots__ = ("last", "offset")

    def __init__(self, start: float = -math.inf) -> None:
        self.last = start
        self.offset = 0.0

    def at(self, reading: float) -> float:
        """The time for ``reading`` (the compiled ``timeline_at`` does the same
        arithmetic, so the twins keep the same floats)."""
        if reading < self.last:
            self.offset += self.last - reading
        self.last = reading
        return reading + self.offset


def reader(clock: Callable[[], float] | None) -> Callable[[], float]:
    """A function reading the time: the monotonic clock itself (no check to
    pay for), or ``clock`` with each of its readings checked and put on a
    ``Timeline`` of the reader's own, so a step back of the clock costs no
    elapsed duration.

    A reading that another thread's reading overtook (it arrives after a
    later one) is stale, not a step back: it is returned on the timeline as
    it is, earlier than the one that overtook it, so callers can still tell
    an overtaken operation (DegradationManager ignores one).
    """
    if clock is None:
        return monotonic
    user_clock = clock
    timeline = Timeline()
    lock = _fork.lock()
    readings = [0]  # how many readings arrived: one that changed while reading is stale

    def read_clock() -> float:
        seen = readings[0]
        reading = clock_reading(user_clock())
        with lock:
            overtaken = readings[0] != seen
            readings[0] += 1
            if overtaken and reading < timeline.last:
                return reading + timeline.offset
            return timeline.at(reading)

    return read_clock
