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
    cdef object _run(
        self, long long token, double start, PyObject** args, size_t nargsf, PyObject* kwnames
    )


cdef class _Awaiting


cdef class _AsyncWrapper(_Wrapper):
    cdef bint _keeps_args  # the awaitable keeps the call's arguments (for a resume)

    cdef bint _refuses_now(self) except -1
    cdef int _start(self, _Awaiting waiting) except -1
    cdef int _returned(self, _Awaiting waiting, object value) except -1
    cdef object _raised(self, _Awaiting waiting, object error)
    cdef int _abandoned(self, _Awaiting waiting) except -1
    cdef int _dropped(self, _Awaiting waiting) except -1


@cython.final
cdef class _Awaiting:
    cdef _AsyncWrapper _call
    cdef object _coro
    cdef int _stage
    cdef long long _token   # a breaker's permit
    cdef double _started    # when a retried call started
    cdef tuple _args
    cdef dict _kwargs

    cdef object _coroutine(self)


@cython.final
cdef class AsyncBreakerCall(_AsyncWrapper):
    cdef BreakerCore _core
    cdef object _name
    cdef object _settle
    cdef object _clock


@cython.final
cdef class AsyncLimiterCall(_AsyncWrapper):
    cdef TokenBucket _bucket
    cdef object _name
    cdef bint _waits
    cdef object _limit
    cdef object _pause_then


@cython.final
cdef class AsyncRetryCall(_AsyncWrapper):
    cdef Counters _counts
    cdef object _resume
    cdef object _clock


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
