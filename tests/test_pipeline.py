"""Fallback and Pipeline: replacing errors, composing policies outermost first.

Every expectation comes from docs/architecture.md ("Public API" and its forms table,
"Errors", "Fallback", "Composition, registry, metrics", and the sections of the composed
policies); counts are worked out by hand in the comments next to them. The
tests use the public API only (one looks inside to prove which twin runs).
Every test runs once on the compiled core and once on the pure one
(``policy_impl`` for the whole module), building its policies inside.

Time is a ``FakeClock`` wherever a policy takes one; the only real waits are
the Timeout tests (a 0.05 s limit) and the thread tests' barriers, which
``GUARD`` bounds so that a deadlock fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest

from resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitState,
    Fallback,
    Pipeline,
    RateLimiter,
    Retry,
    Timeout,
)
from resilience.backoff import constant
from resilience.errors import (
    BulkheadFullError,
    CircuitOpenError,
    RateLimitExceeded,
    TimeoutExceeded,
)
from resilience.testing import FakeClock

# Every test runs once on each twin of the core (``policy_impl``): the
# policies built here take their core classes from the twin it selects.
pytestmark = pytest.mark.usefixtures("policy_impl")

GUARD = 5.0  # seconds: deadlock guard for barriers and joins, never an assertion
LIMIT = 0.05  # seconds: the Timeout limit of the timeout tests


class Boom(Exception):
    """The failure the protected functions raise."""


class Other(Exception):
    """A failure no fallback here is configured for."""


class Ready:
    """An awaitable that is not a coroutine: awaiting it gives ``value`` at once."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # pragma: no cover - makes __await__ a generator


def recorder(value: Any = "fallback") -> tuple[Callable[..., Any], list[tuple[Any, ...]]]:
    """A handler returning ``value`` and the list of (exc, args, kwargs) it was called with."""
    seen: list[tuple[Any, ...]] = []

    def handler(exc: BaseException, *args: Any, **kwargs: Any) -> Any:
        seen.append((exc, args, kwargs))
        return value

    return handler, seen


