# cython: auto_pickle=False
"""Latency sketch, compiled twin of ``_sketch_py.py`` (see there for the idea)."""

cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from libc.limits cimport ULLONG_MAX
from libc.math cimport INFINITY, NAN, ceil, floor, log, pow
from libc.string cimport memset

from resilience._core._clock_c cimport (
    NON_NEGATIVE_FINITE,
    as_number,
    read_now,
    timeline_at,
)
from resilience._core._slices_c cimport slice_of, slot_of

from resilience._core._sketch_py import COUNT_LIMIT
from resilience._core._sketch_py import MAX_VALUE as _MAX_VALUE
from resilience._core._sketch_py import MIN_VALUE as _MIN_VALUE
from resilience._core._nocopy import refuse_copy
from resilience._core._sketch_py import bucket_range, check_window_memory
from resilience._core._validate import clock as check_clock
from resilience._core._validate import count, positive, slice_width
from resilience._core._validate import quantile as check_quantile
from resilience._core._validate import relative_error as check_relative_error

cdef double MIN_VALUE = _MIN_VALUE
cdef double MAX_VALUE = _MAX_VALUE


cdef class LatencySketch:
    """Quantiles of non-negative values within a fixed relative error.

    ``quantile(q)`` estimates the value at 0-based rank ``floor(q * (n - 1))``
    of the sorted values added, within ``relative_error`` of it (for values
    from ``MIN_VALUE`` to ``MAX_VALUE``), and never outside the exact minimum
    and maximum. Sketches with the same relative error merge exactly.
    """

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    def __cinit__(self, *args, **kwargs):
        self._counts = NULL

    def __init__(self, relative_error=0.01):
        self._relative_error = check_relative_error(relative_error)
        gamma, log_gamma, lowest, buckets = bucket_range(self._relative_error)
        cdef Py_ssize_t n = buckets
        PyMem_Free(self._counts)
        self._counts = <unsigned long long*>PyMem_Calloc(n, sizeof(unsigned long long))
        if self._counts is NULL:
            raise MemoryError()
        self._gamma = gamma
        self._log_gamma = log_gamma
        self._lowest = lowest
        self._buckets = n
        self._clear()

    def __dealloc__(self):
        PyMem_Free(self._counts)

    cdef void _clear(self) noexcept:
        memset(self._counts, 0, self._buckets * sizeof(unsigned long long))
        self._zeros = 0
        self._count = 0
        self._sum = 0.0
        self._min = INFINITY
        self._max = -INFINITY

    def add(self, value, n=1):
        """Count ``value`` (>= 0, finite) ``n`` times."""
        cdef double v = as_number(value, "value", NON_NEGATIVE_FINITE)
        cdef unsigned long long times = 1 if type(n) is int and n == 1 else count("n", n)
        with cython.critical_section(self):
            self._add(v, times)

    cdef int _add(self, double v, unsigned long long times) except -1:
        """Under the critical section (or the owning window's): count a checked value."""
        cdef long long i
        if times > ULLONG_MAX - self._count:
            raise OverflowError(f"the sketch cannot count more than {COUNT_LIMIT} values")
        if v < MIN_VALUE:
            self._zeros += times
        else:
            i = <long long>ceil(log(v) / self._log_gamma) - self._lowest
            if i < 0:
                i = 0
            elif i >= self._buckets:
                i = self._buckets - 1
            self._counts[i] += times
        self._count += times
        self._sum += v * <double>times
        if v < self._min:
            self._min = v
        if v > self._max:
            self._max = v
        return 0

    def quantile(self, q):
        """The value at rank ``floor(q * (n - 1))``; NaN when nothing was added."""
        cdef double fraction = check_quantile("q", q)
        cdef unsigned long long rank, seen
        cdef double estimate
        cdef Py_ssize_t i
        with cython.critical_section(self):
            if self._count == 0:
                return NAN
            rank = <unsigned long long>floor(fraction * <double>(self._count - 1))
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
                        estimate = (
                            2.0 * pow(self._gamma, <double>(i + self._lowest)) / (self._gamma + 1.0)
                        )
                        break
            return min(max(estimate, self._min), self._max)

    def merge(self, other):
        """Add everything ``other`` holds (same twin, same relative error)."""
        if type(other) is not type(self):
            raise TypeError(f"other must be a {type(self).__name__}, got {other!r}")
        cdef LatencySketch source = <LatencySketch>other
        if source._relative_error != self._relative_error:
            raise ValueError(
                f"other must have relative_error {self._relative_error!r},"
                f" got {source._relative_error!r}"
            )
        if source is self:
            raise ValueError("a sketch cannot merge itself")
        with cython.critical_section(self, source):
            self._merge_from(source)

    cdef int _merge_from(self, LatencySketch source) except -1:
        """Under both critical sections (or the owning window's): add ``source``'s counts."""
        cdef Py_ssize_t i
        if source._count > ULLONG_MAX - self._count:
            raise OverflowError(f"the sketch cannot count more than {COUNT_LIMIT} values")
        for i in range(self._buckets):
            self._counts[i] += source._counts[i]
        self._zeros += source._zeros
        self._count += source._count
        self._sum += source._sum
        if source._min < self._min:
            self._min = source._min
        if source._max > self._max:
            self._max = source._max
        return 0

    @cython.critical_section
    def clear(self):
        """Forget every value."""
        self._clear()

    @property
    def count(self):
        """How many values were added."""
        return self._count

    @property
    def sum(self):
        """The sum of the values added."""
        return self._sum

    @property
    def min(self):
        """The smallest value added (``inf`` when none)."""
        return self._min

    @property
    def max(self):
        """The largest value added (``-inf`` when none)."""
        return self._max

    @property
    def relative_error(self):
        return self._relative_error

    @property
    def buckets(self):
        """How many buckets the sketch keeps (its memory is 8 bytes each)."""
        return self._buckets

    def __sizeof__(self):
        return object.__sizeof__(self) + self._buckets * sizeof(unsigned long long)

    def __repr__(self):
        return (
            f"<LatencySketch relative_error={self._relative_error!r} count={self._count}"
            f" min={self._min!r} max={self._max!r}>"
        )


