# Fixed time slices, for the compiled windows (see slice_of in _window_py.py).
# Inline: each module gets its own copy.

from libc.math cimport floor


cdef extern from *:
    """
    /* Slice numbers stay within +-2**61, so they and their differences fit
       a C int64 (SLICE_LIMIT in _window_py.py). */
    #define __pyx_resilience_SLICE_LIMIT 2305843009213693952.0
    """
    const double SLICE_LIMIT "__pyx_resilience_SLICE_LIMIT"


cdef inline long long slice_of(double now, double width) noexcept:
    """The slice ``now`` falls in: ``floor(now / width)``, clamped."""
    return <long long>floor(min(max(now / width, -SLICE_LIMIT), SLICE_LIMIT))


cdef inline Py_ssize_t slot_of(long long epoch, Py_ssize_t slots) noexcept:
    """``epoch % slots`` with Python's sign (C's % keeps the dividend's)."""
    cdef Py_ssize_t i = epoch % slots
    return i + slots if i < 0 else i
