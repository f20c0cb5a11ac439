"""Compiled per-call wrappers of the policies, twins of ``_calls_py.py``.

``CircuitBreaker(fn)`` returns a ``BreakerCall``: the protected call's fast
path (take a permit, call, record a success) and the refusal while open run
here in C; classifying an exception, judging a result and a fallback are the
policy's own Python code, called back only when needed. ``RateLimiter(fn)``
returns a ``LimiterCall`` in the same way: the token is taken and a refusal
raised in C; only a wait goes back to Python.

Refusals are raised by hand (``PyErr_SetObject`` and NULL): no traceback
entry for the wrapper and no Python ``__init__`` (the errors' args are their
fields), so a refusal costs little more than the raise itself.
"""

cimport cython
from cpython.exc cimport PyErr_SetObject
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF

from resilience._core._clock_c cimport monotonic, read_now
from resilience._core._semaphore_c cimport SemaphoreCore
from resilience._core._vectorcall_c cimport (
    PyObject_Vectorcall,
    AsyncTypeSlots,
    PyVectorcall_Call,
    enable_vectorcall,
    keywords,
    positional,
    vectorcallfunc,
)

from types import MethodType

from resilience.errors import CircuitOpenError, RateLimitExceeded

# Retry's counters, in RetryStats' order (resilience/retry.py).
cdef enum:
    CALLS = 0
    ATTEMPTS = 1
    SUCCESSES = 3


@cython.final
cdef class BreakerCall:
    """``fn`` protected by a circuit breaker policy (made by ``CircuitBreaker``)."""

    def __init__(self, policy, fn):
        self._fn = fn
        self._core = policy._core
        self._name = policy._name
        self._when_open = policy._when_open
        self._falls_back = policy._fallback is not None
        self._settle_exception = policy._settle_exception
        self._settle_result = policy._settle_result
        self._clock = policy._call_clock
        self._timed = policy._timed
        self._judges_results = policy._failure_if is not None
        self._vectorcall = <vectorcallfunc>_breaker_vectorcall

    def __call__(self, *args, **kwargs):
        # Callers that do not use vectorcall land here, and go on to it.
        return PyVectorcall_Call(self, args, kwargs)

    cdef inline double _now(self) except? -1.0:
        return monotonic() if self._clock is None else read_now(self._clock, None)

    cdef object _run(self, long long token, PyObject** args, size_t nargsf, PyObject* kwnames):
        cdef double start = self._now() if self._timed else 0.0
        try:
            result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
        except BaseException as exc:
            self._settle_exception(token, exc, start)
            raise
        if self._judges_results:
            self._settle_result(token, result, start)
        elif self._timed:
            self._core.settle(False, self._now() - start, token, None)
        else:
            self._core.succeed(token)
        return result

    def __get__(self, obj, objtype):
        # Bind like a function, so decorated methods receive ``self``.
        return self if obj is None else MethodType(self, obj)

    def __repr__(self):
        return f"<BreakerCall {self._fn!r}>"


