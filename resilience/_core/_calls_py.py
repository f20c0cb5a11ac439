"""Per-call wrappers of the policies, pure-Python twins of ``_calls_c.pyx``.

Each is built from explicit arguments — the core object, the callbacks for
the slow paths, the flags — and does in Python what its compiled twin does
in C: the fast path of a call here, judgement through the callbacks.
"""

from __future__ import annotations

from types import MethodType
from typing import Any

from ._clock_py import elapsed, read_now
from ._errors import CircuitOpenError, RateLimitExceeded
from ._layout import RETRY_ATTEMPTS, RETRY_CALLS, RETRY_SUCCESSES
from ._nocopy import NoCopy


class _Wrapper:
    """What the wrappers share: the function, binding like a function, a repr."""

    __slots__ = ("__dict__", "_fn")
    _fn: Any

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        # Bind like a function, so decorated methods receive ``self``.
        return self if obj is None else MethodType(self, obj)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._fn!r}>"

    def __reduce__(self) -> str:
        # As a function: pickled by reference (its module and qualified
        # name), so a decorated module-level function crosses to worker
        # processes; copying gives the object itself.
        return str(self.__qualname__)  # type: ignore[attr-defined]


class BreakerCall(_Wrapper):
    """``fn`` protected by a circuit breaker's core.

    ``settle(token, error, result, start)`` answers a permit whenever the
    outcome needs judging; ``fallback`` (or None) answers refused calls.
    """

    __slots__ = ("_clock", "_core", "_fallback", "_judges_results", "_name", "_settle", "_timed")

    def __init__(
        self,
        fn: Any,
        core: Any,
        name: str | None,
        fallback: Any,
        settle: Any,
        clock: Any,
        timed: bool,
        judges_results: bool,
    ) -> None:
        self._fn = fn
        self._core = core
        self._name = name
        self._fallback = fallback
        self._settle = settle
        self._clock = clock
        self._timed = timed
        self._judges_results = judges_results

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        core = self._core
        clock = self._clock
        # A user clock is read (and checked) before the permit is taken: a bad
        # reading raises with nothing held and nothing run.
        start = read_now(clock, None) if self._timed or clock is not None else 0.0
        token = core.acquire()
        if token < 0:
            if self._fallback is not None:
                return self._fallback(*args, **kwargs)
            raise CircuitOpenError.__new__(CircuitOpenError, self._name, core.retry_after())
        try:
            result = self._fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(token, exc, None, start)
            raise
        if self._judges_results:
            self._settle(token, None, result, start)
        elif self._timed:
            core.record_success(elapsed(clock, start), None, token)
        else:
            core.record_success(0.0, None, token)
        return result


class _Awaiting(NoCopy):
    """One awaited call of an async wrapper: ``run``, the coroutine of the
    policy's part, around ``coro``, the function's coroutine.

    Closing it before it ran closes ``coro`` too, as the compiled twin's
    does: a coroutine that never started cannot close what it was given, so
    a refusal by an outer wrapper would leave ``coro`` never awaited.
    """

    __slots__ = ("_coro", "_steps")

    def __init__(self, run: Any, coro: Any) -> None:
        self._coro = coro
        self._steps = run.__await__()

    def __await__(self) -> Any:
        return self._steps

    def send(self, value: Any) -> Any:
        return self._steps.send(value)

    def throw(self, *error: Any) -> Any:
        return self._steps.throw(*error)

    def close(self) -> None:
        self._steps.close()
        self._coro.close()


