# cython: auto_pickle=False
"""Sliding outcome windows, compiled twins of ``_window_py.py``.

Both keep running totals, adding on record and subtracting on evict, so a
record and a snapshot cost O(1) whatever the window's size. The public
methods take the object's critical section; ``BreakerCore`` calls the cdef
ones under its own.
"""

cimport cython
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc
from cpython.pyport cimport PY_SSIZE_T_MAX
from libc.limits cimport LLONG_MAX
from libc.math cimport ceil
from libc.string cimport memset

from resilience._core._clock_c cimport read_now, timeline_at
from resilience._core._slices_c cimport slice_of, slot_of

from resilience._core._nocopy import refuse_copy
from resilience._core._validate import clock as check_clock
from resilience._core._validate import count, outcome_counts, positive, slice_width
from resilience._core._window_py import COUNT_LIMIT, MAX_TIME_SLICES, MAX_WINDOW_CALLS
from resilience._core._window_py import default_buckets

cdef enum:
    FAILURE = 1
    SLOW = 2


cdef object MAX_COUNT = PY_SSIZE_T_MAX


cdef class OutcomeWindow:
    """What BreakerCore needs of a window: record, advance to a time, clear."""

    __reduce_ex__ = refuse_copy  # neither copied nor pickled

    cdef void _clear(self) noexcept:
        self._calls = 0
        self._failures = 0
        self._slow = 0

    cdef void _record(self, double now, bint failure, bint slow) noexcept:
        pass

    cdef void _advance(self, double now) noexcept:
        pass


cdef class CountWindow(OutcomeWindow):
    """The last ``size`` calls: a ring of one byte per call (failure and slow bits)."""

    def __cinit__(self, *args, **kwargs):
        self._ring = NULL

    def __init__(self, size):
        cdef Py_ssize_t n = count("size", size, maximum=MAX_WINDOW_CALLS)
        if self._ring is not NULL:
            PyMem_Free(self._ring)
        self._ring = <unsigned char*>PyMem_Malloc(n)
        if self._ring is NULL:
            raise MemoryError()
        self._size = n
        self._clear()

    def __dealloc__(self):
        PyMem_Free(self._ring)

    cdef void _clear(self) noexcept:
        OutcomeWindow._clear(self)
        self._head = 0
        self._filled = 0

    cdef void _record(self, double now, bint failure, bint slow) noexcept:
        cdef Py_ssize_t head = self._head
        cdef unsigned char old, bits
        if self._filled == self._size:
            old = self._ring[head]
            self._failures -= old & FAILURE
            self._slow -= (old & SLOW) >> 1
        else:
            self._filled += 1
            self._calls += 1
        bits = (FAILURE if failure else 0) | (SLOW if slow else 0)
        self._ring[head] = bits
        self._failures += bits & FAILURE
        self._slow += (bits & SLOW) >> 1
        head += 1
        self._head = 0 if head == self._size else head

    @cython.critical_section
    def record(self, bint failure, bint slow=False, now=None):
        """Add one call's outcome, evicting the oldest once full."""
        self._record(0.0, failure, slow)

    @cython.critical_section
    def totals(self, now=None):
        """``(calls, failures, slow_calls)`` in the window."""
        return self._calls, self._failures, self._slow

    @cython.critical_section
    def reset(self):
        """Empty the window."""
        self._clear()

    @property
    def size(self):
        return self._size

    def __sizeof__(self):
        return object.__sizeof__(self) + self._size

    def __repr__(self):
        return (
            f"<CountWindow size={self._size} calls={self._calls}"
            f" failures={self._failures} slow_calls={self._slow}>"
        )