class Flaky:
    """A function failing its first ``failures`` calls with Boom, then echoing its arguments."""

    def __init__(self, failures: int = 0, probe: Callable[[], Any] | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.raised: list[Boom] = []
        self.probe = probe

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            exc = Boom(f"failure {self.calls}")
            self.raised.append(exc)
            raise exc
        seen = None if self.probe is None else self.probe()
        return args, kwargs, seen


FORMS = ["call", "decorator", "acall", "async-decorator"]


def invoke(policy: Any, form: str, body: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``body(*args, **kwargs)`` through ``policy`` in one of the four call forms.

    The async forms run an ``async def`` that calls ``body``, so one body
    (and its counters) serves all four.
    """
    if form == "call":
        return policy.call(body, *args, **kwargs)
    if form == "decorator":
        return policy(body)(*args, **kwargs)

    async def abody(*a: Any, **k: Any) -> Any:
        await asyncio.sleep(0)
        return body(*a, **k)

    if form == "acall":
        return asyncio.run(policy.acall(abody, *args, **kwargs))
    assert form == "async-decorator"
    return asyncio.run(policy(abody)(*args, **kwargs))


def sleeper(clock: FakeClock, form: str) -> Callable[[float], Any]:
    """The FakeClock sleep for ``form``: Retry sleeps with a plain function in sync
    calls and with a coroutine function in async ones (docs/architecture.md, "Time")."""
    return clock.asleep if form in ("acall", "async-decorator") else clock.sleep


def raises_from(policy: Any, form: str, body: Callable[..., Any], *args: Any) -> BaseException:
    """What ``invoke`` raised (the test fails if nothing was)."""
    with pytest.raises(BaseException) as info:
        invoke(policy, form, body, *args)
    return info.value


def test_runs_on_the_twin_under_test(policy_impl):
    assert type(Fallback(lambda exc: None)._counts) is policy_impl.Counters


# ================================================================================
# Fallback
# ================================================================================


@pytest.mark.parametrize("form", FORMS)
def test_fallback_returns_handler_of_exception_and_arguments(form):
    handler, seen = recorder("replacement")
    body = Flaky(failures=1)
    fallback = Fallback(handler)
    assert invoke(fallback, form, body, 1, 2, k=3) == "replacement"
    assert body.calls == 1
    assert len(seen) == 1
    exc, args, kwargs = seen[0]
    assert exc is body.raised[0]  # the very exception the call raised
    assert args == (1, 2)
    assert kwargs == {"k": 3}


@pytest.mark.parametrize("form", FORMS)
def test_fallback_passes_values_through_without_calling_handler(form):
    handler, seen = recorder()
    assert invoke(Fallback(handler), form, Flaky(), "a", b="c") == (("a",), {"b": "c"}, None)
    assert seen == []


@pytest.mark.parametrize("form", FORMS)
def test_fallback_returns_falsy_handler_values_too(form):
    fallback = Fallback(lambda exc: None)
    assert invoke(fallback, form, Flaky(failures=1)) is None
    assert invoke(Fallback(lambda exc: 0), form, Flaky(failures=1)) == 0


class SubBoom(Boom):
    pass


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "on",
    [
        Boom,
        Exception,
        (KeyError, Boom),
        (Boom,),
        lambda exc: "failure 1" in str(exc),
    ],
    ids=["type", "base-type", "tuple", "one-tuple", "predicate"],
)
def test_fallback_replaces_what_on_selects(form, on):
    handler, seen = recorder("fb")
    body = Flaky(failures=1)
    assert invoke(Fallback(handler, on=on), form, body) == "fb"
    assert seen[0][0] is body.raised[0]


@pytest.mark.parametrize("form", FORMS)
def test_fallback_on_a_type_replaces_its_subclasses(form):
    def body() -> None:
        raise SubBoom("sub")

    handler, seen = recorder("fb")
    assert invoke(Fallback(handler, on=Boom), form, body) == "fb"
    assert type(seen[0][0]) is SubBoom


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    "on",
    [KeyError, (KeyError, LookupError), lambda exc: False, lambda exc: isinstance(exc, KeyError)],
    ids=["type", "tuple", "predicate-false", "predicate-other-type"],
)
def test_fallback_lets_other_exceptions_through_unchanged(form, on):
    error = Other("not mine")

    def body() -> None:
        raise error

    handler, seen = recorder()
    assert raises_from(Fallback(handler, on=on), form, body) is error
    assert seen == []


@pytest.mark.parametrize("form", FORMS)
def test_fallback_predicate_sees_the_exception(form):
    asked: list[BaseException] = []

    def predicate(exc: BaseException) -> bool:
        asked.append(exc)
        return isinstance(exc, Boom)

    body = Flaky(failures=1)
    assert invoke(Fallback(lambda exc: "fb", on=predicate), form, body) == "fb"
    assert asked == body.raised


NEVER_REPLACED = [asyncio.CancelledError, KeyboardInterrupt, SystemExit]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", NEVER_REPLACED, ids=lambda k: k.__name__)
@pytest.mark.parametrize(
    "on",
    [BaseException, (BaseException,), lambda exc: True],
    ids=["BaseException", "tuple", "predicate"],
)
def test_fallback_never_replaces_cancellation_or_interrupts(form, kind, on):
    error = kind()

    def body() -> None:
        raise error

    handler, seen = recorder()
    fallback = Fallback(handler, on=on)
    if form in ("call", "decorator"):
        assert raises_from(fallback, form, body) is error
    else:

        async def abody() -> None:
            raise error

        async def main() -> BaseException | None:
            run = fallback.acall(abody) if form == "acall" else fallback(abody)()
            try:
                await run
            except BaseException as exc:  # the test inspects it
                return exc
            return None

        assert asyncio.run(main()) is error
    assert seen == []


def test_fallback_never_replaces_a_real_task_cancellation():
    handler, seen = recorder()
    fallback = Fallback(handler, on=BaseException)
    entered = []

    @fallback
    async def slow() -> str:
        entered.append(True)
        await asyncio.sleep(60)
        return "done"

    async def main() -> None:
        task = asyncio.ensure_future(slow())
        while not entered:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())
    assert seen == []


def test_fallback_async_handler_result_is_awaited():
    got: list[tuple[Any, ...]] = []

    async def handler(exc: BaseException, *args: Any, **kwargs: Any) -> str:
        got.append((exc, args, kwargs))
        await asyncio.sleep(0)
        return "from coroutine"

    async def body(x: int, *, y: int) -> str:
        raise Boom("x")

    fallback = Fallback(handler)
    assert asyncio.run(fallback.acall(body, 1, y=2)) == "from coroutine"
    assert asyncio.run(fallback(body)(3, y=4)) == "from coroutine"
    assert [(type(e), a, k) for e, a, k in got] == [(Boom, (1,), {"y": 2}), (Boom, (3,), {"y": 4})]


def test_fallback_async_call_awaits_any_awaitable_and_returns_plain_values():
    async def body() -> str:
        raise Boom("x")

    assert asyncio.run(Fallback(lambda exc: Ready("awaited")).acall(body)) == "awaited"
    assert asyncio.run(Fallback(lambda exc: "plain").acall(body)) == "plain"
    assert asyncio.run(Fallback(lambda exc: ["a", "list"])(body)()) == ["a", "list"]


def test_fallback_sync_call_returns_the_handler_value_as_it_is():
    ready = Ready("never awaited")

    def body() -> None:
        raise Boom("x")

    assert Fallback(lambda exc: ready).call(body) is ready
    assert Fallback(lambda exc: ready)(body)() is ready


def test_fallback_handler_errors_propagate_as_raised():
    problem = Other("handler failed")

    def handler(exc: BaseException) -> None:
        raise problem

    def body() -> None:
        raise Boom("x")

    with pytest.raises(Other) as info:
        Fallback(handler).call(body)
    assert info.value is problem


def test_fallback_decorates_def_keeping_metadata():
    fallback = Fallback(lambda exc, x: -x)

    def double(x: int) -> int:
        """Twice x, or -x when it fails."""
        if x < 0:
            raise Boom("negative")
        return 2 * x

    wrapped = fallback(double)
    assert wrapped.__name__ == "double"
    assert wrapped.__doc__ == "Twice x, or -x when it fails."
    assert wrapped.__qualname__ == double.__qualname__
    assert wrapped.__module__ == double.__module__
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped(4) == 8
    assert wrapped(-3) == 3


def test_fallback_decorates_async_def_keeping_metadata():
    fallback = Fallback(lambda exc, x: -x)

    async def double(x: int) -> int:
        """Twice x, asynchronously."""
        await asyncio.sleep(0)
        if x < 0:
            raise Boom("negative")
        return 2 * x

    wrapped = fallback(double)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "double"
    assert wrapped.__doc__ == "Twice x, asynchronously."
    assert wrapped.__qualname__ == double.__qualname__
    assert asyncio.run(wrapped(4)) == 8
    assert asyncio.run(wrapped(-3)) == 3


def test_fallback_decorates_methods():
    def handler(exc: BaseException, self: Any, x: int) -> tuple[str, str, int]:
        return ("fallback", self.tag, x)

    fallback = Fallback(handler)

    class Service:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        @fallback
        def get(self, x: int) -> tuple[str, str, int]:
            if x < 0:
                raise Boom("negative")
            return ("value", self.tag, x)

        @fallback
        async def aget(self, x: int) -> tuple[str, str, int]:
            if x < 0:
                raise Boom("negative")
            return ("value", self.tag, x)

    a, b = Service("a"), Service("b")
    assert a.get(1) == ("value", "a", 1)
    assert b.get(-1) == ("fallback", "b", -1)
    assert Service.get(a, -2) == ("fallback", "a", -2)
    assert asyncio.run(a.aget(2)) == ("value", "a", 2)
    assert asyncio.run(b.aget(-2)) == ("fallback", "b", -2)


@pytest.mark.parametrize("form", FORMS)
def test_fallback_passes_keywords_named_fn_and_self(form):
    handler, seen = recorder("fb")
    fallback = Fallback(handler)
    ok = invoke(fallback, form, Flaky(), 1, fn="F", self="S")
    assert ok == ((1,), {"fn": "F", "self": "S"}, None)
    assert invoke(fallback, form, Flaky(failures=1), 2, fn="G", self="T") == "fb"
    assert seen[0][1:] == ((2,), {"fn": "G", "self": "T"})


@pytest.mark.parametrize("handler", [None, 42, "handler", object()], ids=repr)
def test_fallback_handler_must_be_callable(handler):
    with pytest.raises(TypeError, match="handler"):
        Fallback(handler)


@pytest.mark.parametrize(
    "on",
    [42, "ValueError", None, (ValueError, 42), (ValueError, "KeyError"), int, object, ValueError()],
    ids=repr,
)
def test_fallback_on_must_be_exception_types_or_a_predicate(on):
    # ``int`` and ``object`` are types but not exception types; an exception
    # instance is not a type; none of them is what ``on`` takes.
    with pytest.raises(TypeError, match="on"):
        Fallback(lambda exc: None, on=on)


@pytest.mark.parametrize("name", [1, b"fb", ["fb"], 1.5], ids=repr)
def test_fallback_name_must_be_a_string(name):
    with pytest.raises(TypeError, match="name"):
        Fallback(lambda exc: None, name=name)


def test_fallback_keeps_its_name():
    assert Fallback(lambda exc: None, name="fb").name == "fb"
    assert Fallback(lambda exc: None).name is None


def test_fallback_decorating_a_non_callable_is_a_type_error():
    with pytest.raises(TypeError):
        Fallback(lambda exc: None)(42)


# ================================================================================
# Pipeline: order (outermost first)
# ================================================================================


@pytest.mark.parametrize("form", FORMS)
def test_fallback_outside_retry_outside_breaker(policy_impl, form):
    """Pipeline(Fallback, Retry(3), CircuitBreaker(failure_threshold=2)).

    attempt 1: the breaker lets it through, it fails  -> consecutive failures 1
    attempt 2: the breaker lets it through, it fails  -> 2: the breaker trips
    attempt 3: the breaker refuses: CircuitOpenError  -> attempts are used up,
    so the retry re-raises it and the fallback returns its value.
    """
    clock = FakeClock()
    handler, seen = recorder("fallback value")
    retry = Retry(3, sleep=sleeper(clock, form), clock=clock)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    body = Flaky(failures=99)
    pipeline = Pipeline(Fallback(handler), retry, breaker)

    assert invoke(pipeline, form, body, "arg", k="kw") == "fallback value"
    assert body.calls == 2
    assert breaker.state is CircuitState.OPEN
    assert breaker.stats.total_failures == 2
    assert breaker.stats.rejected == 1
    stats = retry.stats
    counts = (stats.calls, stats.attempts, stats.retries, stats.successes, stats.failures)
    assert counts == (1, 3, 2, 0, 1)
    ((exc, args, kwargs),) = seen
    assert isinstance(exc, CircuitOpenError)
    assert args == ("arg",)
    assert kwargs == {"k": "kw"}


@pytest.mark.parametrize("form", FORMS)
def test_retry_gives_up_when_breaker_retry_after_passes_its_deadline(policy_impl, form):
    """Retry(5, constant(1), deadline=10) outside CircuitBreaker(failure_threshold=2, reset 30).

    t=0 attempt 1 fails, wait 1; t=1 attempt 2 fails and trips the breaker
    (open until t=31), wait 1; t=2 attempt 3 is refused with retry_after
    31 - 2 = 29 s, which is not below the 10 - 2 = 8 s left of the deadline:
    the retry gives up (attempts were not used up) and the fallback answers.
    """
    clock = FakeClock()
    handler, seen = recorder("fallback value")
    retry = Retry(5, backoff=constant(1.0), deadline=10.0, sleep=sleeper(clock, form), clock=clock)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    body = Flaky(failures=99)

    result = invoke(Pipeline(Fallback(handler), retry, breaker), form, body)
    assert result == "fallback value"
    assert body.calls == 2
    assert clock() == 2.0  # two waits of 1 s; the 29 s one never started
    assert retry.stats.attempts == 3
    assert retry.stats.failures == 1
    exc = seen[0][0]
    assert isinstance(exc, CircuitOpenError)
    assert exc.retry_after == 29.0
    assert breaker.stats.rejected == 1


@pytest.mark.parametrize("form", FORMS)
def test_retry_outside_breaker_waits_the_breakers_retry_after(policy_impl, form):
    """Retry(4, constant(1)) outside CircuitBreaker(failure_threshold=2, reset 30).

    t=0 fail, wait 1; t=1 fail, trip (open until 31), wait 1; t=2 refused
    with retry_after 29, which sets the wait; t=31 the breaker lets a probe
    through, the body (third call) succeeds and the breaker closes.
    """
    clock = FakeClock()
    retry = Retry(4, backoff=constant(1.0), sleep=sleeper(clock, form), clock=clock)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    body = Flaky(failures=2)

    assert invoke(Pipeline(retry, breaker), form, body, 7) == ((7,), {}, None)
    assert body.calls == 3
    assert clock() == 31.0
    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats.rejected == 1
    stats = retry.stats
    assert (stats.attempts, stats.retries, stats.successes, stats.failures) == (4, 3, 1, 0)


@pytest.mark.parametrize("form", FORMS)
def test_breaker_outside_retry_counts_one_failure_per_call(policy_impl, form):
    """Pipeline(CircuitBreaker(failure_threshold=2), Retry(3)): the retry is inside.

    call 1: three attempts fail, the breaker sees one failure   (body calls 3)
    call 2: three more attempts fail, second failure: trips     (body calls 6)
    call 3: refused by the breaker; the retry never starts      (body calls 6)
    """
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30.0, clock=clock)
    retry = Retry(3, backoff=constant(1.0), sleep=sleeper(clock, form), clock=clock)
    body = Flaky(failures=99)
    pipeline = Pipeline(breaker, retry)

    first = raises_from(pipeline, form, body)
    assert first is body.raised[2]  # the last attempt's own exception
    assert body.calls == 3
    assert breaker.stats.total_failures == 1
    assert breaker.stats.consecutive_failures == 1
    assert breaker.state is CircuitState.CLOSED

    assert raises_from(pipeline, form, body) is body.raised[5]
    assert body.calls == 6
    assert breaker.stats.total_failures == 2
    assert breaker.state is CircuitState.OPEN

    assert isinstance(raises_from(pipeline, form, body), CircuitOpenError)
    assert body.calls == 6
    assert breaker.stats.rejected == 1
    assert retry.stats.calls == 2
    assert retry.stats.attempts == 6


@pytest.mark.parametrize("form", FORMS)
def test_bulkhead_outside_or_inside_a_breaker_decides_who_sees_the_refusal(policy_impl, form):
    """A full bulkhead inside a breaker is a failure to the breaker; outside, the
    breaker is never reached."""
    inner = Bulkhead(1)
    assert inner.try_acquire()  # held by the test: full
    breaker_outer = CircuitBreaker(failure_threshold=5)
    body = Flaky()
    assert isinstance(raises_from(Pipeline(breaker_outer, inner), form, body), BulkheadFullError)
    assert breaker_outer.stats.total_failures == 1
    assert body.calls == 0

    breaker_inner = CircuitBreaker(failure_threshold=5)
    assert isinstance(raises_from(Pipeline(inner, breaker_inner), form, body), BulkheadFullError)
    assert breaker_inner.stats.total_failures == 0
    assert breaker_inner.stats.consecutive_failures == 0
    assert body.calls == 0
    inner.release()
    assert inner.active == 0


# ================================================================================
# Pipeline(CircuitBreaker, RateLimiter, Bulkhead, Retry): forms, arguments, stats
# ================================================================================


def full_pipeline(
    clock: FakeClock, form: str = "call", *, rate: float = 10.0, threshold: int = 5
) -> Any:
    breaker = CircuitBreaker(failure_threshold=threshold, reset_timeout=30.0, clock=clock)
    limiter = RateLimiter(rate, clock=clock)
    bulkhead = Bulkhead(2)
    retry = Retry(3, backoff=constant(1.0), sleep=sleeper(clock, form), clock=clock)
    return Pipeline(breaker, limiter, bulkhead, retry), breaker, limiter, bulkhead, retry


@pytest.mark.parametrize("form", FORMS)
def test_full_pipeline_passes_arguments_and_values(policy_impl, form):
    clock = FakeClock()
    pipeline, breaker, limiter, bulkhead, retry = full_pipeline(clock, form)
    body = Flaky(failures=1, probe=lambda: bulkhead.active)

    result = invoke(pipeline, form, body, 1, (2,), fn="F", self="S", k=None)
    # The value comes back; the body held the bulkhead's permit while it ran.
    assert result == ((1, (2,)), {"fn": "F", "self": "S", "k": None}, 1)
    assert body.calls == 2  # failed once, retried once

    # Retry innermost: two attempts, one wait of 1 s.
    stats = retry.stats
    counts = (stats.calls, stats.attempts, stats.retries, stats.successes, stats.failures)
    assert counts == (1, 2, 1, 1, 0)
    assert clock() == 1.0
    # Everything outside the retry saw one call, which succeeded.
    assert breaker.stats.total_failures == 0
    assert breaker.stats.consecutive_failures == 0
    assert breaker.stats.calls == 1
    assert breaker.state is CircuitState.CLOSED
    assert limiter.stats.allowed == 1
    assert limiter.stats.rejected == 0
    assert bulkhead.stats.acquired == 1
    assert bulkhead.active == 0


@pytest.mark.parametrize("form", FORMS)
def test_full_pipeline_failures_and_refusals(policy_impl, form):
    """failure_threshold=2; every attempt fails.

    call 1: 3 attempts fail; breaker failures 1; limiter allowed 1; bulkhead acquired 1
    call 2: 3 attempts fail; breaker failures 2 -> OPEN; allowed 2; acquired 2
    call 3: CircuitOpenError from the outermost member: nothing inside runs.
    """
    clock = FakeClock()
    pipeline, breaker, limiter, bulkhead, retry = full_pipeline(clock, form, threshold=2)
    body = Flaky(failures=99)

    assert raises_from(pipeline, form, body) is body.raised[-1]
    assert raises_from(pipeline, form, body) is body.raised[-1]
    assert body.calls == 6
    assert breaker.state is CircuitState.OPEN
    assert breaker.stats.total_failures == 2
    assert isinstance(raises_from(pipeline, form, body), CircuitOpenError)
    assert body.calls == 6
    assert breaker.stats.rejected == 1
    assert limiter.stats.allowed == 2
    assert bulkhead.stats.acquired == 2
    assert bulkhead.active == 0
    assert retry.stats.calls == 2
    assert retry.stats.failures == 2


@pytest.mark.parametrize("form", FORMS)
def test_full_pipeline_rate_limit_refusal_is_a_breaker_failure(policy_impl, form):
    """RateLimiter(1) (burst 1, no time passes): the second call is refused inside
    the breaker, which counts RateLimitExceeded (an Exception) as a failure;
    the bulkhead and the retry inside it never see the second call."""
    clock = FakeClock()
    pipeline, breaker, limiter, bulkhead, retry = full_pipeline(clock, form, rate=1.0)
    body = Flaky()
    assert invoke(pipeline, form, body, "x") == (("x",), {}, None)
    refused = raises_from(pipeline, form, body, "y")
    assert isinstance(refused, RateLimitExceeded)
    assert refused.retry_after == 1.0  # one token at one a second
    assert body.calls == 1
    assert limiter.stats.allowed == 1
    assert limiter.stats.rejected == 1
    assert breaker.stats.total_failures == 1
    assert bulkhead.stats.acquired == 1
    assert retry.stats.calls == 1


def test_full_pipeline_decorates_def_and_async_def_keeping_metadata(policy_impl):
    clock = FakeClock()
    pipeline = full_pipeline(clock)[0]

    def fetch(x: int, *, y: int = 0) -> int:
        """Fetch x + y."""
        return x + y

    async def afetch(x: int, *, y: int = 0) -> int:
        """Fetch x + y later."""
        await asyncio.sleep(0)
        return x + y

    wrapped = pipeline(fetch)
    awrapped = pipeline(afetch)
    assert not inspect.iscoroutinefunction(wrapped)
    assert inspect.iscoroutinefunction(awrapped)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__doc__ == "Fetch x + y."
    assert wrapped.__qualname__ == fetch.__qualname__
    assert awrapped.__name__ == "afetch"
    assert awrapped.__doc__ == "Fetch x + y later."
    assert awrapped.__qualname__ == afetch.__qualname__
    assert wrapped(1, y=2) == 3
    assert asyncio.run(awrapped(3, y=4)) == 7


@pytest.mark.parametrize("outermost_retry", [False, True], ids=["breaker-first", "retry-first"])
def test_pipeline_decorates_methods(policy_impl, outermost_retry):
    clock = FakeClock()
    pipeline, breaker, limiter, bulkhead, retry = full_pipeline(clock)  # retries are sync
    if outermost_retry:
        pipeline = Pipeline(*reversed(pipeline.policies))

    class Service:
        def __init__(self, tag: str) -> None:
            self.tag = tag
            self.fail_next = False

        @pipeline
        def get(self, x: int, *, fn: str = "-") -> tuple[str, int, str]:
            if self.fail_next:
                self.fail_next = False
                raise Boom("once")
            return (self.tag, x, fn)

        @pipeline
        async def aget(self, x: int, *, fn: str = "-") -> tuple[str, int, str]:
            await asyncio.sleep(0)
            return (self.tag, x, fn)

    a, b = Service("a"), Service("b")
    assert a.get(1) == ("a", 1, "-")
    b.fail_next = True
    assert b.get(2, fn="kw") == ("b", 2, "kw")  # retried once
    assert Service.get(a, 3) == ("a", 3, "-")
    assert asyncio.run(a.aget(4, fn="x")) == ("a", 4, "x")
    assert asyncio.run(b.aget(5)) == ("b", 5, "-")
    # Five calls, one of them retried once: six attempts. Outside the retry each
    # member sees the five calls; inside it, the six attempts.
    seen_by_members = 6 if outermost_retry else 5
    assert breaker.stats.calls == seen_by_members
    assert limiter.stats.allowed == seen_by_members
    assert bulkhead.stats.acquired == seen_by_members
    assert breaker.stats.total_failures == (1 if outermost_retry else 0)
    assert retry.stats.attempts == 6


@pytest.mark.parametrize("form", FORMS)
def test_pipeline_exceptions_pass_through_unchanged(policy_impl, form):
    error = Other("mine")

    def body() -> None:
        raise error

    clock = FakeClock()
    bulkhead = Bulkhead(1)
    pipeline = Pipeline(
        Fallback(lambda exc: "fb", on=KeyError),
        CircuitBreaker(clock=clock),
        bulkhead,
        Retry(2, on=KeyError, sleep=sleeper(clock, form), clock=clock),
    )
    assert raises_from(pipeline, form, body) is error
    assert bulkhead.active == 0


@pytest.mark.parametrize("form", FORMS)
def test_breaker_fallback_inside_pipeline_gets_keywords_named_self(policy_impl, form):
    """An open breaker with a fallback returns fallback(*args, **kwargs) — every keyword."""
    seen: list[tuple[Any, ...]] = []

    def fallback(*args: Any, **kwargs: Any) -> str:
        seen.append((args, kwargs))
        return "breaker fallback"

    breaker = CircuitBreaker(failure_threshold=1, fallback=fallback, clock=FakeClock())
    breaker.force_open()
    result = invoke(Pipeline(breaker, Bulkhead(1)), form, Flaky(), 1, self="S", fn="F")
    assert result == "breaker fallback"
    assert seen == [((1,), {"self": "S", "fn": "F"})]


# ================================================================================
# with / async with
# ================================================================================


def run_with(pipeline: Any, use_async: bool, body: Callable[[], Any]) -> Any:
    """Run ``body()`` inside ``with pipeline:`` or ``async with pipeline:``."""
    if not use_async:
        with pipeline:
            return body()

    async def main() -> Any:
        async with pipeline:
            await asyncio.sleep(0)
            return body()

    return asyncio.run(main())


WITH = [False, True]
WITH_IDS = ["with", "async-with"]


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_with_enters_every_member(policy_impl, use_async):
    clock = FakeClock()
    bulkhead = Bulkhead(1)
    limiter = RateLimiter(5, clock=clock)
    pipeline = Pipeline(bulkhead, limiter)

    inside = run_with(pipeline, use_async, lambda: (bulkhead.active, limiter.available))
    assert inside == (1, 4.0)  # the permit held, one token of five taken
    assert bulkhead.active == 0
    assert limiter.available == 4.0  # no time passed: the token stays taken
    assert limiter.stats.allowed == 1
    assert bulkhead.stats.acquired == 1


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_with_block_exception_propagates_and_the_permit_comes_back(policy_impl, use_async):
    clock = FakeClock()
    bulkhead = Bulkhead(1)
    breaker = CircuitBreaker(failure_threshold=5, clock=clock)
    pipeline = Pipeline(bulkhead, RateLimiter(5, clock=clock), breaker)
    error = Boom("in the block")

    def body() -> None:
        assert bulkhead.active == 1
        raise error

    with pytest.raises(Boom) as info:
        run_with(pipeline, use_async, body)
    assert info.value is error
    assert bulkhead.active == 0
    assert breaker.stats.total_failures == 1
    # The permit really is free again.
    assert run_with(pipeline, use_async, lambda: bulkhead.active) == 1
    assert bulkhead.active == 0


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_with_enters_members_in_order(policy_impl, use_async):
    clock = FakeClock()
    # Bulkhead first: it is entered (and given back) before the limiter refuses.
    bulkhead = Bulkhead(1)
    limiter = RateLimiter(1, clock=clock)
    assert limiter.try_acquire()  # no token left
    with pytest.raises(RateLimitExceeded):
        run_with(Pipeline(bulkhead, limiter), use_async, lambda: None)
    assert bulkhead.stats.acquired == 1
    assert bulkhead.active == 0

    # Limiter first: it grants its token before the full bulkhead refuses.
    limiter2 = RateLimiter(5, clock=clock)
    full = Bulkhead(1)
    assert full.try_acquire()
    with pytest.raises(BulkheadFullError):
        run_with(Pipeline(limiter2, full), use_async, lambda: None)
    assert limiter2.stats.allowed == 1
    assert full.active == 1  # still only the test's permit
    full.release()


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_with_leaves_members_in_reverse_order(policy_impl, use_async):
    """Pipeline(Bulkhead, CircuitBreaker(failure_threshold=1)): the breaker is left
    first, so it trips while the bulkhead's permit is still held."""
    bulkhead = Bulkhead(1)
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())
    held_at_transition: list[int] = []
    breaker.on_state_change(lambda b, old, new: held_at_transition.append(bulkhead.active))

    def body() -> None:
        raise Boom("trip")

    with pytest.raises(Boom):
        run_with(Pipeline(bulkhead, breaker), use_async, body)
    assert breaker.state is CircuitState.OPEN
    assert held_at_transition == [1]
    assert bulkhead.active == 0


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_with_refused_entry_gives_back_what_earlier_members_took(policy_impl, use_async):
    bulkhead = Bulkhead(2)
    breaker = CircuitBreaker(failure_threshold=5, clock=FakeClock())
    breaker.force_open()
    with pytest.raises(CircuitOpenError):
        run_with(Pipeline(bulkhead, breaker), use_async, lambda: None)
    assert bulkhead.active == 0
    assert bulkhead.stats.acquired == 1


@pytest.mark.parametrize(
    "member",
    [lambda: Retry(), lambda: Fallback(lambda exc: None)],
    ids=["Retry", "Fallback"],
)
def test_with_needs_every_member_to_have_the_form(policy_impl, member):
    ran: list[bool] = []
    for pipeline in (Pipeline(member()), Pipeline(Bulkhead(1), member())):
        with pytest.raises(TypeError), pipeline:
            ran.append(True)

        async def main(pipeline: Any = pipeline) -> None:
            async with pipeline:
                ran.append(True)

        with pytest.raises(TypeError):
            asyncio.run(main())
    assert ran == []


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_with_a_mixed_pipeline_leaks_no_permit(policy_impl, use_async):
    bulkhead = Bulkhead(1)
    nested = Pipeline(bulkhead, Pipeline(Retry()))
    with pytest.raises(TypeError):
        run_with(nested, use_async, lambda: None)
    with pytest.raises(TypeError):
        run_with(Pipeline(bulkhead, Retry()), use_async, lambda: None)
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


def test_timeout_pipeline_has_async_with_only():
    pipeline = Pipeline(Timeout(1.0))
    ran: list[bool] = []
    with pytest.raises(TypeError), pipeline:
        ran.append(True)
    assert ran == []

    async def main() -> str:
        async with pipeline:
            await asyncio.sleep(0)
            return "inside"

    assert asyncio.run(main()) == "inside"


def test_async_with_timeout_pipeline_times_out_and_returns_the_permit(policy_impl):
    bulkhead = Bulkhead(1)
    pipeline = Pipeline(bulkhead, Timeout(LIMIT))

    async def main() -> None:
        with pytest.raises(TimeoutExceeded):
            async with pipeline:
                await asyncio.sleep(1.0)
        assert bulkhead.active == 0

    asyncio.run(main())
    assert bulkhead.active == 0
    assert bulkhead.try_acquire()


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_nested_with_blocks_each_leave_with_their_own_state(policy_impl, use_async):
    """Pipeline(CircuitBreaker(failure_threshold=3), Bulkhead(2), RateLimiter(5)).

    outer block: permit 1, token 1; inner block: permit 2, token 2; the inner
    block fails (one failure, consecutive 1) and gives permit 2 back; the
    outer block succeeds, which resets the consecutive count to 0.
    """
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    bulkhead = Bulkhead(2)
    limiter = RateLimiter(5, clock=clock)
    pipeline = Pipeline(breaker, bulkhead, limiter)
    seen: list[Any] = []

    def inner() -> None:
        seen.append(("inner", bulkhead.active, limiter.available))
        raise Boom("inner")

    def outer_sync() -> None:
        seen.append(("outer", bulkhead.active))
        with pytest.raises(Boom), pipeline:
            inner()
        seen.append(("between", bulkhead.active, breaker.stats.consecutive_failures))

    async def outer_async() -> None:
        async with pipeline:
            seen.append(("outer", bulkhead.active))
            with pytest.raises(Boom):
                async with pipeline:
                    inner()
            seen.append(("between", bulkhead.active, breaker.stats.consecutive_failures))

    if use_async:
        asyncio.run(outer_async())
    else:
        with pipeline:
            outer_sync()
    assert seen == [("outer", 1), ("inner", 2, 3.0), ("between", 1, 1)]
    assert bulkhead.active == 0
    assert breaker.stats.total_failures == 1
    assert breaker.stats.consecutive_failures == 0
    assert breaker.stats.calls == 2
    assert limiter.stats.allowed == 2


def test_with_from_several_threads_at_once(policy_impl):
    """Four threads hold the pipeline at once; two of them fail in their block."""
    n = 4
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=10, clock=clock)
    bulkhead = Bulkhead(n)
    limiter = RateLimiter(100, clock=clock)
    pipeline = Pipeline(breaker, bulkhead, limiter)
    all_in = threading.Barrier(n, timeout=GUARD)
    looked = threading.Barrier(n, timeout=GUARD)
    inside: list[int] = []
    errors: dict[int, BaseException | None] = {}

    def work(i: int) -> None:
        try:
            with pipeline:
                all_in.wait()
                inside.append(bulkhead.active)
                looked.wait()
                if i % 2:
                    raise Boom(f"thread {i}")
        except BaseException as exc:  # checked below
            errors[i] = exc
        else:
            errors[i] = None

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
        assert not thread.is_alive(), "thread still blocked (deadlock?)"
    assert inside == [n] * n
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], Boom) and str(errors[1]) == "thread 1"
    assert isinstance(errors[3], Boom) and str(errors[3]) == "thread 3"
    assert bulkhead.active == 0
    assert bulkhead.stats.acquired == n
    assert limiter.stats.allowed == n
    assert breaker.stats.total_failures == 2
    assert breaker.stats.calls == n


