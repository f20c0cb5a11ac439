cimport cython

from resilience._core._clock_c cimport Timeline

cdef class OutcomeWindow:
    # Running totals over the window, read directly by BreakerCore.
    cdef long long _calls
    cdef long long _failures
    cdef long long _slow

    cdef void _clear(self) noexcept
    cdef void _record(self, double now, bint failure, bint slow) noexcept
    cdef void _advance(self, double now) noexcept


@cython.final
cdef class CountWindow(OutcomeWindow):
    cdef Py_ssize_t _size
    cdef Py_ssize_t _head
    cdef Py_ssize_t _filled
    cdef unsigned char* _ring


@cython.final
cdef class TimeWindow(OutcomeWindow):
    cdef double _duration
    cdef double _width
    cdef Py_ssize_t _buckets
    cdef long long _epoch
    cdef Timeline _timeline
    cdef long long* _counts  # calls, failures, slow for each slice, interleaved
    cdef object _clock
