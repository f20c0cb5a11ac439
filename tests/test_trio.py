"""The async policies on asyncio and on Trio: every test below runs under both
(anyio's pytest plugin, ``anyio_backend``), and the decorator tests on both twins.

Cancellation is made with cancel scopes (``anyio.move_on_after`` and
``CancelScope.cancel()``), which under Trio are Trio's own and raise
``trio.Cancelled``: never a failure, never retried, every permit given back.
What stays asyncio-only (``HealthChecker.astart``) must say so under Trio.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio

from resilience import (
    AdaptiveRateLimiter,
    Bulkhead,
    BulkheadFullError,
    Chaos,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Fallback,
    HealthCheck,
    HealthChecker,
    Pipeline,
    RateLimiter,
    RateLimitExceeded,
    Retry,
    Timeout,
    TimeoutExceeded,
    chaos,
    deadline,
    remaining,
)
from resilience.backoff import constant
from resilience.testing import FakeClock, instant

pytestmark = pytest.mark.anyio

LONG = 30.0  # a wait no test makes to its end: it is cancelled, refused or woken first
SHORT = 0.01  # a real wait a test does make to its end


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test here runs on asyncio and on Trio."""
    return str(request.param)


class Boom(Exception):
    pass


class Counted:
    """An async function's calls, counted; the function raises ``Boom`` for the first ``fails``."""

    def __init__(self) -> None:
        self.calls = 0


def counted(fails: int = 0, value: Any = "ok") -> Any:
    """An async function (as decorators detect one) that counts its calls in ``.calls``."""
    count = Counted()

    async def fn(*args: Any) -> Any:
        count.calls += 1
        if count.calls <= fails:
            raise Boom(f"#{count.calls}")
        await anyio.sleep(0)  # a checkpoint, as real async work has
        return value

    fn.count = count  # type: ignore[attr-defined]
    return fn


async def hang() -> None:
    """Async work that ends only by cancellation."""
    await anyio.sleep(LONG)


async def cancelled_midway(call: Callable[[], Awaitable[Any]]) -> None:
    """Run ``call`` and cancel it from outside once it is suspended (a cancel scope's cancel)."""
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:

            async def cancel_soon() -> None:
                await anyio.sleep(SHORT)
                scope.cancel()

            group.start_soon(cancel_soon)
            await call()
    assert scope.cancelled_caught


def test_importing_and_running_on_asyncio_imports_neither_trio_nor_sniffio() -> None:
    # Waits and sleeps are the only places the running library is asked about.
    code = """if True:
        import asyncio, sys
        from resilience import Bulkhead, RateLimiter, Retry, Timeout
        from resilience.backoff import constant
        from resilience.testing import FakeClock

        async def main():
            bulkhead = Bulkhead(1, max_queue=1, max_wait=0.001)
            async with bulkhead:
                try:
                    await bulkhead.aacquire()
                except Exception:
                    pass
            clock = FakeClock()
            limiter = RateLimiter(1, per=1, max_wait=5, clock=clock, sleep=clock.asleep)
            await limiter.aacquire()
            await limiter.aacquire()
            retry = Retry(2, backoff=constant(0.001), on=ValueError)
            try:
                await retry.acall(asyncio.sleep, -1, 0)
            except TypeError:
                pass
            async with Timeout(1):
                await asyncio.sleep(0)

        asyncio.run(main())
        print(sorted(m for m in ("trio", "sniffio") if m in sys.modules))
    """
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# -- Retry ---------------------------------------------------------------------------


async def test_retry_decorator_retries_with_real_backoff(
    anyio_backend: str, policy_impl: Any
) -> None:
    fn = counted(fails=2)
    retry = Retry(3, backoff=constant(SHORT))
    assert await retry(fn)() == "ok"
    assert fn.count.calls == 3
    assert (retry.stats.attempts, retry.stats.retries, retry.stats.successes) == (3, 2, 1)


async def test_retry_acall_backoff_sleeps_through_fake_clock(anyio_backend: str) -> None:
    clock = FakeClock()
    fn = counted(fails=3)
    retry = Retry(4, backoff=constant(LONG), sleep=clock.asleep)
    assert await retry.acall(fn) == "ok"
    assert clock() == 3 * LONG  # three waits, made on the fake clock only