def test_async_with_from_several_tasks_at_once(policy_impl):
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=10, clock=clock)
    bulkhead = Bulkhead(3)
    pipeline = Pipeline(breaker, bulkhead, RateLimiter(10, clock=clock))
    inside: list[int] = []

    async def task(i: int, go: asyncio.Event) -> int:
        async with pipeline:
            inside.append(i)
            await go.wait()
            if i == 1:
                raise Boom("task 1")
            return i

    async def main() -> list[Any]:
        go = asyncio.Event()
        tasks = [asyncio.ensure_future(task(i, go)) for i in range(3)]
        while len(inside) < 3:
            await asyncio.sleep(0)
        assert bulkhead.active == 3
        go.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert results[0] == 0 and results[2] == 2
    assert isinstance(results[1], Boom)
    assert bulkhead.active == 0
    assert breaker.stats.total_failures == 1
    assert breaker.stats.calls == 3


# ================================================================================
# Timeout inside a pipeline
# ================================================================================


@pytest.mark.parametrize("form", ["acall", "async-decorator"])
@pytest.mark.parametrize("timeout_first", [False, True], ids=["bulkhead-first", "timeout-first"])
def test_timeout_in_pipeline_never_loses_the_permit(policy_impl, form, timeout_first):
    bulkhead = Bulkhead(1)
    members = [bulkhead, Timeout(LIMIT)]
    pipeline = Pipeline(*(reversed(members) if timeout_first else members))
    reached: list[bool] = []

    async def slow() -> str:
        reached.append(True)
        await asyncio.sleep(1.0)
        return "too late"

    async def quick() -> str:
        return "quick"

    run = pipeline.acall if form == "acall" else (lambda f: pipeline(f)())
    with pytest.raises(TimeoutExceeded):
        asyncio.run(run(slow))
    assert reached == [True]
    assert bulkhead.active == 0
    # The single permit is there for the next call.
    assert asyncio.run(run(quick)) == "quick"
    assert bulkhead.active == 0


