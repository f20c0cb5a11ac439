cimport cython


@cython.final
cdef class SemaphoreCore:
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _active
    cdef Py_ssize_t _waiting
    cdef unsigned long long _acquired
    cdef unsigned long long _rejected

    cdef int _leave(self) except -1

    # For the compiled policy wrappers, under the caller's critical section:
    # try_acquire(False) and release_unless_queued() (1 released, 0 kept).
    cdef bint take_free(self) noexcept
    cdef int give_back(self) except -1
