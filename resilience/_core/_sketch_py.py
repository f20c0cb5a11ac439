"""Latency sketch, pure-Python twin of ``_sketch_c.pyx``.

DDSketch's idea: bucket ``i`` holds the values in ``(gamma**(i-1),
gamma**i]`` with ``gamma = (1 + a) / (1 - a)``, and answers with
``2 * gamma**i / (gamma + 1)``, which is within relative error ``a`` of every
value in the bucket. The buckets cover ``MIN_VALUE`` to ``MAX_VALUE`` in one
dense array, so memory is fixed when the sketch is made (about 13.6 KiB at
``a = 0.01``) and an add is O(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from . import _fork
from ._clock_py import Timeline, read_now
from ._nocopy import NoCopy
from ._validate import clock as check_clock
from ._validate import count, non_negative_finite, positive, slice_width
from ._validate import quantile as check_quantile
from ._validate import relative_error as check_relative_error
from ._window_py import slice_of

# Values below this count as 0 (no clock resolves them); values above it count
# as it. In seconds, a nanosecond and eleven and a half days.
MIN_VALUE = 1e-9
MAX_VALUE = 1e6
COUNT_LIMIT = 2**64 - 1  # the compiled twin's unsigned 64-bit counts
# A LatencyWindow's memory follows its slices times their sketches' counts:
# at most this many counts in all (8 MiB), which still allows the default 6
# slices at the finest relative error.
MAX_WINDOW_COUNTS = 1 << 20


def bucket_range(a: float) -> tuple[float, float, int, int]:
    """``(gamma, log(gamma), lowest index, bucket count)`` for relative error ``a``."""
    gamma = (1.0 + a) / (1.0 - a)
    log_gamma = math.log(gamma)
    lowest = math.ceil(math.log(MIN_VALUE) / log_gamma)
    highest = math.ceil(math.log(MAX_VALUE) / log_gamma)
    return gamma, log_gamma, lowest, highest - lowest + 1


def check_window_memory(buckets: int, relative_error: float) -> None:
    """Refuse a window of ``buckets`` slices whose sketches would pass MAX_WINDOW_COUNTS."""
    per_slice = bucket_range(relative_error)[3]
    most = MAX_WINDOW_COUNTS // per_slice
    if buckets > most:
        raise ValueError(
            f"buckets must be <= {most} with relative_error={relative_error!r} (each slice"
            f" keeps a sketch of {per_slice} counts, a window at most {MAX_WINDOW_COUNTS}),"
            f" got {buckets!r}"
        )


class LatencySketch(NoCopy):
    """Quantiles of non-negative values within a fixed relative error.

    ``quantile(q)`` estimates the value at 0-based rank ``floor(q * (n - 1))``
    of the sorted values added, within ``relative_error`` of it (for values
    from ``MIN_VALUE`` to ``MAX_VALUE``), and never outside the exact minimum
    and maximum. Sketches with the same relative error merge exactly.
    """

    __slots__ = (
        "_buckets",
        "_count",
        "_counts",
        "_gamma",
        "_lock",
        "_log_gamma",
        "_lowest",
        "_max",
        "_min",
        "_relative_error",
        "_sum",
        "_zeros",
    )

    def __init__(self, relative_error: float = 0.01) -> None:
        self._relative_error = check_relative_error(relative_error)
        self._gamma, self._log_gamma, self._lowest, self._buckets = bucket_range(
            self._relative_error
        )
        self._lock = _fork.lock()
        self._clear()

    def _clear(self) -> None:
        self._counts = [0] * self._buckets
        self._zeros = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def _index(self, value: float) -> int:
        i = math.ceil(math.log(value) / self._log_gamma) - self._lowest
        return min(max(i, 0), self._buckets - 1)

    def add(self, value: float, n: int = 1) -> None:
        """Count ``value`` (>= 0, finite) ``n`` times."""
        v = non_negative_finite("value", value)
        times = count("n", n)
        with self._lock:
            self._add(v, times)

    def _add(self, v: float, times: int) -> None:
        """Under the lock (or the owning window's): count a checked value."""
        if times > COUNT_LIMIT - self._count:
            raise OverflowError(f"the sketch cannot count more than {COUNT_LIMIT} values")
        if v < MIN_VALUE:
            self._zeros += times
        else:
            self._counts[self._index(v)] += times
        self._count += times
        self._sum += v * times
        if v < self._min:
            self._min = v
        if v > self._max:
            self._max = v

    def quantile(self, q: float) -> float:
        """The value at rank ``floor(q * (n - 1))``; NaN when nothing was added."""
        fraction = check_quantile("q", q)
        with self._lock:
            if self._count == 0:
                return math.nan
            rank = math.floor(fraction * (self._count - 1))
            if rank == 0:
                return self._min  # the extremes are known exactly
            if rank == self._count - 1:
                return self._max
            seen = self._zeros
            if rank < seen:
                estimate = 0.0
            else:
                estimate = self._max
                for i in range(self._buckets):
                    seen += self._counts[i]
                    if rank < seen:
                        estimate = 2.0 * self._gamma ** (i + self._lowest) / (self._gamma + 1.0)
                        break
            return min(max(estimate, self._min), self._max)

    def merge(self, other: LatencySketch) -> None:
        """Add everything ``other`` holds (same twin, same relative error)."""
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {other!r}")
        if other._relative_error != self._relative_error:
            raise ValueError(
                f"other must have relative_error {self._relative_error!r},"
                f" got {other._relative_error!r}"
            )
        if other is self:
            raise ValueError("a sketch cannot merge itself")
        with other._lock:
            counts = list(other._counts)
            zeros, n, total = other._zeros, other._count, other._sum
            low, high = other._min, other._max
        with self._lock:
            if n > COUNT_LIMIT - self._count:
                raise OverflowError(f"the sketch cannot count more than {COUNT_LIMIT} values")
            for i, c in enumerate(counts):
                self._counts[i] += c
            self._zeros += zeros
            self._count += n
            self._sum += total
            if low < self._min:
                self._min = low
            if high > self._max:
                self._max = high

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._clear()

    @property
    def count(self) -> int:
        """How many values were added."""
        return self._count

    @property
    def sum(self) -> float:
        """The sum of the values added."""
        return self._sum

    @property
    def min(self) -> float:
        """The smallest value added (``inf`` when none)."""
        return self._min

    @property
    def max(self) -> float:
        """The largest value added (``-inf`` when none)."""
        return self._max

    @property
    def relative_error(self) -> float:
        return self._relative_error

    @property
    def buckets(self) -> int:
        """How many buckets the sketch keeps (its memory is 8 bytes each)."""
        return self._buckets

    def __repr__(self) -> str:
        return (
            f"<LatencySketch relative_error={self._relative_error!r} count={self._count}"
            f" min={self._min!r} max={self._max!r}>"
        )


class LatencyWindow(NoCopy):
    """A ``LatencySketch`` of the last ``duration`` seconds, kept in ``buckets`` time slices.

    A value lands in the slice ``floor(now / width)``; a query merges the
    slices of the last ``duration`` seconds (whole slices, the current one
    included). When the clock steps back, the window's time is shifted by
    the step: nothing expires sooner or later than the time that passed.
    Memory is ``buckets`` sketches, fixed when the window is made and
    bounded (``MAX_WINDOW_COUNTS``); a slice is at least a microsecond wide.
    """

    __slots__ = (
        "_buckets",
        "_clock",
        "_duration",
        "_epochs",
        "_latest",
        "_lock",
        "_slots",
        "_timeline",
        "_width",
    )

    def __init__(
        self,
        duration: float,
        buckets: int = 6,
        relative_error: float = 0.01,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._duration = positive("duration", duration)
        self._buckets = count("buckets", buckets)
        error = check_relative_error(relative_error)
        check_window_memory(self._buckets, error)
        self._width = slice_width("duration", self._duration, self._buckets, "buckets")
        self._clock = check_clock(clock)
        self._slots = [LatencySketch(error) for _ in range(self._buckets)]
        self._lock = _fork.lock()
        start = read_now(self._clock, None)
        self._timeline = Timeline(start)
        self._latest = slice_of(start, self._width)
        self._epochs = [self._latest - self._buckets] * self._buckets  # all expired

    def _advance(self, now: float) -> int:
        """Under the lock: the current slice number (the window's time: a
        step back of the clock shifts it, see Timeline)."""
        epoch = slice_of(self._timeline.at(now), self._width)
        if epoch > self._latest:
            self._latest = epoch
        return self._latest

    def add(self, value: float, n: int = 1, now: float | None = None) -> None:
        """Count ``value`` (>= 0, finite) ``n`` times at ``now``."""
        v = non_negative_finite("value", value)
        times = count("n", n)
        t = read_now(self._clock, now)
        with self._lock:
            epoch = self._advance(t)
            i = epoch % self._buckets
            slot = self._slots[i]
            if self._epochs[i] != epoch:  # the slot held a slice now out of the window
                slot._clear()
                self._epochs[i] = epoch
            slot._add(v, times)

    def sketch(self, now: float | None = None) -> LatencySketch:
        """A new sketch of every value within the window at ``now``."""
        t = read_now(self._clock, now)
        merged = LatencySketch(self._slots[0].relative_error)
        with self._lock:
            epoch = self._advance(t)
            for slot, slice_epoch in zip(self._slots, self._epochs, strict=True):
                if epoch - self._buckets < slice_epoch <= epoch:
                    merged.merge(slot)
        return merged

    def quantile(self, q: float, now: float | None = None) -> float:
        """``quantile(q)`` of the values within the window at ``now``."""
        check_quantile("q", q)
        return self.sketch(now).quantile(q)

    def count(self, now: float | None = None) -> int:
        """How many values are within the window at ``now``."""
        t = read_now(self._clock, now)
        with self._lock:
            epoch = self._advance(t)
            return sum(
                slot.count
                for slot, slice_epoch in zip(self._slots, self._epochs, strict=True)
                if epoch - self._buckets < slice_epoch <= epoch
            )

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            for i, slot in enumerate(self._slots):
                slot._clear()
                self._epochs[i] = self._latest - self._buckets

    @property
    def duration(self) -> float:
        return self._duration

    @property
    def buckets(self) -> int:
        return self._buckets

    @property
    def width(self) -> float:
        """Seconds per slice."""
        return self._width

    @property
    def relative_error(self) -> float:
        return self._slots[0].relative_error

    def __repr__(self) -> str:
        return (
            f"<LatencyWindow duration={self._duration!r} buckets={self._buckets}"
            f" relative_error={self.relative_error!r}>"
        )