@pytest.mark.parametrize("form", ["call", "decorator"])
def test_sync_timeout_in_pipeline_returns_the_permit(policy_impl, form):
    bulkhead = Bulkhead(1)
    pipeline = Pipeline(bulkhead, Timeout(LIMIT))
    release = threading.Event()

    def blocked() -> str:
        release.wait(GUARD)
        return "too late"

    try:
        with pytest.raises(TimeoutExceeded):
            if form == "call":
                pipeline.call(blocked)
            else:
                pipeline(blocked)()
        assert bulkhead.active == 0
    finally:
        release.set()  # lets the worker thread finish
    assert pipeline.call(lambda x: x * 2, 21) == 42
    assert bulkhead.active == 0


def test_fallback_replaces_a_timeout_inside_the_pipeline(policy_impl):
    bulkhead = Bulkhead(1)
    handler, seen = recorder("in time")
    pipeline = Pipeline(Fallback(handler, on=TimeoutExceeded), bulkhead, Timeout(LIMIT))

    async def slow(x: int) -> str:
        await asyncio.sleep(1.0)
        return "too late"

    assert asyncio.run(pipeline.acall(slow, 5)) == "in time"
    assert isinstance(seen[0][0], TimeoutExceeded)
    assert seen[0][1] == (5,)
    assert bulkhead.active == 0


