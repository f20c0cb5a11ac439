"""The async decorator of a breaker without fallback: ``AsyncBreakerCall`` on both twins.

The compiled twin is an awaitable written in C (``am_send``); the pure one an
``async def``. Both must: take the permit only when the call is awaited (an
awaitable never awaited holds nothing), answer it when the coroutine ends —
a success, a failure judged by the breaker, no outcome on cancellation or
when the caller goes away — raise the refusal while open, and look like the
async function they decorate to ``inspect`` and ``asyncio``. The contract
is docs/architecture.md ("The protocol", "CircuitBreaker").
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import types
import warnings
from collections.abc import Generator

import pytest

from resilience import CircuitBreaker, CircuitOpenError, CircuitState
from resilience.testing import FakeClock


class Boom(Exception):
    pass


@types.coroutine
def suspend() -> Generator[None, None, None]:
    """Suspend once, with no event loop: the tests below step coroutines by hand."""
    yield


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


def test_the_fast_wrapper_is_the_twins_own(policy_impl):
    b = breaker()

    async def f() -> int:
        return 1

    wrapped = b(f)
    assert type(wrapped) is policy_impl.AsyncBreakerCall
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "f" and wrapped.__wrapped__ is f
    assert inspect.signature(wrapped) == inspect.signature(f)


def test_results_failures_and_the_trip(policy_impl):
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
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "coroutine was never awaited" would fail
            with pytest.raises(CircuitOpenError):
                await f()
            gc.collect()

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


def test_methods_bind(policy_impl):
    b = breaker()

    class Client:
        def __init__(self) -> None:
            self.n = 5

        @b
        async def get(self, k: int) -> int:
            return self.n + k

    assert asyncio.run(Client().get(1)) == 6