async def test_retry_async_for_block(anyio_backend: str) -> None:
    fn = counted(fails=1)
    results = []
    async for attempt in Retry(3, backoff=constant(SHORT)):
        with attempt:
            results.append(await fn())
    assert results == ["ok"]
    assert fn.count.calls == 2


async def test_retry_in_instant_mode_makes_every_attempt_without_waiting(
    anyio_backend: str,
) -> None:
    fn = counted(fails=4)
    with instant():
        # 4 backoffs of LONG: only instant mode lets this end (the per-test timeout would not).
        assert await Retry(5, backoff=constant(LONG)).acall(fn) == "ok"
    assert fn.count.calls == 5


async def test_a_cancelled_attempt_is_never_retried_nor_a_failure(
    anyio_backend: str, policy_impl: Any
) -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await hang()

    retry = Retry(5, backoff=constant(0.0))
    await cancelled_midway(retry(slow))
    assert calls == 1
    assert (retry.stats.attempts, retry.stats.retries, retry.stats.failures) == (1, 0, 0)


async def test_a_cancelled_backoff_ends_the_retries(anyio_backend: str) -> None:
    fn = counted(fails=10)
    retry = Retry(5, backoff=constant(LONG))
    await cancelled_midway(lambda: retry.acall(fn))
    assert fn.count.calls == 1  # cancelled in the first backoff: no second attempt


async def test_a_deadline_bounds_the_retries(anyio_backend: str) -> None:
    fn = counted(fails=10)
    with deadline(SHORT), pytest.raises(Boom):
        # Backoffs of LONG would pass the deadline: it gives up instead of waiting.
        await Retry(5, backoff=constant(LONG)).acall(fn)
    assert fn.count.calls == 1


# -- CircuitBreaker -------------------------------------------------------------------


async def test_breaker_forms_count_failures_and_trip(anyio_backend: str, policy_impl: Any) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=LONG)
    fn = counted(fails=3)
    with pytest.raises(Boom):
        await breaker(fn)()
    with pytest.raises(Boom):
        await breaker.acall(fn)
    with pytest.raises(Boom):
        async with breaker:
            await fn()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        await breaker.acall(fn)
    assert fn.count.calls == 3


@pytest.mark.parametrize("form", ["decorator", "acall", "async with"])
async def test_a_cancelled_call_gives_the_breaker_permit_back_unjudged(
    anyio_backend: str, policy_impl: Any, form: str
) -> None:
    # Half open with one probe: the cancelled probe's permit must come back,
    # or the next call would be refused.
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, minimum_calls=1, reset_timeout=1.0, half_open_calls=1, clock=clock
    )
    with pytest.raises(Boom):
        await breaker.acall(counted(fails=1))
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN

    async def block() -> None:
        async with breaker:
            await hang()

    call = {
        "decorator": breaker(hang),
        "acall": lambda: breaker.acall(hang),
        "async with": block,
    }[form]
    await cancelled_midway(call)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.stats.total_failures == 1  # the first failure only
    assert await breaker.acall(counted()) == "ok"  # the probe's permit is free again
    assert breaker.state is CircuitState.CLOSED


# -- RateLimiter and AdaptiveRateLimiter --------------------------------------------------


@pytest.mark.parametrize("make", [RateLimiter, AdaptiveRateLimiter])
async def test_limiter_reservation_sleeps_on_a_fake_clock(
    anyio_backend: str, policy_impl: Any, make: Any
) -> None:
    clock = FakeClock()
    # Its rate may not rise above 1 (it would on successes): the waits stay 10 s.
    extra = {"min_rate": 0.5, "max_rate": 1.0} if make is AdaptiveRateLimiter else {}
    limiter = make(1, per=10, max_wait=LONG, clock=clock, sleep=clock.asleep, **extra)
    fn = counted()
    assert await limiter(fn)() == "ok"  # the burst's token
    assert clock() == 0.0
    assert await limiter.acall(fn) == "ok"  # reserved: a sleep of 10 s on the fake clock
    assert clock() == 10.0
    async with limiter:
        assert clock() == 20.0
    assert limiter.stats.allowed == 3


async def test_limiter_waits_in_real_time(anyio_backend: str, policy_impl: Any) -> None:
    limiter = RateLimiter(1, per=SHORT, max_wait=1.0)
    fn = limiter(counted())
    for _ in range(3):  # the 2nd and 3rd wait for their tokens
        assert await fn() == "ok"
    assert limiter.stats.allowed == 3


