cimport cython


@cython.final
cdef class TokenBucket:
    cdef double _rate
    cdef double _capacity
    cdef double _tokens
    cdef double _last
    cdef unsigned long long _readings  # times taken: one that changed while reading is stale
    cdef object _clock
    cdef unsigned long long _granted
    cdef unsigned long long _rejected
    cdef unsigned long long _refunded

    cdef void _refill(self, double now, unsigned long long seen) noexcept
    # For the compiled policy wrappers: reserve() without a Python-level call.
    cdef double take(self, double n, double limit, object now) except? -2.0
    cdef double wait_for(self, double n, object now) except? -1.0

    cdef bint _holds(self, double n) noexcept
    cdef double _wait(self, double n) noexcept
