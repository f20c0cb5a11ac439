"""The fast async decorators — ``AsyncBreakerCall``, ``AsyncLimiterCall``
and ``AsyncRetryCall`` — on both twins.

The compiled twins are awaitables written in C (``am_send``), the pure ones
an awaitable around an ``async def``. Both must act only when the call is
awaited (an awaitable never awaited holds no permit or token and counts
nothing); answer a breaker's permit when the coroutine ends — a success, a
failure judged by the breaker, no outcome on cancellation or when the caller
goes away; pass results, exceptions and cancellation through unchanged; give
a reserved token back when its wait is interrupted; hand a failed first
attempt to the retry's slow path with the call's own arguments; never leave
a coroutine unawaited behind a refusal; and look like the async function
they decorate to ``inspect`` and ``asyncio``. The contract is
docs/architecture.md ("The protocol", "CircuitBreaker", "RateLimiter", "Retry").
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import types
import warnings
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Pipeline,
    RateLimiter,
    RateLimitExceeded,
    Retry,
)
from resilience.backoff import constant
from resilience.testing import FakeClock


class Boom(Exception):
    pass


@types.coroutine
def suspend() -> Generator[None, None, None]:
    """Suspend once, with no event loop: the tests below step coroutines by hand."""
    yield


@contextlib.contextmanager
def no_coroutine_left_unawaited() -> Iterator[None]:
    """Fail if a coroutine is collected never awaited (nor closed) in the block.

    The warning is issued as the coroutine is finalised, where an error
    filter could only make it an unraisable exception: so it is recorded.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    unawaited = [w for w in caught if "never awaited" in str(w.message)]
    assert not unawaited, [str(w.message) for w in unawaited]


def counts(retry: Retry) -> tuple[int, int, int, int, int]:
    s = retry.stats
    return s.calls, s.attempts, s.retries, s.successes, s.failures


async def value(x: int, *, plus: int = 0) -> int:
    return x + plus


# -- CircuitBreaker ----------------------------------------------------------------


def breaker(**settings: object) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=2, reset_timeout=1000.0, **settings)  # type: ignore[arg-type]


def half_open_with_one_probe() -> CircuitBreaker:
    """A breaker whose next permit is its only half-open probe."""
    clock = FakeClock()
    b = breaker(half_open_calls=1, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    clock.advance(1000.0)
    return b


def probe_is_free(b: CircuitBreaker) -> bool:
    """Whether the single probe permit can be taken (and gives it back)."""
    if not b.allow():
        return False
    b.release()
    return True


def test_the_breaker_wrapper_is_the_twins_own(policy_impl):
    b = breaker()

    async def f() -> int:
        return 1

    wrapped = b(f)
    assert type(wrapped) is policy_impl.AsyncBreakerCall
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "f" and wrapped.__wrapped__ is f
    assert inspect.signature(wrapped) == inspect.signature(f)


def test_breaker_results_failures_and_the_trip(policy_impl):
    b = breaker()

    @b
    async def f(x: int, *, fail: bool = False) -> int:
        await asyncio.sleep(0)  # suspends: the awaitable passes the loop's steps on
        if fail:
            raise Boom(x)
        return x * 2

    async def main() -> None:
        assert await f(3) == 6
        with pytest.raises(Boom) as raised:
            await f(1, fail=True)
        assert raised.value.args == (1,)
        assert b.state is CircuitState.CLOSED
        with pytest.raises(Boom):
            await f(2, fail=True)
        assert b.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError) as refused:
            await f(4)
        assert refused.value.retry_after == pytest.approx(1000.0, abs=1.0)

    asyncio.run(main())
    stats = b.stats
    assert (stats.total_calls, stats.total_failures, stats.rejected) == (3, 2, 1)


def test_a_refused_call_never_runs_and_warns_of_nothing(policy_impl):
    b = breaker()
    b.force_open()
    ran = []

    @b
    async def f() -> None:
        ran.append(1)

    async def main() -> None:
        with no_coroutine_left_unawaited(), pytest.raises(CircuitOpenError):
            await f()

    asyncio.run(main())
    assert ran == []


