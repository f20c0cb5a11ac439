"""Reading the time, for the pure-Python twins (see _clock_c.pxd)."""

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
