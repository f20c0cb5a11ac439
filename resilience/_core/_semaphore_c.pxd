cimport cython

@cython.final
cdef class SemaphoreCore:
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _active
    cdef Py_ssize_t _waiting
    cdef unsigned long long _acquired
    cdef unsigned long long _rejected

    cdef int _leave(self) except -1
