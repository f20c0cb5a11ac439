"""CircuitBreaker, the policy: every form, on both twins, with a FakeClock.

Every expectation comes from docs/architecture.md ("Public API", "Errors" and the
CircuitBreaker section); the tests use the public API only. Each test asks
for ``policy_impl`` and builds its breaker inside, so it runs once on the
compiled core and once on the pure one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import logging
import math
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from resilience import Bulkhead, Pipeline
from resilience.breaker import CircuitBreaker, CircuitState
from resilience.errors import CircuitOpenError, ResilienceError
from resilience.testing import FakeClock

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED

GUARD = 10.0  # seconds: a deadlock guard for thread waits, never an assertion on time


class Boom(Exception):
    """The failure the protected functions raise."""


def make(**kwargs: Any) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock(100.0)
    return CircuitBreaker(clock=clock, **kwargs), clock


def boom() -> None:
    raise Boom("down")


def ok() -> str:
    return "ok"


def trip(breaker: CircuitBreaker, failures: int = 1) -> None:
    """``failures`` failing calls through ``call``; the breaker must end OPEN."""
    for _ in range(failures):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is OPEN


# -- the forms, as runners: run the zero-argument ``body`` through the breaker --


def via_decorator(breaker: CircuitBreaker, body: Callable[[], Any]) -> Any:
    def fn() -> Any:
        return body()

    return breaker(fn)()


def via_call(breaker: CircuitBreaker, body: Callable[[], Any]) -> Any:
    return breaker.call(body)


def via_with(breaker: CircuitBreaker, body: Callable[[], Any]) -> Any:
    with breaker:
        return body()


def via_async_decorator(breaker: CircuitBreaker, body: Callable[[], Any]) -> Any:
    async def fn() -> Any:
        return body()

    return asyncio.run(breaker(fn)())


def via_acall(breaker: CircuitBreaker, body: Callable[[], Any]) -> Any:
    async def fn() -> Any:
        return body()

    return asyncio.run(breaker.acall(fn))


def via_async_with(breaker: CircuitBreaker, body: Callable[[], Any]) -> Any:
    async def main() -> Any:
        async with breaker:
            return body()

    return asyncio.run(main())


FORMS = [via_decorator, via_call, via_with, via_async_decorator, via_acall, via_async_with]
# The forms that return fallback(*args, **kwargs) while open (not the `with` ones).
FALLBACK_FORMS = {via_decorator, via_call, via_async_decorator, via_acall}


def form_id(form: Callable[..., Any]) -> str:
    return form.__name__.removeprefix("via_")


forms = pytest.mark.parametrize("form", FORMS, ids=form_id)


# -- public names -------------------------------------------------------------------


def test_breaker_names_are_importable_from_the_package(policy_impl):
    # docs/architecture.md, "Public API": what is importable from `resilience`.
    import resilience

    assert getattr(resilience, "CircuitBreaker", None) is CircuitBreaker
    assert getattr(resilience, "CircuitState", None) is CircuitState


def test_circuit_open_error_is_a_resilience_error(policy_impl):
    breaker, _ = make(name="db")
    breaker.force_open()
    with pytest.raises(ResilienceError):
        breaker.call(ok)
    unnamed, _ = make()
    unnamed.force_open()
    with pytest.raises(CircuitOpenError) as info:
        unnamed.call(ok)
    assert info.value.name is None


# -- the decorator ---------------------------------------------------------------------


def test_decorator_on_def_keeps_metadata_and_passes_arguments(policy_impl):
    breaker, _ = make()
    seen = []

    def fetch(a, b=2, *rest, key=None, **extra):
        """Fetch something."""
        seen.append((a, b, rest, key, extra))
        return a + b

    wrapped = breaker(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__qualname__ == fetch.__qualname__
    assert wrapped.__module__ == fetch.__module__
    assert wrapped.__doc__ == "Fetch something."
    assert wrapped.__wrapped__ is fetch
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped(1, 5, 6, key="k", other=3) == 6
    assert seen == [(1, 5, (6,), "k", {"other": 3})]
    assert wrapped.__call__(2) == 4
    assert breaker.stats.calls == 2


def test_decorated_function_gets_any_keyword_argument(policy_impl):
    breaker, _ = make()

    @breaker
    def fn(*args, **kwargs):
        return args, kwargs

    # names the wrapper itself might use must still reach the function
    assert fn(1, self="s", fn="f", args="a", kwargs="k") == (
        (1,),
        {"self": "s", "fn": "f", "args": "a", "kwargs": "k"},
    )
    assert breaker.stats.calls == 1


def test_decorator_on_async_def_is_a_coroutine_function_with_metadata(policy_impl):
    breaker, _ = make()

    async def load(a, *, b):
        """Load something."""
        await asyncio.sleep(0)
        return (a, b)

    wrapped = breaker(load)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "load"
    assert wrapped.__qualname__ == load.__qualname__
    assert wrapped.__doc__ == "Load something."
    assert wrapped.__wrapped__ is load
    assert asyncio.run(wrapped(1, b=2)) == (1, 2)
    assert breaker.stats.calls == 1


def test_decorator_on_instance_methods_binds_self_and_shares_the_breaker(policy_impl):
    breaker, _ = make(failure_threshold=3, fallback=lambda *a, **kw: ("fallback", a, kw))

    class Client:
        def __init__(self, label):
            self.label = label
            self.runs = 0

        @breaker
        def get(self, x, *, y=0):
            """Get x."""
            self.runs += 1
            if x < 0:
                raise Boom(self.label)
            return (self.label, x, y)

    a, b = Client("a"), Client("b")
    assert Client.get(a, 0) == ("a", 0, 0)  # through the class: self passed by hand
    assert Client.get.__name__ == "get"
    assert Client.get.__doc__ == "Get x."
    assert a.get(1, y=2) == ("a", 1, 2)
    assert b.get(3) == ("b", 3, 0)
    assert (a.runs, b.runs) == (2, 1)
    assert breaker.stats.calls == 3
    # failures on both instances add up on the one breaker
    for inst in (a, b, a):
        with pytest.raises(Boom):
            inst.get(-1)
    assert breaker.state is OPEN
    # open: the fallback gets the call's arguments, self included
    assert b.get(7, y=1) == ("fallback", (b, 7), {"y": 1})
    assert (a.runs, b.runs) == (4, 2)


def test_decorator_on_async_methods_binds_self(policy_impl):
    breaker, _ = make(failure_threshold=2)

    class Client:
        def __init__(self, label):
            self.label = label

        @breaker
        async def get(self, x):
            if x < 0:
                raise Boom(self.label)
            await asyncio.sleep(0)
            return (self.label, x)

    assert inspect.iscoroutinefunction(Client.get)
    a, b = Client("a"), Client("b")

    async def main():
        assert await a.get(1) == ("a", 1)
        assert await b.get(2) == ("b", 2)
        for inst in (a, b):
            with pytest.raises(Boom):
                await inst.get(-1)
        with pytest.raises(CircuitOpenError):
            await a.get(3)

    asyncio.run(main())
    assert breaker.state is OPEN


def test_decorating_a_non_callable_is_a_type_error(policy_impl):
    breaker, _ = make()
    for value in (42, "fn", None):
        with pytest.raises(TypeError):
            breaker(value)


# -- call / acall ----------------------------------------------------------------------


def test_call_passes_positional_and_keyword_arguments(policy_impl):
    breaker, _ = make()

    def fn(*args, **kwargs):
        return args, kwargs

    # keyword names that clash with call's own parameters still reach fn
    assert breaker.call(fn, 1, 2, fn="f", self="s", k=3) == (
        (1, 2),
        {"fn": "f", "self": "s", "k": 3},
    )
    assert breaker.stats.calls == 1


def test_acall_passes_positional_and_keyword_arguments(policy_impl):
    breaker, _ = make()

    async def fn(*args, **kwargs):
        await asyncio.sleep(0)
        return args, kwargs

    result = asyncio.run(breaker.acall(fn, 1, fn="f", self="s"))
    assert result == ((1,), {"fn": "f", "self": "s"})
    assert breaker.stats.calls == 1


# -- with / async with ---------------------------------------------------------------------


def test_with_block_records_success_and_failure(policy_impl):
    breaker, _ = make(failure_threshold=2)
    with breaker:
        pass
    assert (breaker.stats.calls, breaker.stats.failures) == (1, 0)
    with pytest.raises(Boom), breaker:
        raise Boom
    assert (breaker.stats.calls, breaker.stats.failures) == (2, 1)
    assert breaker.state is CLOSED
    with pytest.raises(Boom), breaker:
        raise Boom
    assert breaker.state is OPEN


def test_async_with_block_records_success_and_failure(policy_impl):
    breaker, _ = make(failure_threshold=2)

    async def main():
        async with breaker:
            await asyncio.sleep(0)
        assert (breaker.stats.calls, breaker.stats.failures) == (1, 0)
        for _ in range(2):
            with pytest.raises(Boom):
                async with breaker:
                    raise Boom

    asyncio.run(main())
    assert breaker.state is OPEN


def test_nested_async_with_blocks_on_one_breaker(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=1)

    async def main():
        with pytest.raises(Boom):
            async with breaker:  # a permit of the first CLOSED period
                trip(breaker)
                clock.advance(5.0)
                async with breaker:  # the probe
                    await asyncio.sleep(0)
                assert breaker.state is CLOSED
                raise Boom("late")

    asyncio.run(main())
    assert breaker.state is CLOSED
    assert breaker.stats.consecutive_failures == 0


def test_with_block_while_open_raises_and_ignores_the_fallback(policy_impl):
    fallback_calls = []
    breaker, _ = make(name="svc", fallback=lambda *a, **kw: fallback_calls.append(a))
    breaker.force_open()
    body_ran = False
    with pytest.raises(CircuitOpenError) as info, breaker:
        body_ran = True
    assert not body_ran
    assert info.value.name == "svc"
    assert fallback_calls == []


def test_async_with_block_while_open_raises_and_ignores_the_fallback(policy_impl):
    fallback_calls = []
    breaker, clock = make(
        name="svc", reset_timeout=30.0, fallback=lambda *a, **kw: fallback_calls.append(a)
    )
    trip(breaker, 5)
    clock.advance(10.0)
    body_ran = False

    async def main():
        nonlocal body_ran
        async with breaker:
            body_ran = True

    with pytest.raises(CircuitOpenError) as info:
        asyncio.run(main())
    assert not body_ran
    assert info.value.name == "svc"
    assert info.value.retry_after == 20.0
    assert fallback_calls == []


# -- the two-step form --------------------------------------------------------------------


def test_two_step_form(policy_impl):
    breaker, clock = make(failure_threshold=2, reset_timeout=5.0, half_open_calls=1)
    assert breaker.allow() is True
    breaker.record_success()
    assert breaker.allow() is True
    breaker.record_failure()
    assert breaker.stats.consecutive_failures == 1
    assert breaker.allow() is True
    breaker.release()  # no outcome
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (2, 1, 1)
    assert breaker.allow() is True
    breaker.record_failure()
    assert breaker.state is OPEN
    assert breaker.allow() is False
    assert breaker.stats.rejected == 1
    clock.advance(5.0)
    assert breaker.allow() is True  # the one probe
    assert breaker.state is HALF_OPEN
    assert breaker.allow() is False
    breaker.release()  # a released probe permit is issued again
    assert breaker.allow() is True
    breaker.record_success()
    assert breaker.state is CLOSED


def test_two_step_outcomes_apply_to_the_current_state(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=1)
    assert breaker.allow()  # taken while CLOSED, answered later
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is OPEN
    clock.advance(5.0)
    assert breaker.state is HALF_OPEN
    breaker.record_success()  # applies to HALF_OPEN: one success of one closes
    assert breaker.state is CLOSED


def test_two_step_durations_are_judged_slow(policy_impl):
    breaker, _ = make(failure_threshold=0, slow_call_duration=2.0)
    for duration in (2.0, 1.5, 0.0):
        assert breaker.allow()
        breaker.record_success(duration=duration)
    assert breaker.allow()
    breaker.record_failure(duration=3.0)
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.slow_calls) == (4, 1, 2)


# -- tripping -----------------------------------------------------------------------


def test_trips_on_failure_threshold_consecutive_failures(policy_impl):
    breaker, _ = make(failure_threshold=3)
    for _ in range(3):  # F F S: never three in a row
        for _ in range(2):
            with pytest.raises(Boom):
                breaker.call(boom)
        assert breaker.stats.consecutive_failures == 2
        assert breaker.call(ok) == "ok"
        assert breaker.stats.consecutive_failures == 0
    assert breaker.state is CLOSED
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CLOSED
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is OPEN


def test_failure_threshold_zero_turns_the_rule_off(policy_impl):
    breaker, _ = make(failure_threshold=0)
    for _ in range(50):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CLOSED
    assert breaker.stats.consecutive_failures == 50


def test_failure_rate_trips_once_minimum_calls_are_in_the_window(policy_impl):
    breaker, _ = make(failure_threshold=0, failure_rate=0.5, window=10, minimum_calls=4)
    for _ in range(3):  # a 100% failure rate, but only 3 calls
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CLOSED
    breaker.reset()
    for body in (ok, ok, ok, boom, boom):  # 2 of 5
        with contextlib.suppress(Boom):
            breaker.call(body)
    assert breaker.state is CLOSED
    assert breaker.stats.failure_rate == 0.4
    with pytest.raises(Boom):
        breaker.call(boom)  # 3 of 6 = 0.5 reaches the rate
    assert breaker.state is OPEN


def test_minimum_calls_is_capped_at_the_count_window(policy_impl):
    breaker, _ = make(failure_threshold=0, failure_rate=0.5, window=4, minimum_calls=10)
    breaker.call(ok)
    breaker.call(ok)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CLOSED
    with pytest.raises(Boom):
        breaker.call(boom)  # 4 calls fill the window: 2 of 4
    assert breaker.state is OPEN


def test_count_window_holds_the_last_window_calls(policy_impl):
    breaker, _ = make(failure_threshold=0, window=3)
    with pytest.raises(Boom):
        breaker.call(boom)
    breaker.call(ok)
    breaker.call(ok)
    assert (breaker.stats.calls, breaker.stats.failures) == (3, 1)
    breaker.call(ok)  # the failure falls out
    assert (breaker.stats.calls, breaker.stats.failures) == (3, 0)


def test_time_window_holds_the_last_window_duration_seconds(policy_impl):
    breaker, clock = make(
        failure_threshold=0, failure_rate=1.0, window=2, window_duration=10.0, minimum_calls=3
    )
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.stats.calls == 2
    assert breaker.state is CLOSED  # 2 calls < minimum_calls (a count window of 2 would trip)
    clock.advance(25.0)  # both failures are out of the last 10 s
    assert breaker.stats.calls == 0
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CLOSED
    for _ in range(2):  # `window` is unused: 3 calls in the window, all failures
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is OPEN


def test_slow_call_rate_trips_on_calls_timed_with_the_breaker_clock(policy_impl):
    breaker, clock = make(
        failure_threshold=0,
        slow_call_duration=2.0,
        slow_call_rate=0.5,
        window=10,
        minimum_calls=4,
    )

    def work(duration):
        clock.advance(duration)
        return duration

    for duration in (1.0, 1.5, 2.0, 1.75):  # exactly slow_call_duration is slow
        assert breaker.call(work, duration) == duration
    stats = breaker.stats
    assert (stats.calls, stats.slow_calls, stats.failures) == (4, 1, 0)
    assert stats.slow_call_rate == 0.25
    breaker.call(work, 2.5)  # 2 of 5
    assert breaker.state is CLOSED
    breaker.call(work, 2.0)  # 3 of 6 = 0.5
    assert breaker.state is OPEN


@forms
def test_every_form_times_calls_with_the_breaker_clock(policy_impl, form):
    breaker, clock = make(failure_threshold=0, slow_call_duration=2.0)

    def fast():
        clock.advance(1.5)

    def slow():
        clock.advance(2.0)

    def slow_failure():
        clock.advance(3.0)
        raise Boom

    form(breaker, fast)
    form(breaker, slow)
    with pytest.raises(Boom):
        form(breaker, slow_failure)
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.slow_calls) == (3, 1, 2)


def test_async_call_awaiting_the_fake_clock_is_slow(policy_impl):
    breaker, clock = make(failure_threshold=0, slow_call_duration=2.0)

    @breaker
    async def fn(duration):
        await clock.asleep(duration)

    async def main():
        await fn(2.0)
        await fn(1.0)
        await breaker.acall(fn.__wrapped__, 4.0)

    asyncio.run(main())
    assert (breaker.stats.calls, breaker.stats.slow_calls) == (3, 2)


# -- OPEN -------------------------------------------------------------------------------


@forms
def test_open_rejects_with_name_and_retry_after(policy_impl, form):
    breaker, clock = make(name="payments", failure_threshold=2, reset_timeout=30.0)
    trip(breaker, 2)
    clock.advance(12.0)
    ran = []
    with pytest.raises(CircuitOpenError) as info:
        form(breaker, lambda: ran.append(1))
    assert ran == []
    assert info.value.name == "payments"
    assert info.value.retry_after == 18.0
    assert breaker.stats.rejected == 1
    assert breaker.state is OPEN


@forms
def test_open_returns_the_fallback_result_except_in_with_blocks(policy_impl, form):
    fallback_args = []

    def fallback(*args, **kwargs):
        fallback_args.append((args, kwargs))
        return "fallback"

    breaker, _ = make(failure_threshold=1, fallback=fallback)
    trip(breaker)
    ran = []
    if form in FALLBACK_FORMS:
        assert form(breaker, lambda: ran.append(1)) == "fallback"
        assert fallback_args == [((), {})]
    else:
        with pytest.raises(CircuitOpenError):
            form(breaker, lambda: ran.append(1))
        assert fallback_args == []
    assert ran == []
    assert breaker.state is OPEN


def test_open_fallback_gets_the_call_arguments(policy_impl):
    breaker, _ = make(failure_threshold=1, fallback=lambda *a, **kw: ("fb", a, kw))
    trip(breaker)
    ran = []

    def fn(*args, **kwargs):
        ran.append(args)

    assert breaker.call(fn, 1, 2, k=3) == ("fb", (1, 2), {"k": 3})
    assert breaker(fn)(4, k=5) == ("fb", (4,), {"k": 5})
    assert ran == []


def test_open_async_fallback_awaitable_is_awaited_plain_value_returned(policy_impl):
    async def async_fallback(*args, **kwargs):
        await asyncio.sleep(0)
        return ("async", args, kwargs)

    def plain_fallback(*args, **kwargs):
        return ("plain", args, kwargs)

    ran = []

    async def fn(*args, **kwargs):
        ran.append(args)
        return "real"

    async def main(breaker):
        return await breaker(fn)(1, k=2), await breaker.acall(fn, 3)

    for fallback, kind in ((async_fallback, "async"), (plain_fallback, "plain")):
        breaker, _ = make(failure_threshold=1, fallback=fallback)
        trip(breaker)
        assert asyncio.run(main(breaker)) == (
            (kind, (1,), {"k": 2}),
            (kind, (3,), {}),
        )
    assert ran == []


def test_retry_after_counts_down_to_the_probe(policy_impl):
    breaker, clock = make(name="x", failure_threshold=1, reset_timeout=30.0)
    trip(breaker)
    for step, left in ((0.0, 30.0), (10.0, 20.0), (19.5, 0.5)):
        clock.advance(step)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ok)
        assert info.value.retry_after == left
        assert breaker.state is OPEN
    assert breaker.stats.rejected == 3
    clock.advance(0.5)
    assert breaker.call(ok) == "ok"


# -- HALF_OPEN ----------------------------------------------------------------------------


def test_reset_timeout_then_a_probe_success_closes_with_a_fresh_window(policy_impl):
    breaker, clock = make(failure_threshold=2, reset_timeout=30.0)
    breaker.call(ok)
    trip(breaker, 2)
    clock.advance(29.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (0, 0, 0)


def test_half_open_calls_successes_are_needed_to_close(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0, half_open_calls=3)
    trip(breaker)
    clock.advance(10.0)
    for _ in range(2):
        breaker.call(ok)
        assert breaker.state is HALF_OPEN
    breaker.call(ok)
    assert breaker.state is CLOSED


def test_a_probe_failure_reopens(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0, half_open_calls=2)
    trip(breaker)
    clock.advance(10.0)
    breaker.call(ok)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after == 10.0


def test_half_open_with_every_probe_out_rejects_until_the_probe_is_taken_back(policy_impl):
    fallback = []
    breaker, clock = make(
        failure_threshold=1,
        reset_timeout=30.0,
        half_open_calls=1,
        fallback=lambda: fallback.append(1) or "fb",
    )
    trip(breaker)
    clock.advance(30.0)
    assert breaker.allow()  # the probe, never answered
    clock.advance(5.0)
    assert breaker.state is HALF_OPEN
    assert breaker.call(ok) == "fb"
    with pytest.raises(CircuitOpenError) as info, breaker:
        pass
    assert info.value.retry_after == 25.0
    clock.advance(24.0)
    assert breaker.allow() is False
    clock.advance(2.0)  # the lost probe is out longer than the open duration
    assert breaker.call(ok) == "ok"
    assert breaker.state is CLOSED
    assert fallback == [1]


def test_reset_timeout_max_doubles_the_open_time_per_trip_in_a_row(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0, reset_timeout_max=35.0)

    def open_time():
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ok)
        return info.value.retry_after

    trip(breaker)
    assert open_time() == 10.0
    for expected in (20.0, 35.0, 35.0):  # min(10 * 2**(k-1), 35)
        clock.advance(open_time())
        with pytest.raises(Boom):
            breaker.call(boom)  # the probe fails: the next trip in a row
        assert open_time() == expected
    clock.advance(34.0)
    assert breaker.state is OPEN
    clock.advance(1.0)
    breaker.call(ok)  # closing resets the count of trips
    assert breaker.state is CLOSED
    trip(breaker)
    assert open_time() == 10.0
    clock.advance(10.0)
    with pytest.raises(Boom):
        breaker.call(boom)
    assert open_time() == 20.0
    breaker.reset()  # back to CLOSED: the count starts again too
    trip(breaker)
    assert open_time() == 10.0


def test_without_reset_timeout_max_the_open_time_stays_the_same(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0)
    trip(breaker)
    for _ in range(3):
        clock.advance(10.0)
        with pytest.raises(Boom):
            breaker.call(boom)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(ok)
        assert info.value.retry_after == 10.0


# -- classification -------------------------------------------------------------------------


@forms
def test_record_types_are_failures_and_other_exceptions_successes(policy_impl, form):
    breaker, _ = make(failure_threshold=2, record=(Boom, KeyError))

    def raise_(exc):
        def body():
            raise exc

        return body

    with pytest.raises(Boom):
        form(breaker, raise_(Boom()))
    assert breaker.stats.consecutive_failures == 1
    with pytest.raises(ValueError):
        form(breaker, raise_(ValueError()))  # not in record: a success (resilience4j)
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (2, 1, 0)
    with pytest.raises(KeyError):
        form(breaker, raise_(KeyError()))
    with pytest.raises(Boom):
        form(breaker, raise_(Boom()))
    assert breaker.state is OPEN


def test_a_non_recorded_exception_from_a_probe_closes(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, record=Boom)
    trip(breaker)
    clock.advance(5.0)

    def other():
        raise ValueError

    with pytest.raises(ValueError):
        breaker.call(other)
    assert breaker.state is CLOSED


def test_by_default_a_base_exception_outside_record_is_a_success(policy_impl):
    class Stop(BaseException):
        pass

    breaker, _ = make(failure_threshold=1)  # record=Exception

    def stop():
        raise Stop

    with pytest.raises(Stop):
        breaker.call(stop)
    assert breaker.state is CLOSED
    assert (breaker.stats.calls, breaker.stats.failures) == (1, 0)


@forms
def test_ignore_wins_over_record_and_counts_as_neither(policy_impl, form):
    breaker, _ = make(failure_threshold=3, record=Exception, ignore=LookupError)

    def ignored():
        raise KeyError("k")

    for _ in range(2):
        with pytest.raises(Boom):
            form(breaker, boom)
    with pytest.raises(KeyError):
        form(breaker, ignored)
    stats = breaker.stats
    # neither a failure nor a success: the run of failures goes on
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (2, 2, 2)
    assert (stats.total_calls, stats.total_failures, stats.total_ignored) == (2, 2, 1)
    assert breaker.state is CLOSED
    with pytest.raises(Boom):
        form(breaker, boom)
    assert breaker.state is OPEN


def test_an_ignored_exception_from_a_probe_gives_the_permit_back(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, ignore=KeyError)
    trip(breaker)
    clock.advance(5.0)

    def ignored():
        raise KeyError

    with pytest.raises(KeyError):
        breaker.call(ignored)
    assert breaker.state is HALF_OPEN
    assert breaker.call(ok) == "ok"  # another probe is let in
    assert breaker.state is CLOSED
    assert breaker.stats.total_ignored == 1


@pytest.mark.parametrize(
    "form", [via_decorator, via_call, via_async_decorator, via_acall], ids=form_id
)
def test_failure_if_makes_a_returned_value_a_failure(policy_impl, form):
    seen = []

    def failure_if(result):
        seen.append(result)
        return result is None

    breaker, _ = make(failure_threshold=2, failure_if=failure_if)
    assert form(breaker, lambda: None) is None  # the value is still returned
    assert form(breaker, lambda: "fine") == "fine"
    assert form(breaker, lambda: None) is None
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (3, 2, 1)
    with pytest.raises(Boom):
        form(breaker, boom)  # exceptions are classified as always
    assert seen == [None, "fine", None]
    assert breaker.state is OPEN


@forms
@pytest.mark.parametrize("kind", ["recorded", "other", "ignored"])
def test_the_original_exception_propagates_unchanged(policy_impl, form, kind):
    breaker, _ = make(record=Boom, ignore=KeyError)
    error = {"recorded": Boom("x"), "other": ValueError("y"), "ignored": KeyError("z")}[kind]

    def body():
        raise error

    with pytest.raises(type(error)) as info:
        form(breaker, body)
    assert info.value is error


# -- cancellation and interrupts ----------------------------------------------------------------


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("form", [via_decorator, via_call, via_with], ids=form_id)
def test_interrupts_are_never_failures(policy_impl, form, interrupt):
    breaker, _ = make(failure_threshold=1, record=BaseException)
    error = interrupt()

    def body():
        raise error

    with pytest.raises(interrupt) as info:
        form(breaker, body)
    assert info.value is error
    assert breaker.state is CLOSED
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (0, 0, 0)
    assert (stats.total_calls, stats.total_failures, stats.total_ignored) == (0, 0, 0)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("form", [via_decorator, via_call, via_with], ids=form_id)
def test_an_interrupted_probe_gives_its_permit_back(policy_impl, form, interrupt):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, record=BaseException)
    trip(breaker)
    clock.advance(5.0)

    def body():
        raise interrupt

    with pytest.raises(interrupt):
        form(breaker, body)
    assert breaker.state is HALF_OPEN
    assert form(breaker, ok) == "ok"  # the released probe permit is issued again
    assert breaker.state is CLOSED
    assert breaker.stats.total_calls == 2  # the tripping failure and the probe


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_interrupts_in_async_calls_are_never_failures(policy_impl, interrupt):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, record=BaseException)
    trip(breaker)
    clock.advance(5.0)

    async def body():
        raise interrupt

    async def main():
        with pytest.raises(interrupt):
            await breaker.acall(body)
        assert breaker.state is HALF_OPEN
        with pytest.raises(interrupt):
            await breaker(body)()
        assert breaker.state is HALF_OPEN
        assert await breaker.acall(asyncio.sleep, 0, "ok") == "ok"

    asyncio.run(main())
    assert breaker.state is CLOSED


def cancel_mid_flight(run: Callable[[Callable[[], Any]], Any]) -> None:
    """Start ``run(body)`` as a task, cancel it while ``body`` awaits, expect CancelledError."""

    async def main():
        started = asyncio.Event()
        never = asyncio.Event()

        async def body():
            started.set()
            await never.wait()

        task = asyncio.create_task(run(body))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


async def run_acall(breaker, body):
    return await breaker.acall(body)


async def run_decorated(breaker, body):
    return await breaker(body)()


async def run_async_with(breaker, body):
    async with breaker:
        return await body()


ASYNC_RUNNERS = [run_acall, run_decorated, run_async_with]


def runner_id(runner: Callable[..., Any]) -> str:
    return runner.__name__.removeprefix("run_")


@pytest.mark.parametrize("runner", ASYNC_RUNNERS, ids=runner_id)
def test_a_cancelled_call_is_never_a_failure(policy_impl, runner):
    breaker, _ = make(failure_threshold=1, record=BaseException)
    cancel_mid_flight(lambda body: runner(breaker, body))
    assert breaker.state is CLOSED
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.total_calls, stats.total_ignored) == (0, 0, 0, 0)


@pytest.mark.parametrize("runner", ASYNC_RUNNERS, ids=runner_id)
def test_a_cancelled_probe_gives_its_permit_back(policy_impl, runner):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, record=BaseException)
    trip(breaker)
    clock.advance(5.0)
    cancel_mid_flight(lambda body: runner(breaker, body))
    assert breaker.state is HALF_OPEN

    async def fine():
        return "ok"

    assert asyncio.run(runner(breaker, fine)) == "ok"
    assert breaker.state is CLOSED


# -- generations ------------------------------------------------------------------------------


@forms
@pytest.mark.parametrize("late", ["success", "failure"])
def test_a_call_from_before_the_trip_does_not_move_half_open(policy_impl, form, late):
    breaker, clock = make(failure_threshold=2, reset_timeout=10.0, half_open_calls=1)

    def long_call():
        trip(breaker, 2)  # other calls trip the breaker meanwhile
        clock.advance(10.0)
        assert breaker.state is HALF_OPEN
        if late == "failure":
            raise Boom("late")
        return "late"

    if late == "failure":
        with pytest.raises(Boom):
            form(breaker, long_call)
    else:
        assert form(breaker, long_call) == "late"
    assert breaker.state is HALF_OPEN  # neither closed nor reopened
    assert breaker.call(ok) == "ok"  # the probe slot is still free
    assert breaker.state is CLOSED


@forms
def test_a_call_from_an_earlier_closed_period_cannot_trip_the_new_one(policy_impl, form):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0)

    def long_call():
        trip(breaker)
        clock.advance(10.0)
        assert breaker.call(ok) == "ok"  # the probe closes it again
        assert breaker.state is CLOSED
        raise Boom("late")

    with pytest.raises(Boom):
        form(breaker, long_call)
    assert breaker.state is CLOSED
    assert breaker.stats.consecutive_failures == 0


def test_a_late_outcome_of_a_taken_back_probe_is_ignored(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0, half_open_calls=1)
    trip(breaker)
    clock.advance(10.0)

    def lost_probe():
        clock.advance(11.0)  # out longer than the open duration: taken back
        assert breaker.call(ok) == "ok"  # a new probe gets in and closes
        assert breaker.state is CLOSED
        raise Boom("late")

    with pytest.raises(Boom):
        breaker.call(lost_probe)
    assert breaker.state is CLOSED


# -- with blocks: each exit settles its own permit -----------------------------------------------


def test_nested_with_blocks_on_one_breaker(policy_impl):
    breaker, _ = make(failure_threshold=2)
    with breaker:
        with pytest.raises(Boom), breaker:
            raise Boom
        assert breaker.stats.consecutive_failures == 1
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (2, 1, 0)


def test_nested_with_blocks_settle_inner_then_outer(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=1)
    with pytest.raises(Boom), breaker:  # a permit of the first CLOSED period
        trip(breaker)
        clock.advance(5.0)
        with breaker:  # the probe
            assert breaker.state is HALF_OPEN
        assert breaker.state is CLOSED  # the inner exit answered the probe
        raise Boom("late")  # the outer exit answers the stale permit: ignored
    assert breaker.state is CLOSED
    assert breaker.stats.consecutive_failures == 0


def test_with_blocks_in_threads_each_settle_their_own_permit(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=1)
    errors = []
    a_in, a_go, b_in, b_go = (threading.Event() for _ in range(4))

    def stale():  # enters while CLOSED, fails after the breaker moved on
        try:
            with pytest.raises(Boom), breaker:
                a_in.set()
                assert a_go.wait(GUARD)
                raise Boom("late")
        except BaseException as exc:
            errors.append(exc)

    def probe():  # enters while HALF_OPEN, succeeds
        try:
            with breaker:
                b_in.set()
                assert b_go.wait(GUARD)
        except BaseException as exc:
            errors.append(exc)

    a = threading.Thread(target=stale)
    a.start()
    assert a_in.wait(GUARD)
    trip(breaker)
    clock.advance(5.0)
    b = threading.Thread(target=probe)
    b.start()
    assert b_in.wait(GUARD)
    a_go.set()
    a.join(GUARD)
    assert breaker.state is HALF_OPEN  # A's exit did not take B's probe
    b_go.set()
    b.join(GUARD)
    assert errors == []
    assert breaker.state is CLOSED


def test_with_blocks_in_many_threads_each_answer_a_probe(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=4)
    trip(breaker)
    clock.advance(5.0)
    barrier = threading.Barrier(4)
    errors = []

    def worker():
        try:
            with breaker:
                barrier.wait(GUARD)  # all four hold a probe permit at once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    assert errors == []
    assert breaker.state is CLOSED


def test_async_with_blocks_in_tasks_each_settle_their_own_permit(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=1)

    async def main():
        a_in, a_go, b_in, b_go = (asyncio.Event() for _ in range(4))

        async def stale():
            with pytest.raises(Boom):
                async with breaker:
                    a_in.set()
                    await a_go.wait()
                    raise Boom("late")

        async def probe():
            async with breaker:
                b_in.set()
                await b_go.wait()

        a = asyncio.create_task(stale())
        await a_in.wait()
        trip(breaker)
        clock.advance(5.0)
        b = asyncio.create_task(probe())
        await b_in.wait()
        a_go.set()
        await a
        assert breaker.state is HALF_OPEN
        b_go.set()
        await b
        assert breaker.state is CLOSED

    asyncio.run(main())


def test_async_with_blocks_in_many_tasks_each_answer_a_probe(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=4)
    trip(breaker)
    clock.advance(5.0)

    async def main():
        inside = 0
        all_in = asyncio.Event()

        async def worker():
            nonlocal inside
            async with breaker:
                inside += 1
                if inside == 4:
                    all_in.set()
                await all_in.wait()

        await asyncio.gather(*(worker() for _ in range(4)))

    asyncio.run(main())
    assert breaker.state is CLOSED


# -- probes across threads ---------------------------------------------------------------------


@pytest.mark.parametrize("form", [via_call, via_decorator, via_with], ids=form_id)
def test_half_open_admits_exactly_half_open_calls_probes_across_threads(policy_impl, form):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0, half_open_calls=3)
    trip(breaker)
    clock.advance(5.0)
    go = threading.Event()
    tried = threading.Semaphore(0)
    lock = threading.Lock()
    admitted, rejected, errors = [], [], []

    def protected():
        with lock:
            admitted.append(1)
        tried.release()
        assert go.wait(GUARD)
        return "done"

    def worker():
        try:
            assert form(breaker, protected) == "done"
        except CircuitOpenError:
            with lock:
                rejected.append(1)
            tried.release()
        except BaseException as exc:
            errors.append(exc)
            tried.release()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in threads:
        assert tried.acquire(timeout=GUARD)  # every thread has tried
    with lock:
        at_once = len(admitted)
    go.set()
    for t in threads:
        t.join(GUARD)
    assert errors == []
    assert at_once == 3
    assert (len(admitted), len(rejected)) == (3, 5)
    assert breaker.stats.rejected == 5
    assert breaker.state is CLOSED


@pytest.mark.parametrize("form", [via_call, via_decorator, via_with], ids=form_id)
def test_outcomes_from_many_threads_all_count(policy_impl, form):
    breaker, _ = make(failure_threshold=0, window=1000)
    barrier = threading.Barrier(8)
    errors = []

    def worker(i):
        try:
            barrier.wait(GUARD)
            for n in range(100):
                if (i + n) % 2:
                    with pytest.raises(Boom):
                        form(breaker, boom)
                else:
                    assert form(breaker, ok) == "ok"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    assert errors == []
    stats = breaker.stats
    assert (stats.calls, stats.failures) == (800, 400)
    assert (stats.total_calls, stats.total_failures) == (800, 400)
    assert breaker.state is CLOSED


# -- state and manual control -----------------------------------------------------------------


def test_state_is_a_circuit_state_str_enum(policy_impl):
    assert {s.name for s in CircuitState} == {
        "CLOSED",
        "OPEN",
        "HALF_OPEN",
        "FORCED_OPEN",
        "DISABLED",
    }
    assert all(isinstance(s, str) and s.value == s.name for s in CircuitState)
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0)
    seen = [breaker.state]
    trip(breaker)
    seen.append(breaker.state)
    clock.advance(5.0)
    seen.append(breaker.state)
    breaker.force_open()
    seen.append(breaker.state)
    breaker.disable()
    seen.append(breaker.state)
    assert seen == ["CLOSED", "OPEN", "HALF_OPEN", "FORCED_OPEN", "DISABLED"]
    assert all(type(s) is CircuitState for s in seen)
    assert breaker.stats.state is DISABLED


@forms
def test_force_open_rejects_with_infinite_retry_after(policy_impl, form):
    breaker, clock = make(name="f", reset_timeout=1.0)
    breaker.force_open()
    assert breaker.state is FORCED_OPEN
    clock.advance(1e6)  # no timeout ends it
    with pytest.raises(CircuitOpenError) as info:
        form(breaker, ok)
    assert info.value.retry_after == math.inf
    assert info.value.name == "f"
    assert breaker.allow() is False
    assert breaker.state is FORCED_OPEN
    breaker.reset()
    assert form(breaker, ok) == "ok"


@forms
@pytest.mark.parametrize("in_pipeline", [False, True], ids=["alone", "in_pipeline"])
def test_a_hold_refuses_every_form_with_no_retry_after(policy_impl, form, in_pipeline):
    breaker, clock = make(name="db")
    # A Pipeline has every form its members have: Bulkhead has them all too.
    policy = Pipeline(breaker, Bulkhead(2)) if in_pipeline else breaker
    breaker.hold("health")
    assert breaker.state is FORCED_OPEN
    assert breaker.holds == {"health"}
    clock.advance(1e6)  # no timer ends a hold
    ran = []
    with pytest.raises(CircuitOpenError) as info:
        form(policy, lambda: ran.append(1))
    assert ran == []
    assert info.value.name == "db"
    assert info.value.retry_after is None  # it ends when the holder lifts it
    assert breaker.stats.rejected == 1
    assert breaker.stats.state is FORCED_OPEN
    breaker.lift_hold("health")
    assert breaker.state is CLOSED
    assert form(policy, ok) == "ok"


@forms
def test_a_held_breaker_returns_the_fallback_except_in_with_blocks(policy_impl, form):
    breaker, _ = make(fallback=lambda: "fallback")
    breaker.hold("health")
    if form in FALLBACK_FORMS:
        assert form(breaker, ok) == "fallback"
    else:
        with pytest.raises(CircuitOpenError):
            form(breaker, ok)


@forms
def test_lifting_a_hold_leaves_the_breaker_as_traffic_left_it(policy_impl, form):
    breaker, clock = make(failure_threshold=1, reset_timeout=10.0)
    events = []
    breaker.on_state_change(lambda b, old, new: events.append((old, new)))
    decorated = breaker(ok)  # made before the hold: its fast path must see the hold too
    breaker.hold("health")
    with pytest.raises(CircuitOpenError):
        decorated()
    breaker.lift_hold("health")
    trip(breaker)
    breaker.hold("health")
    clock.advance(4.0)
    breaker.lift_hold("health")
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError) as info:
        form(breaker, ok)
    assert info.value.retry_after == 6.0
    clock.advance(6.0)
    assert form(breaker, ok) == "ok"  # the probe, then CLOSED: half-open was not skipped
    assert breaker.state is CLOSED
    assert events == [
        (CLOSED, FORCED_OPEN),
        (FORCED_OPEN, CLOSED),
        (CLOSED, OPEN),
        (OPEN, FORCED_OPEN),
        (FORCED_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_holds_are_heard_by_the_state_listeners(policy_impl):
    breaker, _ = make()
    events = []
    breaker.on_state_change(lambda b, old, new: events.append((old, new)))
    breaker.hold("a")
    breaker.hold("b")
    breaker.lift_hold("a")
    breaker.lift_hold("b")
    assert events == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]
    assert all(type(state) is CircuitState for change in events for state in change)
    assert breaker.transitions == {(CLOSED, FORCED_OPEN): 1, (FORCED_OPEN, CLOSED): 1}


@forms
def test_disable_lets_every_call_through_and_never_trips(policy_impl, form):
    breaker, _ = make(failure_threshold=1, failure_rate=0.5, minimum_calls=1)
    trip(breaker)
    breaker.disable()
    assert breaker.state is DISABLED
    for _ in range(10):
        with pytest.raises(Boom):
            form(breaker, boom)
        assert form(breaker, ok) == "ok"
        assert breaker.allow() is True
        breaker.record_failure()
    assert breaker.state is DISABLED
    breaker.reset()
    assert breaker.state is CLOSED
    with pytest.raises(Boom):
        form(breaker, boom)
    assert breaker.state is OPEN


def test_reset_closes_with_a_fresh_window(policy_impl):
    breaker, _ = make(failure_threshold=3, reset_timeout=30.0)
    breaker.call(ok)
    trip(breaker, 3)
    breaker.reset()
    assert breaker.state is CLOSED
    stats = breaker.stats
    assert (stats.calls, stats.failures, stats.consecutive_failures) == (0, 0, 0)
    assert breaker.call(ok) == "ok"
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CLOSED  # the failures before the reset do not count


# -- stats -----------------------------------------------------------------------------------


def test_stats_are_computed_from_what_happened(policy_impl):
    breaker, clock = make(
        name="svc",
        failure_threshold=3,
        window=10,
        minimum_calls=10,
        reset_timeout=30.0,
        record=Boom,
        ignore=KeyError,
        slow_call_duration=1.0,
    )

    def slow():
        clock.advance(1.0)
        return "slow"

    def ignored():
        raise KeyError

    def other():
        raise ValueError

    stats = breaker.stats
    assert stats.name == "svc"
    assert stats.state is CLOSED
    assert (stats.calls, stats.failures, stats.slow_calls) == (0, 0, 0)
    assert (stats.failure_rate, stats.slow_call_rate) == (0.0, 0.0)

    breaker.call(ok)  # success
    breaker.call(slow)  # slow success
    with pytest.raises(Boom):
        breaker.call(boom)  # failure
    with pytest.raises(KeyError):
        breaker.call(ignored)  # neither
    with pytest.raises(ValueError):
        breaker.call(other)  # success
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    stats = breaker.stats
    assert stats.state is CLOSED
    assert (stats.calls, stats.failures, stats.slow_calls) == (6, 3, 1)
    assert stats.failure_rate == pytest.approx(3 / 6)
    assert stats.slow_call_rate == pytest.approx(1 / 6)
    assert stats.consecutive_failures == 2
    assert stats.rejected == 0
    assert (stats.total_calls, stats.total_failures, stats.total_ignored) == (6, 3, 1)

    with pytest.raises(Boom):
        breaker.call(boom)  # the third in a row trips
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    stats = breaker.stats
    assert stats.state is OPEN
    assert stats.rejected == 2
    assert (stats.total_calls, stats.total_failures, stats.total_ignored) == (7, 4, 1)

    clock.advance(30.0)
    breaker.call(ok)  # the probe closes: a fresh window, lifetime counters go on
    stats = breaker.stats
    assert stats.state is CLOSED
    assert (stats.calls, stats.failures, stats.slow_calls, stats.consecutive_failures) == (
        0,
        0,
        0,
        0,
    )
    assert (stats.failure_rate, stats.slow_call_rate) == (0.0, 0.0)
    assert (stats.rejected, stats.total_calls, stats.total_failures) == (2, 8, 4)
    assert stats.total_ignored == 1


# -- listeners ------------------------------------------------------------------------------


def test_on_state_change_gets_every_change(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0)
    events = []

    def listener(b, old, new):
        events.append((b, old, new))

    breaker.on_state_change(listener)
    trip(breaker)
    clock.advance(5.0)
    with pytest.raises(Boom):
        breaker.call(boom)  # the probe fails
    clock.advance(5.0)
    breaker.call(ok)  # the probe succeeds
    breaker.force_open()
    breaker.disable()
    breaker.reset()
    breaker.reset()  # already CLOSED: no change
    assert [(old, new) for _, old, new in events] == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
        (CLOSED, FORCED_OPEN),
        (FORCED_OPEN, DISABLED),
        (DISABLED, CLOSED),
    ]
    assert all(b is breaker for b, _, _ in events)
    assert all(type(old) is CircuitState and type(new) is CircuitState for _, old, new in events)


def test_a_raising_listener_is_logged_and_the_others_still_run(policy_impl, caplog):
    caplog.set_level(logging.DEBUG, logger="resilience")
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0)
    before, after = [], []
    breaker.on_state_change(lambda b, old, new: before.append((old, new)))

    def bad(b, old, new):
        raise RuntimeError("listener bug")

    breaker.on_state_change(bad)
    breaker.on_state_change(lambda b, old, new: after.append((old, new)))

    error = Boom("x")

    def fail():
        raise error

    with pytest.raises(Boom) as info:
        breaker.call(fail)  # trips; the listener's error does not replace the call's
    assert info.value is error
    assert breaker.state is OPEN
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    clock.advance(5.0)
    assert breaker.call(ok) == "ok"  # OPEN -> HALF_OPEN -> CLOSED
    assert breaker.state is CLOSED
    expected = [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert before == expected
    assert after == expected
    # the listener's failures, not the state changes the breaker logs too
    logged = [r for r in caplog.records if r.name == "resilience" and r.exc_info]
    assert len(logged) == 3  # once per failure of the listener
    assert all(r.levelno >= logging.ERROR for r in logged)


def test_a_listener_can_read_the_breaker(policy_impl):
    breaker, clock = make(failure_threshold=1, reset_timeout=5.0)
    seen = []
    breaker.on_state_change(lambda b, old, new: seen.append((new, b.state, b.stats.state)))

    def scenario():
        trip(breaker)
        clock.advance(5.0)
        breaker.call(ok)

    # in a thread, so a listener called under the breaker's lock fails instead of hanging
    worker = threading.Thread(target=scenario, daemon=True)
    worker.start()
    worker.join(GUARD)
    assert not worker.is_alive()
    assert seen == [(OPEN, OPEN, OPEN), (HALF_OPEN,) * 3, (CLOSED,) * 3]


# -- bad input ----------------------------------------------------------------------------------


def check_rejected(argument: str, value: object, culprit: object = None) -> None:
    """ValueError or TypeError naming the argument and the value (or its bad element)."""
    with pytest.raises((ValueError, TypeError)) as info:
        CircuitBreaker(**{argument: value})
    message = str(info.value)
    assert re.search(rf"\b{argument}\b", message), message
    assert repr(value) in message or (culprit is not None and repr(culprit) in message), message


NAN, INF = math.nan, math.inf
COUNT_BAD = [-1, 2.5, NAN, INF, "3", None]
DURATION_BAD = [-1.0, 0, 0.0, NAN, INF, -INF, "1", b"1"]
RATE_BAD = [-0.5, 0, 0.0, 1.5, NAN, INF, "0.5"]

BAD_NUMBERS = (
    [("failure_threshold", v) for v in COUNT_BAD]
    + [(arg, v) for arg in ("window", "minimum_calls", "half_open_calls") for v in [0, *COUNT_BAD]]
    + [(arg, v) for arg in ("failure_rate", "slow_call_rate") for v in RATE_BAD]
    + [
        (arg, v)
        for arg in ("slow_call_duration", "window_duration", "reset_timeout_max")
        for v in DURATION_BAD
    ]
    + [("reset_timeout", v) for v in [*DURATION_BAD, None]]
)


@pytest.mark.parametrize(("argument", "value"), BAD_NUMBERS, ids=repr)
def test_bad_numeric_arguments_are_rejected(policy_impl, argument, value):
    check_rejected(argument, value)


@pytest.mark.parametrize("others", [{}, {"failure_rate": 0.5}, {"window_duration": 10.0}])
def test_a_slow_call_rate_without_slow_call_duration_is_refused(policy_impl, others):
    # It used to be ignored without a word: no call is slow without a duration.
    with pytest.raises(ValueError) as info:
        CircuitBreaker(slow_call_rate=0.5, **others)
    message = str(info.value)
    assert "slow_call_rate=0.5" in message
    assert "slow_call_duration=None" in message


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("name", 5),
        ("name", b"svc"),
        ("record", int),
        ("record", "ValueError"),
        ("record", ValueError()),
        ("ignore", object),
        ("failure_if", 3),
        ("failure_if", "x"),
        ("fallback", 3),
        ("fallback", "fb"),
        ("clock", 1.0),
    ],
    ids=repr,
)
def test_bad_other_arguments_are_rejected(policy_impl, argument, value):
    check_rejected(argument, value)


@pytest.mark.parametrize("argument", ["record", "ignore"])
def test_a_tuple_with_a_non_exception_class_is_rejected(policy_impl, argument):
    check_rejected(argument, (ValueError, 3), culprit=3)
    check_rejected(argument, (KeyError, "x"), culprit="x")


def test_arguments_after_name_are_keyword_only(policy_impl):
    assert CircuitBreaker("svc").name == "svc"
    with pytest.raises(TypeError):
        CircuitBreaker("svc", 5)  # type: ignore[misc]


def test_good_edge_values_are_accepted(policy_impl):
    breaker = CircuitBreaker(
        failure_threshold=0,
        failure_rate=1.0,
        slow_call_rate=1.0,
        slow_call_duration=1e-9,
        window=1,
        minimum_calls=1,
        reset_timeout=1,
        reset_timeout_max=1,
        half_open_calls=1,
        record=(Boom, KeyError),
        ignore=(),
    )
    assert breaker.state is CLOSED


# -- repr ---------------------------------------------------------------------------------------


def test_repr_shows_name_and_state(policy_impl):
    breaker, _ = make(name="payments", failure_threshold=1)
    text = repr(breaker)
    assert "payments" in text and "CLOSED" in text
    trip(breaker)
    text = repr(breaker)
    assert "payments" in text and "OPEN" in text and "CLOSED" not in text
    breaker.force_open()
    assert "FORCED_OPEN" in repr(breaker)
    assert "CLOSED" in repr(CircuitBreaker())


# -- transitions ----------------------------------------------------------------------------


def test_transitions_count_every_change_the_listener_saw(policy_impl):
    breaker, clock = make(failure_threshold=2, reset_timeout=10.0, half_open_calls=2)
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker.on_state_change(lambda b, old, new: seen.append((old, new)))
    assert breaker.transitions == {}

    trip(breaker, 2)  # CLOSED -> OPEN
    clock.advance(10.0)
    assert breaker.call(ok) == "ok"  # OPEN -> HALF_OPEN, one probe of two
    with pytest.raises(Boom):
        breaker.call(boom)  # HALF_OPEN -> OPEN
    clock.advance(10.0)
    breaker.call(ok)
    breaker.call(ok)  # OPEN -> HALF_OPEN -> CLOSED
    trip(breaker, 2)  # CLOSED -> OPEN again
    breaker.force_open()  # OPEN -> FORCED_OPEN
    breaker.force_open()  # no change: not counted
    breaker.disable()  # FORCED_OPEN -> DISABLED
    breaker.reset()  # DISABLED -> CLOSED
    breaker.reset()  # no change

    expected = {
        (CLOSED, OPEN): 2,
        (OPEN, HALF_OPEN): 2,
        (HALF_OPEN, OPEN): 1,
        (HALF_OPEN, CLOSED): 1,
        (OPEN, FORCED_OPEN): 1,
        (FORCED_OPEN, DISABLED): 1,
        (DISABLED, CLOSED): 1,
    }
    counted: dict[tuple[CircuitState, CircuitState], int] = {}
    for change in seen:
        counted[change] = counted.get(change, 0) + 1
    assert counted == expected
    transitions = breaker.transitions
    assert transitions == expected
    assert all(
        type(old) is CircuitState and type(new) is CircuitState and old is not new
        for old, new in transitions
    )
    # A fresh dict each time: changing it changes nothing.
    transitions[(CLOSED, OPEN)] = 99
    assert breaker.transitions[(CLOSED, OPEN)] == 2
    # Two breakers count apart.
    other, _ = make(failure_threshold=1)
    trip(other)
    assert other.transitions == {(CLOSED, OPEN): 1}
    assert breaker.transitions == expected


# -- blocks left from another thread or task ---------------------------------------------


def half_open_breaker() -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.advance(1.0)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker, clock


def test_a_generator_block_closed_by_another_thread_gives_its_probe_back(policy_impl):
    """A generator suspended inside ``with breaker:`` and closed from another
    thread: the exit runs there, finds its entry by the generator's frame, and
    frees the probe slot at once (not after a whole reset_timeout)."""
    from resilience import _policy

    breaker, _ = half_open_breaker()

    def stream():
        with breaker:
            yield "probe"

    generator = stream()
    assert next(generator) == "probe"  # the one probe is out
    assert not breaker.allow()
    errors: list[BaseException] = []

    def close() -> None:
        try:
            generator.close()
        except BaseException as exc:
            errors.append(exc)

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(timeout=10.0)
    assert errors == []
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "next probe") == "next probe"
    assert breaker.state is CircuitState.CLOSED
    assert _policy._by_frame == {}  # nothing kept for the closed frame
    with breaker:  # this thread's own blocks still work, the stale entry dropped
        pass
    assert all(entry.open for entry in _policy._entries.get())


def test_an_async_generator_block_finalised_by_the_loop_gives_its_probe_back(policy_impl):
    breaker, _ = half_open_breaker()
    loop_errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))

        async def stream():
            async with breaker:
                yield "probe"

        held = [stream()]

        async def first() -> str:
            return await held[0].__anext__()

        # Entered in a task of its own: the loop finalises the generator in
        # another task, whose context holds no entry for the block.
        assert await asyncio.create_task(first()) == "probe"
        assert not breaker.allow()
        held.clear()
        gc.collect()  # the loop's finaliser schedules aclose() in a new task
        for _ in range(10):
            await asyncio.sleep(0)
        assert breaker.allow()  # the probe slot is free again

    asyncio.run(main())
    assert loop_errors == []


def test_an_exit_without_an_entry_is_still_an_error(policy_impl):
    breaker = CircuitBreaker()
    with pytest.raises(RuntimeError, match="__exit__ without a matching __enter__"):
        breaker.__exit__(None, None, None)