def test_a_call_never_awaited_takes_no_permit(policy_impl):
    b = half_open_with_one_probe()

    @b
    async def f() -> int:
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the coroutine is never awaited
        pending = f()
        del pending
        gc.collect()
    assert probe_is_free(b)


def test_cancellation_gives_the_permit_back_unjudged(policy_impl):
    b = half_open_with_one_probe()

    @b
    async def f(event: asyncio.Event) -> None:
        event.set()
        await asyncio.sleep(1000)

    async def main() -> None:
        event = asyncio.Event()
        task = asyncio.ensure_future(f(event))
        await event.wait()
        assert not probe_is_free(b)  # the call holds the probe
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert b.stats.total_failures == 2  # the cancelled probe is not judged
    assert b.state is CircuitState.HALF_OPEN
    assert probe_is_free(b)


def test_a_caller_closed_midway_gives_the_permit_back(policy_impl):
    b = half_open_with_one_probe()

    @b
    async def f() -> None:
        await suspend()

    async def caller() -> None:
        await f()

    outer = caller()
    outer.send(None)  # suspended inside f, holding the probe
    assert not probe_is_free(b)
    outer.close()  # the caller goes away: GeneratorExit reaches f, no outcome is judged
    assert b.stats.total_failures == 2
    assert probe_is_free(b)


def test_an_exception_thrown_in_is_judged(policy_impl):
    b = breaker()

    @b
    async def f() -> None:
        await suspend()

    async def caller() -> None:
        await f()

    outer = caller()
    outer.send(None)
    with pytest.raises(Boom):
        outer.throw(Boom("from outside"))
    assert b.stats.total_failures == 1


def test_a_value_returned_after_a_throw_is_a_success(policy_impl):
    b = breaker()

    @b
    async def f() -> str:
        try:
            await suspend()
        except Boom:
            return "recovered"
        return "slept"

    async def caller() -> str:
        return await f()

    outer = caller()
    outer.send(None)
    with pytest.raises(StopIteration) as stop:
        outer.throw(Boom())
    assert stop.value.value == "recovered"
    assert (b.stats.total_calls, b.stats.total_failures) == (1, 0)


def test_breaker_calls_bind_as_methods(policy_impl):
    b = breaker()

    class Client:
        def __init__(self) -> None:
            self.n = 5

        @b
        async def get(self, k: int) -> int:
            return self.n + k

    assert asyncio.run(Client().get(1)) == 6


