cimport cython


@cython.final
cdef class Counters:
    cdef unsigned long long* _values
    cdef Py_ssize_t _size

    # For the compiled policy wrappers: count one event, index known valid.
    cdef void inc(self, Py_ssize_t index) noexcept