class AsyncBreakerCall(_Wrapper):
    """``async fn`` protected by a circuit breaker's core, with no fallback.

    Calling it makes the function's coroutine and an awaitable around it
    that takes the permit when first awaited (never before: an awaitable
    never awaited holds nothing) and answers it when the coroutine ends: a
    success here, anything else through ``settle(token, error, None, 0.0)``.
    A call made while the breaker refuses makes its coroutine only if it is
    let through when awaited.
    """

    __slots__ = ("_clock", "_core", "_name", "_settle")

    def __init__(self, fn: Any, core: Any, name: str | None, settle: Any, clock: Any) -> None:
        self._fn = fn
        self._core = core
        self._name = name
        self._settle = settle
        self._clock = clock

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        if self._core.refuses_now():
            # No coroutine yet, only the arguments, as in the compiled twin:
            # it would be closed unrun, at a cost greater than the refusal's.
            return self._run(None, args, kwargs)
        coro = self._fn(*args, **kwargs)
        return _Awaiting(self._run(coro), coro)

    async def _run(
        self, coro: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        core = self._core
        if self._clock is not None:
            # Checked before the permit is taken: a bad reading raises with nothing held.
            try:
                read_now(self._clock, None)
            except BaseException:
                if coro is not None:
                    coro.close()
                raise
        token = core.acquire()
        if token < 0:
            if coro is not None:
                coro.close()  # never started: nothing runs, no "never awaited" warning
            raise CircuitOpenError.__new__(CircuitOpenError, self._name, core.retry_after())
        if coro is None:  # refused when called, let through now
            try:
                coro = self._fn(*args, **(kwargs or {}))
            except BaseException:
                core.release(token)
                raise
        try:
            result = await coro
        except BaseException as exc:
            self._settle(token, exc, None, 0.0)
            raise
        core.record_success(0.0, None, token)
        return result


class LimiterCall(_Wrapper):
    """``fn`` behind a token bucket: one token a call.

    Without waits (``waits`` false) a call with no token is refused at once.
    With them, ``limit()`` gives the longest wait allowed now and
    ``pause(seconds)`` waits for a reservation (giving its token back if
    interrupted).
    """

    __slots__ = ("_bucket", "_limit", "_name", "_pause", "_waits")

    def __init__(
        self, fn: Any, bucket: Any, name: str | None, waits: bool, limit: Any, pause: Any
    ) -> None:
        self._fn = fn
        self._bucket = bucket
        self._name = name
        self._waits = waits
        self._limit = limit
        self._pause = pause

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        bucket = self._bucket
        wait = bucket.reserve(1.0, self._limit() if self._waits else 0.0)
        if wait < 0.0:
            raise RateLimitExceeded.__new__(RateLimitExceeded, self._name, bucket.wait_time(1.0))
        if wait > 0.0:
            self._pause(wait)
        return self._fn(*args, **kwargs)


class AsyncLimiterCall(LimiterCall):
    """``async fn`` behind a token bucket: one token a call, taken when first awaited.

    Arguments as ``LimiterCall``'s, but ``pause`` is ``pause_then(seconds,
    coro)``: a coroutine that waits for a reservation (giving its token back
    if interrupted, and closing ``coro``) and then awaits ``coro``.
    """

    __slots__ = ()

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        coro = self._fn(*args, **kwargs)
        return _Awaiting(self._run(coro), coro)

    async def _run(self, coro: Any) -> Any:
        bucket = self._bucket
        try:
            wait = bucket.reserve(1.0, self._limit() if self._waits else 0.0)
        except BaseException:
            coro.close()
            raise
        if wait < 0.0:
            coro.close()  # never started: nothing runs, no "never awaited" warning
            raise RateLimitExceeded.__new__(RateLimitExceeded, self._name, bucket.wait_time(1.0))
        if wait > 0.0:
            return await self._pause(wait, coro)
        return await coro


class RetryCall(_Wrapper):
    """``fn`` retried: the first attempt runs here, counted into ``counts``
    (``_layout``'s RETRY_* indices); after a failure,
    ``resume(error, started, fn, args, kwargs)`` goes on."""

    __slots__ = ("_clock", "_counts", "_resume")

    def __init__(self, fn: Any, counts: Any, resume: Any, clock: Any) -> None:
        self._fn = fn
        self._counts = counts
        self._resume = resume
        self._clock = clock

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        started = read_now(self._clock, None)
        counts = self._counts
        counts.add(RETRY_CALLS)
        counts.add(RETRY_ATTEMPTS)
        try:
            result = self._fn(*args, **kwargs)
        except BaseException as exc:
            failure = exc
        else:
            counts.add(RETRY_SUCCESSES)
            return result
        # Out of the except block: a later attempt's error is not chained to this one.
        return self._resume(failure, started, self._fn, args, kwargs)


class AsyncRetryCall(RetryCall):
    """``async fn`` retried, as ``RetryCall``: the first attempt is counted
    here; after a failure, ``resume(error, started, fn, args, kwargs)`` makes
    the coroutine of the rest."""

    __slots__ = ()

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        coro = self._fn(*args, **kwargs)
        return _Awaiting(self._run(coro, args, kwargs), coro)

    async def _run(self, coro: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            started = read_now(self._clock, None)
        except BaseException:
            coro.close()
            raise
        counts = self._counts
        counts.add(RETRY_CALLS)
        counts.add(RETRY_ATTEMPTS)
        try:
            result = await coro
        except BaseException as exc:
            failure = exc
        else:
            counts.add(RETRY_SUCCESSES)
            return result
        # Out of the except block: a later attempt's error is not chained to this one.
        return await self._resume(failure, started, self._fn, args, kwargs)


class BulkheadCall(_Wrapper):
    """``fn`` holding a permit of ``core``: a free one is taken and given back
    here; ``acquire()`` queues for one and ``release()`` hands one to a
    queued caller."""

    __slots__ = ("_acquire", "_core", "_release")

    def __init__(self, fn: Any, core: Any, acquire: Any, release: Any) -> None:
        self._fn = fn
        self._core = core
        self._acquire = acquire
        self._release = release

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        core = self._core
        if not core.try_acquire(False):
            self._acquire()
        try:
            return self._fn(*args, **kwargs)
        finally:
            if not core.release_unless_queued():
                self._release()


class BulkheadGate:
    """Base of ``Bulkhead``: its ``with`` / ``async with`` forms.

    Bound to a core (``_bind_core``), a free permit is taken and given back
    directly; queueing, and handing a permit to a queued caller, go through
    the policy's public ``acquire`` / ``aacquire`` / ``release``. Bound to
    None (a subclass overriding those methods), every block goes through them.
    """

    __slots__ = ("_gate_core",)

    def _bind_core(self, core: Any) -> None:
        self._gate_core = core

    def __enter__(self) -> Any:
        core = self._gate_core
        if core is None or not core.try_acquire(False):
            self.acquire()  # type: ignore[attr-defined]
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        core = self._gate_core
        if core is None or not core.release_unless_queued():
            self.release()  # type: ignore[attr-defined]

    async def __aenter__(self) -> None:
        core = self._gate_core
        if core is None or not core.try_acquire(False):
            await self.aacquire()  # type: ignore[attr-defined]

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)