# ================================================================================
# Nesting, the empty pipeline, bad arguments, repr
# ================================================================================


@pytest.mark.parametrize("form", FORMS)
def test_pipeline_nested_in_a_pipeline(policy_impl, form):
    """Fallback around (Retry(2) around CircuitBreaker): two attempts each fail
    and each is a breaker failure; the retry gives up; the fallback answers."""
    clock = FakeClock()
    handler, seen = recorder("nested fallback")
    breaker = CircuitBreaker(failure_threshold=5, clock=clock)
    retry = Retry(2, backoff=constant(1.0), sleep=sleeper(clock, form), clock=clock)
    pipeline = Pipeline(Fallback(handler), Pipeline(retry, breaker))
    body = Flaky(failures=99)

    assert invoke(pipeline, form, body, 1, k=2) == "nested fallback"
    assert body.calls == 2
    assert breaker.stats.total_failures == 2
    assert retry.stats.attempts == 2
    assert seen[0][0] is body.raised[1]
    assert seen[0][1:] == ((1,), {"k": 2})
    # And success passes through all of it.
    assert invoke(pipeline, form, Flaky(), 3) == ((3,), {}, None)


@pytest.mark.parametrize("use_async", WITH, ids=WITH_IDS)
def test_pipeline_nested_in_a_pipeline_with(policy_impl, use_async):
    outer_bulkhead, inner_bulkhead = Bulkhead(1), Bulkhead(1)
    pipeline = Pipeline(outer_bulkhead, Pipeline(inner_bulkhead, RateLimiter(3, clock=FakeClock())))
    inside = run_with(pipeline, use_async, lambda: (outer_bulkhead.active, inner_bulkhead.active))
    assert inside == (1, 1)
    assert (outer_bulkhead.active, inner_bulkhead.active) == (0, 0)


