cimport cython

@cython.final
cdef class SemaphoreCore:
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _active
    cdef unsigned long long _acquired
    cdef unsigned long long _rejected