cdef class LatencyWindow:
    """A ``LatencySketch`` of the last ``duration`` seconds, kept in ``buckets`` time slices.

    A value lands in the slice ``floor(now / width)``; a query merges the
    slices of the last ``duration`` seconds (whole slices, the current one
    included). When the clock steps back, the window's time is shifted by
    the step: nothing expires sooner or later than the time that passed.
    Memory is ``buckets`` sketches, fixed when the window is made and
    bounded (``MAX_WINDOW_COUNTS``); a slice is at least a microsecond wide.
    """

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    def __cinit__(self, *args, **kwargs):
        self._epochs = NULL

    def __init__(self, duration, buckets=6, relative_error=0.01, *, clock=None):
        self._duration = positive("duration", duration)
        cdef Py_ssize_t n = count("buckets", buckets)
        error = check_relative_error(relative_error)
        check_window_memory(n, error)
        cdef double width = slice_width("duration", self._duration, n, "buckets")
        self._clock = check_clock(clock)
        slots = [LatencySketch(error) for _ in range(n)]
        PyMem_Free(self._epochs)
        self._epochs = <long long*>PyMem_Calloc(n, sizeof(long long))
        if self._epochs is NULL:
            raise MemoryError()
        self._slots = slots
        self._buckets = n
        self._width = width
        cdef double start = read_now(self._clock, None)
        self._timeline.last = start
        self._timeline.offset = 0.0
        self._latest = slice_of(start, self._width)
        self._expire_all()

    def __dealloc__(self):
        PyMem_Free(self._epochs)

    cdef void _expire_all(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self._buckets):
            self._epochs[i] = self._latest - self._buckets

    cdef long long _advance(self, double now) noexcept:
        """Under the critical section: the current slice number (the
        window's time: a step back of the clock shifts it, see Timeline)."""
        cdef long long epoch = slice_of(timeline_at(&self._timeline, now), self._width)
        if epoch > self._latest:
            self._latest = epoch
        return self._latest

    cdef bint _live(self, Py_ssize_t i, long long epoch) noexcept:
        return epoch - self._buckets < self._epochs[i] <= epoch

    def add(self, value, n=1, now=None):
        """Count ``value`` (>= 0, finite) ``n`` times at ``now``."""
        cdef double v = as_number(value, "value", NON_NEGATIVE_FINITE)
        cdef unsigned long long times = 1 if type(n) is int and n == 1 else count("n", n)
        cdef double t = read_now(self._clock, now)
        cdef long long epoch
        cdef Py_ssize_t i
        cdef LatencySketch slot
        with cython.critical_section(self):
            epoch = self._advance(t)
            i = slot_of(epoch, self._buckets)
            slot = <LatencySketch>self._slots[i]
            if self._epochs[i] != epoch:  # the slot held a slice now out of the window
                slot._clear()
                self._epochs[i] = epoch
            slot._add(v, times)

    def sketch(self, now=None):
        """A new sketch of every value within the window at ``now``."""
        cdef double t = read_now(self._clock, now)
        cdef LatencySketch merged = LatencySketch((<LatencySketch>self._slots[0])._relative_error)
        cdef long long epoch
        cdef Py_ssize_t i
        with cython.critical_section(self):
            epoch = self._advance(t)
            for i in range(self._buckets):
                if self._live(i, epoch):
                    merged._merge_from(<LatencySketch>self._slots[i])
        return merged

    def quantile(self, q, now=None):
        """``quantile(q)`` of the values within the window at ``now``."""
        check_quantile("q", q)
        return self.sketch(now).quantile(q)

    def count(self, now=None):
        """How many values are within the window at ``now``."""
        cdef double t = read_now(self._clock, now)
        cdef unsigned long long total = 0
        cdef long long epoch
        cdef Py_ssize_t i
        with cython.critical_section(self):
            epoch = self._advance(t)
            for i in range(self._buckets):
                if self._live(i, epoch):
                    total += (<LatencySketch>self._slots[i])._count
        return total

    def clear(self):
        """Forget every value."""
        cdef Py_ssize_t i
        with cython.critical_section(self):
            for i in range(self._buckets):
                (<LatencySketch>self._slots[i])._clear()
            self._expire_all()

    @property
    def duration(self):
        return self._duration

    @property
    def buckets(self):
        return self._buckets

    @property
    def width(self):
        """Seconds per slice."""
        return self._width

    @property
    def relative_error(self):
        return (<LatencySketch>self._slots[0])._relative_error

    def __sizeof__(self):
        return (
            object.__sizeof__(self)
            + self._buckets * sizeof(long long)
            + sum([slot.__sizeof__() for slot in self._slots])
        )

    def __repr__(self):
        return (
            f"<LatencyWindow duration={self._duration!r} buckets={self._buckets}"
            f" relative_error={self.relative_error!r}>"
        )
