# cython: auto_pickle=False
"""Compiled per-call wrappers of the policies, twins of ``_calls_py.py``.

Each is built from explicit arguments — the core object, the callbacks for
the slow paths, the flags — never from a policy's attributes. The fast path
of a call (take a permit or a token, call, settle a plain success) and a
refusal run here in C; whatever needs judgement (classifying an exception,
a fallback, a wait) calls back into the policy through those callbacks.

Refusals are raised by hand (``PyErr_SetObject`` and NULL), built by their
type's ``tp_new`` slot (their args are their fields): no traceback entry for
the wrapper, no lookup of ``__new__`` and no Python ``__init__``, so a
refusal costs little more than the raise itself.
"""

cimport cython
from cpython.exc cimport PyErr_Fetch, PyErr_NormalizeException, PyErr_Restore, PyErr_SetObject
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF

from resilience._core._clock_c cimport elapsed, monotonic, read_now
from resilience._core._semaphore_c cimport SemaphoreCore
from resilience._core._vectorcall_c cimport (
    PYGEN_NEXT,
    PYGEN_RETURN,
    PyIter_Send,
    PyObject_Vectorcall,
    AsyncTypeSlots,
    NewTypeSlots,
    PyVectorcall_Call,
    enable_vectorcall,
    keywords,
    positional,
    sendfunc,
    vectorcallfunc,
)

from types import MethodType

from resilience._core._errors import CircuitOpenError, RateLimitExceeded
from resilience._core._nocopy import refuse_copy
from resilience._core import _layout

cdef Py_ssize_t RETRY_CALLS = _layout.RETRY_CALLS
cdef Py_ssize_t RETRY_ATTEMPTS = _layout.RETRY_ATTEMPTS
cdef Py_ssize_t RETRY_SUCCESSES = _layout.RETRY_SUCCESSES


cdef inline object _refusal(type kind, tuple fields):
    """``kind.__new__(kind, *fields)``: a refusal, whose args are its fields,
    made through the type's C slot (no lookup of ``__new__``, no wrapper)."""
    return (<NewTypeSlots*>kind).tp_new(<PyTypeObject*>kind, fields, NULL)


cdef inline double _take_token(TokenBucket bucket, bint waits, object limit) except? -2.0:
    """A limited call's token: 0 now, the seconds to wait for it, or < 0 refused.

    Without waits there is nothing to wait for, so no deadline to read."""
    return bucket.take(1.0, limit() if waits else 0.0, None)


cdef inline object _rate_refusal(TokenBucket bucket, object name):
    return _refusal(RateLimitExceeded, (name, bucket.wait_for(1.0, None)))


cdef inline double _first_attempt(Counters counts, object clock) except? -1.0:
    """A retried call starts: its first attempt counted; when it started."""
    cdef double started = monotonic() if clock is None else read_now(clock, None)
    counts.inc(RETRY_CALLS)
    counts.inc(RETRY_ATTEMPTS)
    return started


cdef class _Wrapper:
    """What the wrappers share: the function, binding like a function, a repr."""

    def __call__(self, *args, **kwargs):
        # Callers that do not use vectorcall land here, and go on to it.
        return PyVectorcall_Call(self, args, kwargs)

    def __get__(self, obj, objtype):
        # Bind like a function, so decorated methods receive ``self``.
        return self if obj is None else MethodType(self, obj)

    def __repr__(self):
        return f"<{type(self).__name__} {self._fn!r}>"

    def __reduce__(self):
        # As a function: pickled by reference (its module and qualified
        # name), so a decorated module-level function crosses to worker
        # processes; copying gives the object itself.
        return self.__qualname__