cdef PyObject* _breaker_vectorcall(
    BreakerCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    cdef long long token = self._core.take(None)
    if token < 0:
        if self._falls_back:
            result = PyObject_Vectorcall(self._when_open, args, nargsf, kwnames)
        else:
            error = CircuitOpenError(self._name, self._core.wait_for_permit(None))
            PyErr_SetObject(CircuitOpenError, error)
            return NULL
    else:
        result = self._run(token, args, nargsf, kwnames)
    Py_INCREF(result)
    return <PyObject*>result


@cython.final
cdef class LimiterCall:
    """``fn`` behind a rate limiter policy (made by ``RateLimiter``): one token a call."""

    def __init__(self, policy, fn):
        self._fn = fn
        self._bucket = policy._bucket
        self._name = policy._name
        self._waits = policy._max_wait > 0.0
        self._limit = policy._limit
        self._sleep_for = policy._sleep_for
        self._vectorcall = <vectorcallfunc>_limiter_vectorcall

    def __call__(self, *args, **kwargs):
        return PyVectorcall_Call(self, args, kwargs)

    def __get__(self, obj, objtype):
        return self if obj is None else MethodType(self, obj)

    def __repr__(self):
        return f"<LimiterCall {self._fn!r}>"


cdef PyObject* _limiter_vectorcall(
    LimiterCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    # Without max_wait there is nothing to wait for, so no deadline to read.
    cdef double limit = self._limit(None) if self._waits else 0.0
    cdef double wait = self._bucket.take(1.0, limit, None)
    if wait < 0.0:
        error = RateLimitExceeded(self._name, self._bucket.wait_for(1.0, None))
        PyErr_SetObject(RateLimitExceeded, error)
        return NULL
    if wait > 0.0:
        self._sleep_for(wait, 1.0)
    result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
    Py_INCREF(result)
    return <PyObject*>result


@cython.final
cdef class RetryCall:
    """``fn`` retried by a Retry policy (made by ``Retry`` when it has no budget
    and no ``retry_if_result``): the first attempt runs here, counted in C; a
    failure goes on in the policy's Python loop."""

    def __init__(self, policy, fn):
        self._fn = fn
        self._counts = policy._counts
        self._resume = policy._resume
        self._clock = policy._call_clock
        self._vectorcall = <vectorcallfunc>_retry_vectorcall

    def __call__(self, *args, **kwargs):
        return PyVectorcall_Call(self, args, kwargs)

    def __get__(self, obj, objtype):
        return self if obj is None else MethodType(self, obj)

    def __repr__(self):
        return f"<RetryCall {self._fn!r}>"


cdef PyObject* _retry_vectorcall(
    RetryCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    self._counts.inc(CALLS)
    self._counts.inc(ATTEMPTS)
    cdef double started = monotonic() if self._clock is None else read_now(self._clock, None)
    try:
        result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
    except BaseException as exc:
        failure = exc
    else:
        self._counts.inc(SUCCESSES)
        Py_INCREF(result)
        return <PyObject*>result
    result = self._resume(
        failure, started, self._fn, positional(args, nargsf), keywords(args, nargsf, kwnames)
    )
    Py_INCREF(result)
    return <PyObject*>result


cdef class BulkheadGate:
    """Base of ``Bulkhead``: ``with`` takes a free permit and gives it back in C.

    Queueing for a permit and handing one to a queued caller stay in the
    policy's Python ``acquire`` / ``release``, reached only when there is no
    free permit or someone is queued.
    """

    def _bind_core(self, SemaphoreCore core):
        self._gate_core = core

    def __enter__(self):
        cdef bint took
        with cython.critical_section(self._gate_core):
            took = self._gate_core.take_free()
        if not took:
            self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._give_back()

    cdef int _give_back(self) except -1:
        cdef int released
        with cython.critical_section(self._gate_core):
            released = self._gate_core.give_back()
        if not released:
            self.release()  # someone is queued: hand the permit over
        return 0

    def __aenter__(self):
        cdef bint took
        with cython.critical_section(self._gate_core):
            took = self._gate_core.take_free()
        return _DONE if took else self.aacquire()

    def __aexit__(self, exc_type, exc, tb):
        self._give_back()
        return _DONE


@cython.final
cdef class _Done:
    """An awaitable that has already finished, with None.

    Its C slots are set below so that awaiting it calls no Python-level
    method and raises no StopIteration.
    """

    def __await__(self):
        return self

    def __next__(self):
        raise StopIteration


cdef PyObject* _done_await(PyObject* self) noexcept:
    Py_INCREF(<object>self)
    return self


cdef PyObject* _done_next(PyObject* self) noexcept:
    return NULL  # exhausted, no exception set: the await's value is None


(<AsyncTypeSlots*>_Done).tp_as_async.am_await = _done_await
(<AsyncTypeSlots*>_Done).tp_iternext = _done_next
cdef _Done _DONE = _Done()


@cython.final
cdef class BulkheadCall:
    """``fn`` holding a bulkhead permit (made by ``Bulkhead``)."""

    def __init__(self, policy, fn):
        self._fn = fn
        self._core = policy._core
        self._acquire = policy.acquire
        self._release = policy.release
        self._vectorcall = <vectorcallfunc>_bulkhead_vectorcall

    def __call__(self, *args, **kwargs):
        return PyVectorcall_Call(self, args, kwargs)

    def __get__(self, obj, objtype):
        return self if obj is None else MethodType(self, obj)

    def __repr__(self):
        return f"<BulkheadCall {self._fn!r}>"


cdef PyObject* _bulkhead_vectorcall(
    BulkheadCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    cdef bint took
    cdef int released
    with cython.critical_section(self._core):
        took = self._core.take_free()
    if not took:
        self._acquire()
    try:
        result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
    finally:
        with cython.critical_section(self._core):
            released = self._core.give_back()
        if not released:
            self._release()
    Py_INCREF(result)
    return <PyObject*>result


cdef BreakerCall _breaker_layout = BreakerCall.__new__(BreakerCall)
enable_vectorcall(
    BreakerCall, <char*>&_breaker_layout._vectorcall - <char*><PyObject*>_breaker_layout
)
cdef LimiterCall _limiter_layout = LimiterCall.__new__(LimiterCall)
enable_vectorcall(
    LimiterCall, <char*>&_limiter_layout._vectorcall - <char*><PyObject*>_limiter_layout
)
cdef BulkheadCall _bulkhead_layout = BulkheadCall.__new__(BulkheadCall)
enable_vectorcall(
    BulkheadCall, <char*>&_bulkhead_layout._vectorcall - <char*><PyObject*>_bulkhead_layout
)
cdef RetryCall _retry_layout = RetryCall.__new__(RetryCall)
enable_vectorcall(
    RetryCall, <char*>&_retry_layout._vectorcall - <char*><PyObject*>_retry_layout
)