@pytest.mark.parametrize("form", FORMS)
def test_empty_pipeline_just_calls_the_function(form):
    body = Flaky()
    result = invoke(Pipeline(), form, body, 1, fn="F", self="S")
    assert result == ((1,), {"fn": "F", "self": "S"}, None)
    assert body.calls == 1
    failing = Flaky(failures=1)
    assert raises_from(Pipeline(), form, failing) is failing.raised[0]


def test_empty_pipeline_decorator_and_with():
    pipeline = Pipeline()

    def f(x: int) -> int:
        """Doc."""
        return x + 1

    async def af(x: int) -> int:
        return x + 2

    assert pipeline(f)(1) == 2
    assert pipeline(f).__name__ == "f"
    assert inspect.iscoroutinefunction(pipeline(af))
    assert asyncio.run(pipeline(af)(1)) == 3
    # No member lacks a form, so both are there.
    assert run_with(pipeline, False, lambda: "sync") == "sync"
    assert run_with(pipeline, True, lambda: "async") == "async"


@pytest.mark.parametrize(
    "bad",
    [None, 42, "retry", lambda fn: fn, CircuitBreaker, functools.partial(print), object()],
    ids=["None", "int", "str", "decorator-function", "policy-class", "partial", "object"],
)
def test_pipeline_takes_only_policies(bad):
    with pytest.raises(TypeError):
        Pipeline(bad)
    with pytest.raises(TypeError):
        Pipeline(Retry(), bad)