@pytest.mark.parametrize("form", ["decorator", "acall", "aacquire"])
async def test_a_cancelled_reservation_is_refunded(
    anyio_backend: str, policy_impl: Any, form: str
) -> None:
    clock = FakeClock()
    # The clock's reading is fake, the sleep real: the reservation's wait of
    # 10 s (real) is cancelled long before its end.
    limiter = RateLimiter(1, per=10, max_wait=LONG, clock=clock)
    fn = counted()
    await limiter.acall(fn)  # the burst's token
    call = {
        "decorator": limiter(fn),
        "acall": lambda: limiter.acall(fn),
        "aacquire": limiter.aacquire,
    }[form]
    await cancelled_midway(call)
    assert fn.count.calls == 1
    assert limiter.stats.refunded == 1
    clock.advance(10.0)  # one token more: there for a new call, as nobody holds it
    assert limiter.try_acquire()


async def test_a_cancelled_call_is_not_a_failure_of_the_adaptive_limiter(
    anyio_backend: str,
) -> None:
    limiter = AdaptiveRateLimiter(10, min_rate=1, max_rate=10, decrease=0.5)
    await cancelled_midway(lambda: limiter.acall(hang))
    assert limiter.rate == 10
    with pytest.raises(Boom):
        await limiter.acall(counted(fails=1))
    assert limiter.rate == 5  # a real failure does lower it


async def test_a_deadline_bounds_a_limiter_wait(anyio_backend: str) -> None:
    limiter = RateLimiter(1, per=LONG, max_wait=LONG)
    await limiter.aacquire()
    with deadline(SHORT), pytest.raises(RateLimitExceeded):
        await limiter.aacquire()  # its token comes after the deadline: refused at once


# -- Bulkhead ---------------------------------------------------------------------------


async def test_bulkhead_waiters_are_woken_by_releases_in_order(
    anyio_backend: str, policy_impl: Any
) -> None:
    bulkhead = Bulkhead(1, max_queue=3, max_wait=LONG)
    order: list[int] = []
    go = anyio.Event()

    async def worker(i: int) -> None:
        order.append(i)
        if i == 0:
            await go.wait()

    forms = [bulkhead(worker), lambda i: bulkhead.acall(worker, i)]

    async def in_block(i: int) -> None:
        async with bulkhead:
            await worker(i)

    forms.append(in_block)
    async with anyio.create_task_group() as group:
        group.start_soon(forms[0], 0)
        await wait_until(lambda: bulkhead.active == 1)
        for i in range(1, 4):
            group.start_soon(forms[i % 3], i)
            await wait_until(lambda i=i: bulkhead.waiting == i)
        assert order == [0]
        go.set()
    assert order == [0, 1, 2, 3]
    assert (bulkhead.active, bulkhead.waiting, bulkhead.stats.acquired) == (0, 0, 4)


async def test_a_release_from_another_thread_wakes_a_waiter(anyio_backend: str) -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=LONG)
    bulkhead.acquire()  # held by "another thread": released from one below

    def release_when_queued() -> None:
        while bulkhead.waiting == 0:
            threading.Event().wait(0.001)
        bulkhead.release()

    thread = threading.Thread(target=release_when_queued)
    thread.start()
    try:
        async with bulkhead:
            assert bulkhead.active == 1
    finally:
        thread.join()
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)


async def test_a_bulkhead_wait_runs_out(anyio_backend: str) -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=SHORT)
    async with bulkhead:
        with pytest.raises(BulkheadFullError):
            await bulkhead.acall(counted())
        assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    assert bulkhead.stats.rejected == 1


async def test_a_deadline_bounds_a_bulkhead_wait(anyio_backend: str) -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=LONG)
    async with bulkhead:
        with deadline(SHORT), pytest.raises(BulkheadFullError):
            await bulkhead.aacquire()  # the per-test timeout says if the deadline is missed
        assert bulkhead.waiting == 0


