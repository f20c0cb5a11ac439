cimport cython


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