@cython.final
cdef class BreakerCall(_Wrapper):
    """``fn`` protected by a circuit breaker's core.

    ``settle(token, error, result, start)`` answers a permit whenever the
    outcome needs judging; ``fallback`` (or None) answers refused calls.
    """

    def __init__(self, fn, BreakerCore core, name, fallback, settle, clock, bint timed,
                 bint judges_results):
        self._fn = fn
        self._core = core
        self._name = name
        self._fallback = fallback
        self._settle = settle
        self._clock = clock
        self._timed = timed
        self._judges_results = judges_results
        self._vectorcall = <vectorcallfunc>_breaker_vectorcall

    cdef inline double _now(self) except? -1.0:
        return monotonic() if self._clock is None else read_now(self._clock, None)

    cdef object _run(
        self, long long token, double start, PyObject** args, size_t nargsf, PyObject* kwnames
    ):
        try:
            result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
        except BaseException as exc:
            self._settle(token, exc, None, start)
            raise
        if self._judges_results:
            self._settle(token, None, result, start)
        elif self._timed:
            self._core.settle(False, elapsed(self._clock, start), token, None)
        else:
            self._core.succeed(token)
        return result


cdef PyObject* _breaker_vectorcall(
    BreakerCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    # A user clock is read (and checked) before the permit is taken: a bad
    # reading raises with nothing held and nothing run.
    cdef double start = self._now() if self._timed or self._clock is not None else 0.0
    cdef long long token = self._core.take(None)
    if token < 0:
        if self._fallback is not None:
            result = PyObject_Vectorcall(self._fallback, args, nargsf, kwnames)
        else:
            error = _refusal(CircuitOpenError, (self._name, self._core.wait_for_permit(None)))
            PyErr_SetObject(CircuitOpenError, error)
            return NULL
    else:
        result = self._run(token, start, args, nargsf, kwnames)
    Py_INCREF(result)
    return <PyObject*>result


# What an awaited call still owes its policy: nothing yet (not awaited), an
# answer to the attempt it is making, or nothing more (it only passes on).
cdef int UNSTARTED = 0
cdef int ATTEMPT = 1
cdef int PASSING = 2
# What ``_AsyncWrapper._start`` returns when it refused the call.
cdef int REFUSED = 1


cdef class _AsyncWrapper(_Wrapper):
    """Base of the async wrappers.

    Calling one makes the function's coroutine and an ``_Awaiting`` around
    it; the policy acts when it is first awaited — never before, so an
    awaitable that is never awaited takes nothing. A subclass says what its
    policy does at each point: ``_start`` (take a permit or a token, count
    the call; it may refuse, or swap in a coroutine that waits first),
    ``_returned`` and ``_raised`` as the attempt ends (``_raised`` answers
    with a coroutine to go on with, or None to let the error stand),
    ``_abandoned`` when the caller closes the awaitable mid-attempt and
    ``_dropped`` when it is collected mid-attempt.

    A call that ``_refuses_now`` gets no coroutine yet, only its arguments:
    the coroutine would be closed unrun at the first await, and making and
    closing one costs more than the refusal itself. Should the policy let
    it through after all (its state changed before the await), ``_start``
    makes it then (``_Awaiting._coroutine``).
    """

    cdef bint _refuses_now(self) except -1:
        return False

    cdef int _start(self, _Awaiting waiting) except -1:
        waiting._stage = PASSING
        return 0

    cdef int _returned(self, _Awaiting waiting, object value) except -1:
        return 0

    cdef object _raised(self, _Awaiting waiting, object error):
        return None

    cdef int _abandoned(self, _Awaiting waiting) except -1:
        return 0

    cdef int _dropped(self, _Awaiting waiting) except -1:
        return 0


cdef int _refuse(_Awaiting waiting, object kind, object refusal) except -1:
    """Refuse an awaited call: close its coroutine, which never started (so
    nothing runs and no "never awaited" warning), and set ``refusal`` (a
    ``kind`` built by ``_refusal``) as the exception, with no traceback
    entry of ours: a refusal costs little more than the raise itself."""
    waiting._stage = PASSING
    if waiting._coro is not None:
        waiting._coro.close()
    PyErr_SetObject(kind, refusal)
    return REFUSED


cdef PyObject* _async_vectorcall(
    _AsyncWrapper self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    cdef _Awaiting waiting = _Awaiting.__new__(_Awaiting)
    waiting._call = self
    cdef bint refused = self._refuses_now()
    if not refused:
        waiting._coro = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
    if refused or self._keeps_args:
        waiting._args = positional(args, nargsf)
        waiting._kwargs = None if kwnames is NULL else keywords(args, nargsf, kwnames)
    Py_INCREF(waiting)
    return <PyObject*>waiting


@cython.final
@cython.freelist(64)
cdef class _Awaiting:
    """One awaited call of an async wrapper: its coroutine, and what its policy holds.

    Awaiting it is one C call per step (``am_send``): no Python frame and no
    StopIteration of its own.
    """

    __reduce_ex__ = refuse_copy  # a call under way is neither copied nor pickled

    def __await__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, value):
        cdef PyObject* result = NULL
        cdef int status = _awaiting_send(self, <PyObject*>value, &result)
        answer = <object>result
        Py_DECREF(answer)  # PyIter_Send gave a new reference; ``answer`` holds its own
        if status == PYGEN_NEXT:
            return answer
        raise StopIteration(answer)

    def throw(self, typ, val=None, tb=None):
        """Pass an exception (a cancellation) into the coroutine."""
        error = typ if val is None else val
        if tb is not None:
            error = error.with_traceback(tb)
        if self._stage != ATTEMPT:
            self._stage = PASSING  # not started: the policy took nothing to answer
            return self._coroutine().throw(error)
        try:
            return self._coro.throw(error)
        except StopIteration as stop:
            self._stage = PASSING
            self._call._returned(self, stop.value)
            raise
        except BaseException as exc:
            self._stage = PASSING
            resumed = self._call._raised(self, exc)
            if resumed is None:
                raise
        self._coro = resumed
        return self.send(None)

    def close(self):
        """The caller went away: close the coroutine; the policy lets go unjudged."""
        try:
            self._coroutine().close()
        finally:
            if self._stage == ATTEMPT:
                self._stage = PASSING
                self._call._abandoned(self)

    cdef object _coroutine(self):
        """The function's coroutine, made now if the call was refused at first."""
        if self._coro is None:
            fn = self._call._fn
            kwargs = {} if self._kwargs is None else self._kwargs
            self._coro = fn(*self._args, **kwargs)
        return self._coro

    def __dealloc__(self):
        # Collected mid-attempt (never closed): the policy lets go unjudged.
        if self._stage == ATTEMPT and self._call is not None:
            self._call._dropped(self)


cdef int _awaiting_send(_Awaiting self, PyObject* value, PyObject** result) except -1:
    """``am_send``: one step of the coroutine; -1 with the exception set when it raises."""
    cdef PyObject* kind
    cdef PyObject* error
    cdef PyObject* trace
    if self._stage == UNSTARTED:
        try:
            refused = self._call._start(self)
        except BaseException:
            self._stage = PASSING
            if self._coro is not None:
                self._coro.close()
            raise
        if refused:
            return -1
    status = PyIter_Send(<PyObject*>self._coro, value, result)
    if status == PYGEN_NEXT or self._stage != ATTEMPT:
        return status
    self._stage = PASSING
    if status == PYGEN_RETURN:
        self._call._returned(self, <object>result[0])
        return PYGEN_RETURN
    # The attempt raised: the policy judges the exception, then it goes on
    # unchanged — unless the policy answers with a coroutine to go on with.
    PyErr_Fetch(&kind, &error, &trace)
    PyErr_NormalizeException(&kind, &error, &trace)
    try:
        if trace is not NULL:
            (<object>error).__traceback__ = <object>trace
        resumed = self._call._raised(self, <object>error)
    except BaseException:
        Py_XDECREF(kind)
        Py_XDECREF(error)
        Py_XDECREF(trace)
        raise
    if resumed is None:
        PyErr_Restore(kind, error, trace)
        return -1
    Py_XDECREF(kind)
    Py_XDECREF(error)
    Py_XDECREF(trace)
    self._coro = resumed
    return PyIter_Send(<PyObject*>resumed, <PyObject*>None, result)


@cython.final
cdef class AsyncBreakerCall(_AsyncWrapper):
    """``async fn`` protected by a circuit breaker's core, with no fallback.

    The permit is taken when the call is first awaited; a success is
    answered in C, anything else through ``settle(token, error, None, 0.0)``.
    """

    def __init__(self, fn, BreakerCore core, name, settle, clock):
        self._fn = fn
        self._core = core
        self._name = name
        self._settle = settle
        self._clock = clock
        self._vectorcall = <vectorcallfunc>_async_vectorcall

    cdef bint _refuses_now(self) except -1:
        return self._core.refuses_now()

    cdef int _start(self, _Awaiting waiting) except -1:
        cdef long long token
        if self._clock is not None:
            read_now(self._clock, None)  # checked before the permit is taken
        token = self._core.take(None)
        if token < 0:
            return _refuse(waiting, CircuitOpenError, _refusal(
                CircuitOpenError, (self._name, self._core.wait_for_permit(None))
            ))
        if waiting._coro is None:  # refused when called, let through now
            try:
                waiting._coroutine()
            except BaseException:
                self._core.release(token)
                raise
        waiting._token = token
        waiting._stage = ATTEMPT
        return 0

    cdef int _returned(self, _Awaiting waiting, object value) except -1:
        return self._core.succeed(waiting._token)

    cdef object _raised(self, _Awaiting waiting, object error):
        self._settle(waiting._token, error, None, 0.0)
        return None

    cdef int _abandoned(self, _Awaiting waiting) except -1:
        self._settle(waiting._token, GeneratorExit(), None, 0.0)
        return 0

    cdef int _dropped(self, _Awaiting waiting) except -1:
        self._core.release(waiting._token)
        return 0


@cython.final
cdef class AsyncLimiterCall(_AsyncWrapper):
    """``async fn`` behind a token bucket: one token a call, taken when first awaited.

    Arguments as ``LimiterCall``'s, but ``pause`` is ``pause_then(seconds,
    coro)``: a coroutine that waits for a reservation (giving its token back
    if interrupted, and closing ``coro``) and then awaits ``coro``.
    """

    def __init__(self, fn, TokenBucket bucket, name, bint waits, limit, pause):
        self._fn = fn
        self._bucket = bucket
        self._name = name
        self._waits = waits
        self._limit = limit
        self._pause_then = pause
        self._vectorcall = <vectorcallfunc>_async_vectorcall

    cdef int _start(self, _Awaiting waiting) except -1:
        # A token, once taken, is never answered: the call only passes on.
        waiting._stage = PASSING
        cdef double wait = _take_token(self._bucket, self._waits, self._limit)
        if wait < 0.0:
            return _refuse(waiting, RateLimitExceeded, _rate_refusal(self._bucket, self._name))
        if wait > 0.0:
            waiting._coro = self._pause_then(wait, waiting._coro)
        return 0


@cython.final
cdef class AsyncRetryCall(_AsyncWrapper):
    """``async fn`` retried, as ``RetryCall``: the first attempt is counted in
    C; after a failure, ``resume(error, started, fn, args, kwargs)`` makes the
    coroutine of the rest, which the awaitable goes on with."""

    def __init__(self, fn, Counters counts, resume, clock):
        self._fn = fn
        self._counts = counts
        self._resume = resume
        self._clock = clock
        self._keeps_args = True
        self._vectorcall = <vectorcallfunc>_async_vectorcall

    cdef int _start(self, _Awaiting waiting) except -1:
        waiting._started = _first_attempt(self._counts, self._clock)
        waiting._stage = ATTEMPT
        return 0

    cdef int _returned(self, _Awaiting waiting, object value) except -1:
        self._counts.inc(RETRY_SUCCESSES)
        return 0

    cdef object _raised(self, _Awaiting waiting, object error):
        kwargs = {} if waiting._kwargs is None else waiting._kwargs
        resumed = self._resume(error, waiting._started, self._fn, waiting._args, kwargs)
        waiting._args = waiting._kwargs = None
        return resumed


@cython.final
cdef class LimiterCall(_Wrapper):
    """``fn`` behind a token bucket: one token a call.

    Without waits (``waits`` false) a call with no token is refused at once.
    With them, ``limit()`` gives the longest wait allowed now and
    ``pause(seconds)`` waits for a reservation (giving its token back if
    interrupted).
    """

    def __init__(self, fn, TokenBucket bucket, name, bint waits, limit, pause):
        self._fn = fn
        self._bucket = bucket
        self._name = name
        self._waits = waits
        self._limit = limit
        self._pause = pause
        self._vectorcall = <vectorcallfunc>_limiter_vectorcall


cdef PyObject* _limiter_vectorcall(
    LimiterCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    cdef double wait = _take_token(self._bucket, self._waits, self._limit)
    if wait < 0.0:
        PyErr_SetObject(RateLimitExceeded, _rate_refusal(self._bucket, self._name))
        return NULL
    if wait > 0.0:
        self._pause(wait)
    result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
    Py_INCREF(result)
    return <PyObject*>result


@cython.final
cdef class RetryCall(_Wrapper):
    """``fn`` retried: the first attempt runs here, counted in C into ``counts``
    (``_layout``'s RETRY_* indices); after a failure,
    ``resume(error, started, fn, args, kwargs)`` goes on in Python."""

    def __init__(self, fn, Counters counts, resume, clock):
        self._fn = fn
        self._counts = counts
        self._resume = resume
        self._clock = clock
        self._vectorcall = <vectorcallfunc>_retry_vectorcall


cdef PyObject* _retry_vectorcall(
    RetryCall self, PyObject** args, size_t nargsf, PyObject* kwnames
) except NULL:
    cdef double started = _first_attempt(self._counts, self._clock)
    try:
        result = PyObject_Vectorcall(self._fn, args, nargsf, kwnames)
    except BaseException as exc:
        failure = exc
    else:
        self._counts.inc(RETRY_SUCCESSES)
        Py_INCREF(result)
        return <PyObject*>result
    result = self._resume(
        failure, started, self._fn, positional(args, nargsf), keywords(args, nargsf, kwnames)
    )
    Py_INCREF(result)
    return <PyObject*>result


@cython.final
cdef class BulkheadCall(_Wrapper):
    """``fn`` holding a permit of ``core``: a free one is taken and given back
    in C; ``acquire()`` queues for one and ``release()`` hands one to a
    queued caller."""

    def __init__(self, fn, SemaphoreCore core, acquire, release):
        self._fn = fn
        self._core = core
        self._acquire = acquire
        self._release = release
        self._vectorcall = <vectorcallfunc>_bulkhead_vectorcall


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


cdef class BulkheadGate:
    """Base of ``Bulkhead``: its ``with`` / ``async with`` forms.

    Bound to a core (``_bind_core``), a free permit is taken and given back
    in C; queueing, and handing a permit to a queued caller, go through the
    policy's public ``acquire`` / ``aacquire`` / ``release``. Bound to None
    (a subclass overriding those methods, or a core of the other twin),
    every block goes through them.
    """

    def _bind_core(self, core):
        self._gate_core = core if type(core) is SemaphoreCore else None

    def __enter__(self):
        cdef bint took = False
        if self._gate_core is not None:
            with cython.critical_section(self._gate_core):
                took = self._gate_core.take_free()
        if not took:
            self.acquire()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._give_back()

    cdef int _give_back(self) except -1:
        cdef int released = 0
        if self._gate_core is not None:
            with cython.critical_section(self._gate_core):
                released = self._gate_core.give_back()
        if not released:
            self.release()  # someone is queued: hand the permit over
        return 0

    def __aenter__(self):
        cdef bint took = False
        if self._gate_core is not None:
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
(<AsyncTypeSlots*>_Awaiting).tp_as_async.am_send = <sendfunc>_awaiting_send
(<AsyncTypeSlots*>_Done).tp_iternext = _done_next
cdef _Done _DONE = _Done()


# Every async wrapper's vectorcall pointer is at the one offset of their base.
cdef AsyncBreakerCall _async_layout = AsyncBreakerCall.__new__(AsyncBreakerCall)
cdef Py_ssize_t _async_offset = <char*>&_async_layout._vectorcall - <char*><PyObject*>_async_layout
enable_vectorcall(AsyncBreakerCall, _async_offset)
enable_vectorcall(AsyncLimiterCall, _async_offset)
enable_vectorcall(AsyncRetryCall, _async_offset)
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
