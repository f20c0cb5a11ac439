cimport cython

from resilience._core._clock_c cimport Timeline


@cython.final
cdef class LatencySketch:
    cdef double _relative_error
    cdef double _gamma
    cdef double _log_gamma
    cdef long long _lowest
    cdef Py_ssize_t _buckets
    cdef unsigned long long* _counts
    cdef unsigned long long _zeros
    cdef unsigned long long _count
    cdef double _sum
    cdef double _min
    cdef double _max

    cdef void _clear(self) noexcept
    cdef int _add(self, double v, unsigned long long times) except -1
    cdef int _merge_from(self, LatencySketch source) except -1


@cython.final
cdef class LatencyWindow:
    cdef double _duration
    cdef double _width
    cdef Py_ssize_t _buckets
    cdef long long _latest
    cdef Timeline _timeline
    cdef long long* _epochs  # the slice each slot holds
    cdef list _slots  # a LatencySketch per slot
    cdef object _clock

    cdef void _expire_all(self) noexcept
    cdef long long _advance(self, double now) noexcept
    cdef bint _live(self, Py_ssize_t i, long long epoch) noexcept