@pytest.mark.parametrize("form", ["decorator", "acall", "async with"])
async def test_cancelled_holders_and_waiters_give_their_places_back(
    anyio_backend: str, policy_impl: Any, form: str
) -> None:
    bulkhead = Bulkhead(1, max_queue=1, max_wait=LONG)

    async def block() -> None:
        async with bulkhead:
            await hang()

    call = {
        "decorator": bulkhead(hang),
        "acall": lambda: bulkhead.acall(hang),
        "async with": block,
    }[form]
    await cancelled_midway(call)  # cancelled holding the permit
    assert bulkhead.active == 0
    async with bulkhead:
        await cancelled_midway(call)  # cancelled in the queue
        assert (bulkhead.active, bulkhead.waiting) == (1, 0)
    assert bulkhead.try_acquire()


async def wait_until(condition: Callable[[], bool]) -> None:
    """Yield to other tasks until ``condition()`` holds (the per-test timeout bounds it)."""
    while not condition():
        await anyio.sleep(0.001)


# -- Timeout and deadline() -----------------------------------------------------------------


@pytest.mark.parametrize("form", ["decorator", "acall", "async with"])
async def test_timeout_expires_with_timeout_exceeded(anyio_backend: str, form: str) -> None:
    timeout = Timeout(SHORT)

    async def block() -> None:
        async with timeout:
            await hang()

    call = {"decorator": timeout(hang), "acall": lambda: timeout.acall(hang), "async with": block}
    with pytest.raises(TimeoutExceeded):
        await call[form]()
    assert await timeout.acall(counted()) == "ok"
    assert (timeout.stats.calls, timeout.stats.timeouts) == (2, 1)


async def test_timeout_cancels_work_with_tasks_of_its_own(anyio_backend: str) -> None:
    # Under Trio the cancels reach the work wrapped in an exception group:
    # still this Timeout's own, so still TimeoutExceeded.
    async def fan_out() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(hang)
            group.start_soon(hang)

    with pytest.raises(TimeoutExceeded):
        await Timeout(SHORT).acall(fan_out)


async def test_an_outer_cancel_is_not_a_timeout(anyio_backend: str) -> None:
    timeout = Timeout(LONG)
    await cancelled_midway(lambda: timeout.acall(hang))
    assert timeout.stats.timeouts == 0


async def test_an_inner_cancel_scope_of_the_work_is_its_own(anyio_backend: str) -> None:
    async def gives_up() -> str:
        with anyio.move_on_after(0):
            await hang()
        return "gave up"

    assert await Timeout(LONG).acall(gives_up) == "gave up"


async def test_a_deadline_bounds_a_timeout_and_reaches_child_tasks(anyio_backend: str) -> None:
    seen: list[float] = []

    async def child() -> None:
        seen.append(remaining())

    with deadline(SHORT):
        async with anyio.create_task_group() as group:
            group.start_soon(child)
        with pytest.raises(TimeoutExceeded):
            await Timeout(LONG).acall(hang)
    assert 0.0 <= seen[0] <= SHORT
    assert remaining() == math.inf


# -- Fallback, Chaos, Pipeline ----------------------------------------------------------------


async def test_fallback_replaces_failures_but_not_cancellation(
    anyio_backend: str, policy_impl: Any
) -> None:
    handled: list[BaseException] = []

    def handler(error: BaseException) -> str:
        handled.append(error)
        return "fallback"

    fallback = Fallback(handler)
    assert await fallback(counted(fails=1))() == "fallback"
    await cancelled_midway(lambda: fallback.acall(hang))
    assert len(handled) == 1 and isinstance(handled[0], Boom)
    assert fallback.stats.fallbacks == 1


async def test_chaos_latency_and_errors(anyio_backend: str) -> None:
    clock = FakeClock()
    slow = Chaos(chaos.latency(LONG), enabled=True, clock=clock, sleep=clock.asleep)
    assert await slow(counted())() == "ok"
    assert clock() == LONG
    real = Chaos(chaos.latency(SHORT), chaos.error(Boom), enabled=True)
    with pytest.raises(Boom):
        await real.acall(counted())
    assert (real.stats.latency, real.stats.error) == (1, 1)


async def test_cancelled_chaos_latency_is_no_injection_of_an_error(anyio_backend: str) -> None:
    flaky = Chaos(chaos.latency(LONG), chaos.error(Boom), enabled=True)
    fn = counted()
    await cancelled_midway(lambda: flaky.acall(fn))
    assert fn.count.calls == 0


