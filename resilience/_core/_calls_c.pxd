cimport cython
from cpython.object cimport PyObject

from resilience._core._breaker_c cimport BreakerCore
from resilience._core._bucket_c cimport TokenBucket
from resilience._core._counters_c cimport Counters
from resilience._core._semaphore_c cimport SemaphoreCore
from resilience._core._vectorcall_c cimport vectorcallfunc


@cython.final
cdef class BreakerCall:
    cdef vectorcallfunc _vectorcall
    cdef object _fn
    cdef BreakerCore _core
    cdef object _name
    cdef object _when_open
    cdef bint _falls_back
    cdef object _settle_exception
    cdef object _settle_result
    cdef object _clock
    cdef bint _timed
    cdef bint _judges_results
    cdef dict __dict__

    cdef inline double _now(self) except? -1.0
    cdef object _run(self, long long token, PyObject** args, size_t nargsf, PyObject* kwnames)


@cython.final
cdef class LimiterCall:
    cdef vectorcallfunc _vectorcall
    cdef object _fn
    cdef TokenBucket _bucket
    cdef object _name
    cdef bint _waits
    cdef object _limit
    cdef object _sleep_for
    cdef dict __dict__


@cython.final
cdef class RetryCall:
    cdef vectorcallfunc _vectorcall
    cdef object _fn
    cdef Counters _counts
    cdef object _resume
    cdef object _clock
    cdef dict __dict__


cdef class BulkheadGate:
    cdef SemaphoreCore _gate_core

    cdef int _give_back(self) except -1


@cython.final
cdef class BulkheadCall:
    cdef vectorcallfunc _vectorcall
    cdef object _fn
    cdef SemaphoreCore _core
    cdef object _acquire
    cdef object _release
    cdef dict __dict__