def opened_with_one_probe_due_later() -> tuple[CircuitBreaker, FakeClock]:
    """An OPEN breaker whose single half-open probe is free once the clock passes 1000 s."""
    clock = FakeClock()
    b = breaker(half_open_calls=1, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record_failure()
    return b, clock


def test_a_call_made_while_open_runs_if_let_through_when_awaited(policy_impl):
    b, clock = opened_with_one_probe_due_later()
    seen = []

    @b
    async def f(x: int, *, plus: int) -> int:
        seen.append((x, plus))
        return x + plus

    pending = f(1, plus=2)  # open now: refused if it were awaited now
    clock.advance(1000.0)  # by the await, the probe is free
    assert asyncio.run(_await(pending)) == 3
    assert seen == [(1, 2)]
    assert b.state is CircuitState.CLOSED


def test_a_call_made_while_open_and_closed_unawaited_leaves_nothing(policy_impl):
    b, clock = opened_with_one_probe_due_later()

    @b
    async def f() -> None:
        raise AssertionError("never runs")

    with no_coroutine_left_unawaited():
        pending = f()
        clock.advance(1000.0)
        pending.close()
    assert probe_is_free(b)


def test_bad_arguments_found_at_the_await_give_the_probe_back(policy_impl):
    b, clock = opened_with_one_probe_due_later()

    @b
    async def f(x: int) -> int:
        return x

    pending = f(1, 2)  # type: ignore[call-arg]  # refused when called: no coroutine made yet
    clock.advance(1000.0)
    with pytest.raises(TypeError):
        asyncio.run(_await(pending))
    assert probe_is_free(b)
    assert b.stats.total_failures == 2  # the bad call is not a failure of the service


async def _await(awaitable: Any) -> Any:
    return await awaitable


# -- RateLimiter ---------------------------------------------------------------


def test_the_limiter_wrapper_is_the_twins_own(policy_impl):
    wrapped = RateLimiter(10)(value)
    assert type(wrapped) is policy_impl.AsyncLimiterCall
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "value" and wrapped.__wrapped__ is value
    assert inspect.signature(wrapped) == inspect.signature(value)
    assert asyncio.run(wrapped(1, plus=2)) == 3


def test_the_limiter_takes_a_token_only_when_awaited(policy_impl):
    limiter = RateLimiter(1, burst=1, clock=FakeClock())
    f = limiter(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # never awaited, on purpose
        pending = f(1)
        del pending
        gc.collect()
    assert limiter.available == 1.0
    assert asyncio.run(f(1)) == 1
    assert limiter.available == 0.0


def test_a_limited_call_is_refused_without_running_or_warning(policy_impl):
    limiter = RateLimiter(1, burst=1, clock=FakeClock())
    ran = []

    @limiter
    async def f() -> None:
        ran.append(1)

    async def main() -> None:
        await f()
        with no_coroutine_left_unawaited(), pytest.raises(RateLimitExceeded) as refused:
            await f()
        assert refused.value.retry_after == pytest.approx(1.0)

    asyncio.run(main())
    assert ran == [1]
    assert limiter.stats.rejected == 1


def test_a_call_waits_for_its_token_then_runs(policy_impl):
    clock = FakeClock()
    limiter = RateLimiter(1, burst=1, max_wait=5.0, clock=clock, sleep=clock.asleep)
    started = []

    @limiter
    async def f(x: int) -> int:
        started.append(clock())
        return x

    async def main() -> list[int]:
        return [await f(1), await f(2), await f(3)]

    assert asyncio.run(main()) == [1, 2, 3]
    assert started == [0.0, 1.0, 2.0]


def test_a_cancelled_wait_gives_the_token_back_and_never_runs_the_call(policy_impl):
    clock = FakeClock()
    limiter = RateLimiter(1, burst=1, max_wait=50.0, clock=clock)
    ran = []

    @limiter
    async def f() -> None:
        ran.append(1)

    async def main() -> None:
        await f()  # takes the only token: the next call must wait a second
        with no_coroutine_left_unawaited():
            task = asyncio.ensure_future(f())
            await asyncio.sleep(0)  # the task is asleep, its token reserved
            assert limiter.available == pytest.approx(-1.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(main())
    assert ran == [1]
    assert limiter.available == pytest.approx(0.0)  # the reservation came back


def test_an_outer_refusal_closes_the_inner_limited_call(policy_impl):
    """A breaker refusing outside a limiter: the limiter's awaitable, never
    started, must close the function's coroutine too."""
    breaker = CircuitBreaker()
    breaker.force_open()
    limiter = RateLimiter(10)
    ran = []

    @breaker
    @limiter
    async def f() -> None:
        ran.append(1)

    async def main() -> None:
        with no_coroutine_left_unawaited():
            for _ in range(3):
                with pytest.raises(CircuitOpenError):
                    await f()

    asyncio.run(main())
    assert ran == []
    assert limiter.available == 10.0


def test_limited_calls_run_as_tasks_and_bind_as_methods(policy_impl):
    limiter = RateLimiter(100)

    class Client:
        base = 5

        @limiter
        async def get(self, k: int) -> int:
            return self.base + k

    async def main() -> list[int]:
        client = Client()
        tasks = [asyncio.create_task(client.get(k)) for k in range(3)]
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == [5, 6, 7]


# -- Retry -------------------------------------------------------------------------


def test_the_retry_wrapper_is_the_twins_own(policy_impl):
    wrapped = Retry(3)(value)
    assert type(wrapped) is policy_impl.AsyncRetryCall
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "value" and wrapped.__wrapped__ is value
    assert asyncio.run(wrapped(1, plus=2)) == 3


def test_a_first_success_is_counted_once(policy_impl):
    retry = Retry(3)
    f = retry(value)
    assert asyncio.run(f(4)) == 4
    assert counts(retry) == (1, 1, 0, 1, 0)


def test_a_call_never_awaited_counts_nothing(policy_impl):
    retry = Retry(3)
    f = retry(value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pending = f(1)
        del pending
        gc.collect()
    assert counts(retry) == (0, 0, 0, 0, 0)


def test_a_failed_first_attempt_is_retried_with_the_same_arguments(policy_impl):
    clock = FakeClock()
    retry = Retry(3, backoff=constant(2.0), clock=clock, sleep=clock.asleep)
    seen = []

    @retry
    async def f(x: int, *, tag: str) -> str:
        seen.append((x, tag, clock()))
        if len(seen) < 3:
            raise Boom(len(seen))
        return f"{tag}{x}"

    assert asyncio.run(f(7, tag="t")) == "t7"
    assert seen == [(7, "t", 0.0), (7, "t", 2.0), (7, "t", 4.0)]
    assert counts(retry) == (1, 3, 2, 1, 0)


def test_giving_up_raises_the_last_error(policy_impl):
    retry = Retry(2, backoff=constant(0.0))
    errors = []

    @retry
    async def f() -> None:
        errors.append(Boom(len(errors)))
        raise errors[-1]

    with pytest.raises(Boom) as raised:
        asyncio.run(f())
    assert raised.value is errors[-1] and len(errors) == 2
    assert raised.value.__context__ is None  # not chained to the first attempt's error
    assert counts(retry) == (1, 2, 1, 0, 1)


def test_an_error_not_retried_passes_through_at_once(policy_impl):
    retry = Retry(5, on=KeyError)

    @retry
    async def f() -> None:
        raise Boom

    with pytest.raises(Boom):
        asyncio.run(f())
    assert counts(retry) == (1, 1, 0, 0, 1)


def test_a_cancelled_first_attempt_is_never_retried(policy_impl):
    retry = Retry(5, on=BaseException, backoff=constant(0.0))
    runs = []

    @retry
    async def f(event: asyncio.Event) -> None:
        runs.append(1)
        event.set()
        await asyncio.sleep(1000)

    async def main() -> None:
        event = asyncio.Event()
        task = asyncio.ensure_future(f(event))
        await event.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert runs == [1]
    assert counts(retry) == (1, 1, 0, 0, 0)  # neither a success nor a failure


def test_an_exception_thrown_into_the_first_attempt_is_retried(policy_impl):
    retry = Retry(3, backoff=constant(0.0))
    runs = []

    @retry
    async def f() -> str:
        runs.append(1)
        if len(runs) == 1:
            await suspend()
        return "second"

    async def caller() -> str:
        return await f()

    outer = caller()
    outer.send(None)  # the first attempt is suspended
    with pytest.raises(StopIteration) as stop:
        outer.throw(Boom("from outside"))  # fails the attempt; the retry follows
        while True:  # the backoff's sleep(0) may yield once
            outer.send(None)
    assert stop.value.value == "second"
    assert counts(retry) == (1, 2, 1, 1, 0)


def test_a_caller_closed_midway_leaves_no_coroutine_behind(policy_impl):
    retry = Retry(3)
    closed = []

    @retry
    async def f() -> None:
        try:
            await suspend()
        finally:
            closed.append(1)

    async def caller() -> None:
        await f()

    outer = caller()
    outer.send(None)
    with no_coroutine_left_unawaited():
        outer.close()
    assert closed == [1]
    assert counts(retry) == (1, 1, 0, 0, 0)


def test_retried_calls_compose_in_a_pipeline(policy_impl):
    clock = FakeClock()
    retry = Retry(3, backoff=constant(1.0), clock=clock, sleep=clock.asleep)
    limiter = RateLimiter(100, clock=clock)
    runs = []

    @Pipeline(retry, limiter)
    async def f() -> int:
        runs.append(clock())
        if len(runs) < 2:
            raise Boom
        return len(runs)

    assert asyncio.run(f()) == 2
    assert runs == [0.0, 1.0]
    assert limiter.stats.allowed == 2