cdef class TimeWindow(OutcomeWindow):
    """The calls of the last ``duration`` seconds, in ``buckets`` fixed time slices.

    A call lands in the slice ``floor(now / width)``; slices older than the
    window are subtracted from the totals as time moves past them. By default
    a slice is one second wide, with at least 10 and at most 100 slices; a
    slice is never narrower than a microsecond. When the clock steps back,
    the window's time is shifted by the step: nothing expires sooner or
    later than the time that really passed.
    """

    def __cinit__(self, *args, **kwargs):
        self._counts = NULL

    def __init__(self, duration, buckets=None, *, clock=None):
        self._duration = positive("duration", duration)
        cdef Py_ssize_t n
        cdef double width
        if buckets is None:
            n = default_buckets(self._duration)
            width = slice_width("duration", self._duration, n)
        else:
            n = count("buckets", buckets, maximum=MAX_TIME_SLICES)
            width = slice_width("duration", self._duration, n, "buckets")
        self._clock = check_clock(clock)
        if self._counts is not NULL:
            PyMem_Free(self._counts)
        # Calloc checks n * size for overflow; a huge count is a MemoryError.
        self._counts = <long long*>PyMem_Calloc(n, 3 * sizeof(long long))
        if self._counts is NULL:
            raise MemoryError()
        self._buckets = n
        self._width = width
        self._clear()
        cdef double start = read_now(self._clock, None)
        self._timeline.last = start
        self._timeline.offset = 0.0
        self._epoch = slice_of(start, self._width)

    def __dealloc__(self):
        PyMem_Free(self._counts)

    cdef void _clear(self) noexcept:
        OutcomeWindow._clear(self)
        memset(self._counts, 0, 3 * self._buckets * sizeof(long long))

    cdef void _advance(self, double now) noexcept:
        # A reading before the last one shifts the window's time (Timeline):
        # the slices keep the time that had passed.
        cdef long long epoch = slice_of(timeline_at(&self._timeline, now), self._width)
        cdef long long steps = epoch - self._epoch
        cdef long long e
        cdef long long* slot
        if steps <= 0:
            return  # the same slice
        if steps >= self._buckets:
            self._clear()
        else:
            for e in range(self._epoch + 1, epoch + 1):
                slot = self._counts + 3 * slot_of(e, self._buckets)
                self._calls -= slot[0]
                self._failures -= slot[1]
                self._slow -= slot[2]
                slot[0] = 0
                slot[1] = 0
                slot[2] = 0
        self._epoch = epoch

    cdef void _record(self, double now, bint failure, bint slow) noexcept:
        self._advance(now)
        cdef long long* slot = self._counts + 3 * slot_of(self._epoch, self._buckets)
        slot[0] += 1
        self._calls += 1
        if failure:
            slot[1] += 1
            self._failures += 1
        if slow:
            slot[2] += 1
            self._slow += 1

    def record(self, bint failure, bint slow=False, now=None):
        """Add one call's outcome at ``now``."""
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._record(t, failure, slow)

    def totals(self, now=None):
        """``(calls, failures, slow_calls)`` within the window at ``now``."""
        cdef double t = read_now(self._clock, now)
        with cython.critical_section(self):
            self._advance(t)
            return self._calls, self._failures, self._slow

    def add(self, calls, failures=0, slow=0, now=None):
        """Add ``calls`` outcomes at ``now``, ``failures`` and ``slow`` of them so."""
        cdef long long c, f, s
        if (
            type(calls) is int and type(failures) is int and type(slow) is int
            and 0 <= failures <= calls <= MAX_COUNT and 0 <= slow <= calls
        ):
            c = calls  # the common case, without the Python checks
            f = failures
            s = slow
        else:
            c, f, s = outcome_counts(calls, failures, slow)
        cdef double t = read_now(self._clock, now)
        cdef long long* slot
        with cython.critical_section(self):
            self._advance(t)
            if c > LLONG_MAX - self._calls:
                raise OverflowError(f"a window cannot count more than {COUNT_LIMIT} calls")
            slot = self._counts + 3 * slot_of(self._epoch, self._buckets)
            slot[0] += c
            slot[1] += f
            slot[2] += s
            self._calls += c
            self._failures += f
            self._slow += s

    def trailing(self, seconds, now=None):
        """``(calls, failures, slow_calls)`` of the last ``seconds``.

        That is the last ``ceil(seconds / width)`` slices, the current one
        included, and at most the whole window.
        """
        cdef double span = positive("seconds", seconds)
        cdef double t = read_now(self._clock, now)
        cdef double slices
        cdef long long e, calls = 0, failures = 0, slow = 0
        cdef long long* slot
        with cython.critical_section(self):
            self._advance(t)
            slices = span / self._width
            if slices >= self._buckets:
                return self._calls, self._failures, self._slow
            for e in range(self._epoch - <long long>ceil(slices) + 1, self._epoch + 1):
                slot = self._counts + 3 * slot_of(e, self._buckets)
                calls += slot[0]
                failures += slot[1]
                slow += slot[2]
            return calls, failures, slow

    @property
    def width(self):
        """Seconds per slice."""
        return self._width

    @cython.critical_section
    def reset(self):
        """Empty the window."""
        self._clear()

    @property
    def duration(self):
        return self._duration

    @property
    def buckets(self):
        return self._buckets

    def __sizeof__(self):
        return object.__sizeof__(self) + 3 * self._buckets * sizeof(long long)

    def __repr__(self):
        return (
            f"<TimeWindow duration={self._duration!r} buckets={self._buckets}"
            f" calls={self._calls} failures={self._failures} slow_calls={self._slow}>"
        )
