"""Argument checks shared by both twins.

The compiled classes convert plain ``int`` and ``float`` arguments inline and
call these functions only for anything else, or to raise; so both twins raise
the same exception with the same message, written once here.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from numbers import Real
from typing import Any


def number(name: str, value: Any) -> float:
    """``value`` as a float; TypeError for non-numbers and bools, ValueError for NaN."""
    kind = type(value)
    if kind is float:
        if value != value:
            raise ValueError(f"{name} must not be NaN, got {value!r}")
        return value  # type: ignore[no-any-return]
    if kind is not int and (isinstance(value, bool) or not isinstance(value, Real)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float, got {value!r}") from None
    if result != result:
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    return result


def finite(name: str, value: Any) -> float:
    """A finite number (timestamps)."""
    result = number(name, value)
    if math.isinf(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def positive(name: str, value: Any) -> float:
    """A finite number > 0 (durations, rates, capacities)."""
    result = number(name, value)
    if not 0.0 < result < math.inf:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return result


def capacity(name: str, value: Any) -> float:
    """A bucket's size in tokens: finite and >= 1, for a call takes one token."""
    result = number(name, value)
    if not 1.0 <= result < math.inf:
        raise ValueError(
            f"{name} must be a finite number >= 1 (a bucket that cannot hold one token"
            f" never grants a call), got {value!r}"
        )
    return result


def non_negative(name: str, value: Any) -> float:
    """A number >= 0; infinity allowed (waits: 0 means do not wait, inf forever)."""
    result = number(name, value)
    if result < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def non_negative_finite(name: str, value: Any) -> float:
    """A finite number >= 0 (token counts, measured durations)."""
    result = number(name, value)
    if not 0.0 <= result < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return result


def ratio(name: str, value: Any) -> float:
    """A number in (0, 1] (failure and slow-call rates)."""
    result = number(name, value)
    if not 0.0 < result <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return result


def count(name: str, value: Any, minimum: int = 1, maximum: int = sys.maxsize) -> int:
    """An integer in [minimum, maximum] (bools are not counts).

    ``maximum`` is at most a C size; counts that memory follows (window
    sizes, slice counts) set a lower one.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return int(value)


def generation(value: Any) -> int:
    """A generation token from ``BreakerCore.acquire``, or -1 for "the current one"."""
    if type(value) is int and -1 <= value <= sys.maxsize:
        return value
    return count("generation", value, -1)


def optional(check: Callable[[str, Any], float], name: str, value: Any) -> float | None:
    """None, or whatever ``check`` makes of the value."""
    return None if value is None else check(name, value)


def clock(value: Any) -> Callable[[], float] | None:
    """None (the monotonic clock) or a callable returning seconds."""
    if value is not None and not callable(value):
        raise TypeError(f"clock must be a callable returning seconds or None, got {value!r}")
    return value  # type: ignore[no-any-return]


def clock_reading(value: Any) -> float:
    """What a user clock returned, checked like any timestamp."""
    return finite("clock()", value)


def outcome_counts(calls: Any, failures: Any, slow: Any) -> tuple[int, int, int]:
    """Counts of calls and of the failed and slow ones among them."""
    c = count("calls", calls, 0)
    f = count("failures", failures, 0)
    s = count("slow", slow, 0)
    if f > c:
        raise ValueError(f"failures must be <= calls ({calls!r}), got {failures!r}")
    if s > c:
        raise ValueError(f"slow must be <= calls ({calls!r}), got {slow!r}")
    return c, f, s


def relative_error(value: Any) -> float:
    """A sketch's relative error, in [0.0001, 0.5] (finer would need too many buckets)."""
    result = number("relative_error", value)
    if not 1e-4 <= result <= 0.5:
        raise ValueError(f"relative_error must be in [0.0001, 0.5], got {value!r}")
    return result


# Time windows number their slices floor(now / width), clamped to +-2**61 so
# that slice numbers fit a C int64; past the clamp a window stops expiring.
# One-microsecond slices reach it after 73,000 years of clock readings,
# 1e-15 s ones after 38 minutes.
MIN_SLICE_WIDTH = 1e-6


def slice_width(name: str, duration: float, buckets: int, buckets_name: str | None = None) -> float:
    """The width of a time window's slices, ``duration / buckets``: at least MIN_SLICE_WIDTH.

    ``name`` is the argument that gave the (checked) duration, ``buckets_name``
    the one that gave the slice count, or None when the window chose it.
    """
    width = duration / buckets
    if width >= MIN_SLICE_WIDTH:
        return width
    if buckets_name is None:
        raise ValueError(
            f"{name} must be at least {MIN_SLICE_WIDTH} s for each of its {buckets} slices,"
            f" got {duration!r}"
        )
    raise ValueError(
        f"{name} / {buckets_name} (the width of a slice) must be >= {MIN_SLICE_WIDTH} s,"
        f" got {name}={duration!r}, {buckets_name}={buckets!r}"
    )


def quantile(name: str, value: Any) -> float:
    """A quantile, in [0, 1]."""
    result = number(name, value)
    if not 0.0 <= result <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return result
