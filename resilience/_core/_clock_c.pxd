# Reading the time and plain numbers, for the compiled twins (see
# _clock_py.py). Inline: each module gets its own copy, so no module of the
# core imports another at run time for these.

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.long cimport PyLong_CheckExact
from cpython.time cimport monotonic as cpython_monotonic
from libc.math cimport INFINITY


cdef extern from "Python.h":
    # Declared without an exception value: an int too large for a double is
    # sent to the Python check below, which names the argument.
    double PyLong_AsDouble(object pylong) noexcept


cdef extern from *:
    """
    /* CPython's monotonic reading divides an int64 by 1e9 on every call;
       on Linux, read the same clock (CLOCK_MONOTONIC, as time.monotonic
       does there) without that division. */
    #if defined(__linux__)
    #include <time.h>
    #define __pyx_resilience_LINUX_CLOCK 1
    static CYTHON_INLINE double __pyx_resilience_linux_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    }
    #else
    #define __pyx_resilience_LINUX_CLOCK 0
    static CYTHON_INLINE double __pyx_resilience_linux_monotonic(void) { return 0.0; }
    #endif
    """
    const bint LINUX_CLOCK "__pyx_resilience_LINUX_CLOCK"
    double linux_monotonic "__pyx_resilience_linux_monotonic" () noexcept nogil


cdef inline double monotonic() noexcept nogil:
    """The clock time.monotonic reads, in seconds."""
    if LINUX_CLOCK:
        return linux_monotonic()
    return cpython_monotonic()


cdef enum:
    FINITE = 0
    NON_NEGATIVE_FINITE = 1
    NON_NEGATIVE = 2


cdef inline double as_number(object value, str name, int check) except? -1.0:
    """An exact float or int converted inline; anything else, or a value out
    of range, goes through the shared Python check (which raises)."""
    cdef double result
    if PyFloat_CheckExact(value):
        result = PyFloat_AS_DOUBLE(value)
    elif PyLong_CheckExact(value):
        result = PyLong_AsDouble(value)
        if result == -1.0 and PyErr_Occurred():
            PyErr_Clear()
            return _checked(value, name, check)
    else:
        return _checked(value, name, check)
    if check == NON_NEGATIVE_FINITE:
        if 0.0 <= result < INFINITY:
            return result
    elif check == FINITE:
        if -INFINITY < result < INFINITY:
            return result
    elif check == NON_NEGATIVE:
        if result >= 0.0:
            return result
    return _checked(value, name, check)


cdef inline double _checked(object value, str name, int check) except? -1.0:
    from resilience._core import _validate
    if check == FINITE:
        return _validate.finite(name, value)
    if check == NON_NEGATIVE_FINITE:
        return _validate.non_negative_finite(name, value)
    return _validate.non_negative(name, value)


cdef inline double read_now(object clock, object now) except? -1.0:
    """The time of an operation: ``now`` when given, else the clock's reading.
    May run Python code (a user clock): call it before touching state."""
    if now is not None:
        return as_number(now, "now", FINITE)
    if clock is None:
        return monotonic()
    reading = clock()
    if PyFloat_CheckExact(reading):
        result = PyFloat_AS_DOUBLE(reading)
        if -INFINITY < result < INFINITY:
            return result
    from resilience._core import _validate
    return _validate.clock_reading(reading)


cdef inline double elapsed(object clock, double start) except -1.0:
    """Seconds since ``start`` on ``clock`` (None: the monotonic clock); 0.0
    when the clock stepped back past ``start``, for a duration is never negative."""
    cdef double duration = read_now(clock, None) - start
    return duration if duration > 0.0 else 0.0


cdef struct Timeline:
    # See Timeline in _clock_py.py: the latest reading, and the sum of the
    # clock's steps back, added to every reading.
    double last
    double offset


cdef inline double timeline_at(Timeline* line, double reading) noexcept nogil:
    """Timeline.at (the same arithmetic, so the twins keep the same floats)."""
    if reading < line.last:
        line.offset += line.last - reading
    line.last = reading
    return reading + line.offset
