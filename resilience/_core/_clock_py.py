"""Reading the time, for the pure-Python twins and the policies (see _clock_c.pxd).

Every reading of a user's ``clock`` goes through ``clock_reading``: a reading
that is not a finite real number raises (naming ``clock``) before the caller
changes anything, on both twins.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic

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


def reader(clock: Callable[[], float] | None) -> Callable[[], float]:
    """A function reading the time: the monotonic clock itself (no check to
    pay for), or ``clock`` with each of its readings checked."""
    if clock is None:
        return monotonic
    user_clock = clock

    def read_clock() -> float:
        return clock_reading(user_clock())

    return read_clock