def test_pipeline_decorating_a_non_callable_is_a_type_error():
    with pytest.raises(TypeError):
        Pipeline(Retry())(42)


def test_pipeline_repr_lists_members_in_order(policy_impl):
    clock = FakeClock()
    breaker = CircuitBreaker("payments", clock=clock)
    retry = Retry(2, name="again")
    bulkhead = Bulkhead(3, name="pool")
    inner = Pipeline(bulkhead)
    text = repr(Pipeline(breaker, retry, inner))
    positions = [text.find(repr(member)) for member in (breaker, retry, bulkhead)]
    assert -1 not in positions, text
    assert positions == sorted(positions), text
    assert text.startswith("Pipeline(")
    assert repr(Pipeline()) == "Pipeline()"


# -- stats ---------------------------------------------------------------------------


def test_fallback_stats_count_calls_and_replacements(policy_impl):
    from resilience import FallbackStats

    fallback = Fallback(lambda exc, *args: "spare", on=KeyError, name="fb")

    def fails(exc: BaseException) -> Any:
        raise exc

    assert fallback.call(lambda: "ok") == "ok"
    assert fallback.call(fails, KeyError("k")) == "spare"
    with pytest.raises(ValueError):
        fallback.call(fails, ValueError("v"))  # not one of `on`: not replaced
    with pytest.raises(KeyboardInterrupt):
        fallback.call(fails, KeyboardInterrupt())  # never replaced

    async def afails() -> None:
        raise KeyError("a")

    assert asyncio.run(fallback.acall(afails)) == "spare"
    assert fallback.stats == FallbackStats("fb", calls=5, fallbacks=2)


def test_pipeline_stats_are_its_members_stats_outermost_first(policy_impl):
    fallback = Fallback(lambda exc: None)
    breaker = CircuitBreaker("b")
    pipeline = Pipeline(fallback, breaker, name="p")
    pipeline.call(lambda: 1)
    stats = pipeline.stats
    assert stats.name == "p"
    with pytest.raises(AttributeError):
        stats.name = "q"  # type: ignore[misc]  # a frozen snapshot
    outer, inner = stats.members
    assert outer == fallback.stats and outer.calls == 1
    assert inner == breaker.stats and inner.total_calls == 1