def pipeline() -> tuple[Pipeline, CircuitBreaker, RateLimiter, Bulkhead, Retry]:
    breaker = CircuitBreaker(failure_threshold=5)
    limiter = RateLimiter(1000)
    bulkhead = Bulkhead(1, max_queue=1, max_wait=LONG)
    retry = Retry(3, backoff=constant(SHORT))
    return (
        Pipeline(breaker, limiter, bulkhead, retry, Timeout(LONG)),
        breaker,
        limiter,
        bulkhead,
        retry,
    )


async def test_pipeline_retries_and_settles(anyio_backend: str, policy_impl: Any) -> None:
    chain, breaker, _, bulkhead, retry = pipeline()
    assert await chain(counted(fails=2))() == "ok"
    assert bulkhead.active == 0
    block = Pipeline(breaker, bulkhead, Timeout(LONG))  # Retry has no ``async with`` form
    async with block:
        assert bulkhead.active == 1
    assert bulkhead.active == 0
    assert retry.stats.retries == 2
    assert breaker.stats.failures == 0  # the retries succeeded within it


async def test_a_cancelled_pipeline_call_gives_everything_back(
    anyio_backend: str, policy_impl: Any
) -> None:
    chain, breaker, limiter, bulkhead, retry = pipeline()
    await cancelled_midway(lambda: chain.acall(hang))
    assert (bulkhead.active, bulkhead.waiting) == (0, 0)
    assert (breaker.stats.calls, breaker.stats.failures) == (0, 0)
    assert (retry.stats.attempts, retry.stats.failures) == (1, 0)
    assert limiter.stats.allowed == 1
    assert await chain.acall(counted()) == "ok"


# -- FakeClock.asleep ------------------------------------------------------------------------


async def test_fake_asleep_advances_and_is_a_checkpoint(anyio_backend: str) -> None:
    clock = FakeClock()
    with anyio.CancelScope() as scope:
        scope.cancel()
        # A turn of the loop, where a pending cancel lands (asyncio's or Trio's).
        await clock.asleep(5.0)
        pytest.fail("asleep did not yield to the loop")
    assert scope.cancelled_caught
    assert clock() == 5.0


# -- Trio's own cancel scopes, and what stays asyncio-only ----------------------------------------


def test_trio_move_on_after_and_cancel_give_permits_back() -> None:
    bulkhead = Bulkhead(1)
    breaker = CircuitBreaker(failure_threshold=1, minimum_calls=1)
    retry = Retry(3, backoff=constant(0.0))
    guarded = breaker(bulkhead(retry(hang)))

    async def main() -> None:
        with trio.move_on_after(SHORT) as scope:
            await guarded()
        assert scope.cancelled_caught
        with trio.CancelScope() as scope:
            scope.cancel()
            await guarded()
        assert scope.cancelled_caught

    trio.run(main)
    assert bulkhead.active == 0
    assert breaker.state is CircuitState.CLOSED
    assert (breaker.stats.calls, breaker.stats.failures) == (0, 0)
    assert (retry.stats.attempts, retry.stats.retries, retry.stats.failures) == (2, 0, 0)


def test_health_checker_astart_says_it_needs_asyncio_under_trio() -> None:
    checker = HealthChecker([HealthCheck("up", lambda: True, interval=LONG)])

    async def main() -> None:
        with pytest.raises(RuntimeError, match="asyncio only, not under Trio"):
            await checker.astart()
        with pytest.raises(RuntimeError, match="asyncio only, not under Trio"):
            await checker.arun_once()

    trio.run(main)


def test_a_redis_async_call_says_it_needs_asyncio_under_trio(redis_url: str) -> None:
    from resilience.redis import RedisBulkhead, RedisRateLimiter, RedisStore

    store = RedisStore.from_url(redis_url)
    limiter = RedisRateLimiter(store, "trio", 10)
    bulkhead = RedisBulkhead(store, "trio", 2)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="asyncio only, not under Trio"):
            await limiter.adecide()
        with pytest.raises(RuntimeError, match="asyncio only, not under Trio"):
            await bulkhead.aacquire()

    try:
        trio.run(main)
    finally:
        store.close()


def test_a_health_checks_arun_says_it_needs_asyncio_under_trio() -> None:
    from resilience import HealthCheck

    check = HealthCheck("db", lambda: True)

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"HealthCheck\.arun runs on asyncio only"):
            await check.arun()

    trio.run(main)
    assert check.runs == 0
