cimport cython
from cpython.object cimport PyObject

from resilience._core._breaker_c cimport BreakerCore
from resilience._core._bucket_c cimport TokenBucket
from resilience._core._counters_c cimport Counters
from resilience._core._semaphore_c cimport SemaphoreCore
from resilience._core._vectorcall_c cimport vectorcallfunc


cdef class _Wrapper:
    cdef vectorcallfunc _vectorcall
    cdef object _fn
    cdef dict __dict__


@cython.final
cdef class BreakerCall(_Wrapper):
    cdef BreakerCore _core
    cdef object _name
    cdef object _fallback
    cdef object _settle
    cdef object _clock
    cdef bint _timed
    cdef bint _judges_results

    cdef inline double _now(self) except? -1.0
    cdef object _run(self, long long token, PyObject** args, size_t nargsf, PyObject* kwnames)


@cython.final
cdef class AsyncBreakerCall(_Wrapper):
    cdef BreakerCore _core
    cdef object _name
    cdef object _settle


@cython.final
cdef class _BreakerAwait:
    cdef AsyncBreakerCall _call
    cdef object _coro
    cdef long long _token

    cdef int _finish(self, object error) except -1


@cython.final
cdef class LimiterCall(_Wrapper):
    cdef TokenBucket _bucket
    cdef object _name
    cdef bint _waits
    cdef object _limit
    cdef object _pause


@cython.final
cdef class RetryCall(_Wrapper):
    cdef Counters _counts
    cdef object _resume
    cdef object _clock


cdef class BulkheadGate:
    cdef SemaphoreCore _gate_core

    cdef int _give_back(self) except -1


@cython.final
cdef class BulkheadCall(_Wrapper):
    cdef SemaphoreCore _core
    cdef object _acquire
    cdef object _release
