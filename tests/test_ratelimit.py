"""RateLimiter and AdaptiveRateLimiter, the policies: every form, on both twins.

Every expectation comes from docs/architecture.md ("Public API", "Errors", "RateLimiter"
and "Timeout and deadline") and was worked
out by hand. Each test asks for ``policy_impl`` and builds its limiter inside,
so it runs once on the compiled core and once on the pure one. Time is a
FakeClock; sync waits sleep with ``clock.sleep``, async ones with
``clock.asleep``, unless a test records the waits instead.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import threading
from typing import Any

import pytest
from realsleep import Woken, asleep_then_cancelled, woken_from_the_sleep_hook

import resilience
from resilience import (
    AdaptiveRateLimiter,
    RateLimiter,
    RateLimitExceeded,
    ResilienceError,
    deadline,
)
from resilience.testing import FakeClock

GUARD = 10.0  # seconds: a deadlock guard for thread joins, never an assertion on time


class Boom(Exception):
    """The failure the protected functions raise."""


def make(rate: float = 2.0, **kwargs: Any) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    kwargs.setdefault("sleep", clock.sleep)
    return RateLimiter(rate, clock=clock, **kwargs), clock


def make_async(rate: float = 2.0, **kwargs: Any) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(rate, clock=clock, sleep=clock.asleep, **kwargs), clock


def drain(limiter: RateLimiter) -> int:
    """Take tokens one by one until refused; how many were taken."""
    taken = 0
    while limiter.try_acquire():
        taken += 1
        assert taken < 10_000, "the limiter never ran dry"
    return taken


def recording(clock: FakeClock | None = None, log: list[float] | None = None):
    """A sync sleep that records each wait (and advances ``clock`` if given)."""
    waits: list[float] = [] if log is None else log

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if clock is not None:
            clock.advance(seconds)

    return sleep, waits


# -- public names -------------------------------------------------------------------


def test_limiter_names_are_importable_from_the_package(policy_impl):
    assert resilience.RateLimiter is RateLimiter
    assert resilience.AdaptiveRateLimiter is AdaptiveRateLimiter
    assert resilience.RateLimitExceeded is RateLimitExceeded
    assert issubclass(RateLimitExceeded, ResilienceError)
    assert issubclass(AdaptiveRateLimiter, RateLimiter)


# -- rate, per, burst ----------------------------------------------------------------


def test_burst_then_refill_at_rate_per_period(policy_impl):
    # 5 per 2 s = 2.5 tokens/s, bucket of 3, full at the start.
    limiter, clock = make(5, per=2.0, burst=3)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.4)  # 0.4 s * 2.5/s = 1 token
    assert [limiter.try_acquire() for _ in range(2)] == [True, False]
    clock.advance(0.2)  # half a token: not enough
    assert limiter.try_acquire() is False
    clock.advance(0.2)  # one token now
    assert limiter.try_acquire() is True
    clock.advance(100.0)  # refills stop at burst
    assert drain(limiter) == 3


def test_allowed_calls_over_ten_seconds_counted_by_hand(policy_impl):
    # 5 per 2 s, burst 3: 3 at t=0, then 2.5 tokens each second, spent greedily:
    # t=1: 2 (0.5 left), t=2: 3, t=3: 2 (0.5 left), t=4: 3, ... -> 3 + 5 * (2 + 3) = 28.
    limiter, clock = make(5, per=2.0, burst=3)
    per_second = [drain(limiter)]
    for _ in range(10):
        clock.advance(1.0)
        per_second.append(drain(limiter))
    assert per_second == [3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3]
    assert sum(per_second) == 28


def test_burst_defaults_to_rate(policy_impl):
    limiter, clock = make(4, per=10.0)
    assert drain(limiter) == 4
    assert limiter.stats.burst == 4
    clock.advance(2.5)  # 4 per 10 s: 1 token
    assert drain(limiter) == 1


def test_per_defaults_to_one_second(policy_impl):
    limiter, clock = make(3)
    assert limiter.stats.per == 1.0
    assert drain(limiter) == 3
    clock.advance(1.0 / 3.0 + 1e-6)
    assert drain(limiter) == 1


def test_try_acquire_takes_many_tokens_or_none_and_never_waits(policy_impl):
    sleep, waits = recording()
    limiter, clock = make(2, burst=4, max_wait=100.0, sleep=sleep)
    assert limiter.try_acquire(3) is True
    assert limiter.available == pytest.approx(1.0)
    assert limiter.try_acquire(2) is False  # refused: nothing taken
    assert limiter.available == pytest.approx(1.0)
    assert limiter.try_acquire(5) is False  # more than the burst: never
    assert limiter.try_acquire(1) is True
    assert waits == []
    assert clock() == 0.0


def test_available_is_fractional(policy_impl):
    limiter, clock = make(5, per=2.0, burst=3)
    assert limiter.available == pytest.approx(3.0)
    assert limiter.try_acquire(2.5) is True
    assert limiter.available == pytest.approx(0.5)
    clock.advance(0.1)  # + 0.25
    assert limiter.available == pytest.approx(0.75)
    assert limiter.try_acquire(0.75) is True
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    clock.advance(0.3)  # + 0.75
    assert limiter.available == pytest.approx(0.75)
    assert limiter.stats.available == pytest.approx(0.75)


def test_zero_tokens_are_always_there(policy_impl):
    limiter, _ = make(1)
    drain(limiter)
    assert limiter.try_acquire(0) is True
    limiter.acquire(0)


# -- acquire and its waits -----------------------------------------------------------


def test_acquire_waits_exactly_the_needed_time_up_to_max_wait(policy_impl):
    # 1 token/s, bucket of 3; timeout defaults to max_wait = 2.
    limiter, clock = make(1, burst=3, max_wait=2.0)
    assert drain(limiter) == 3
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(3)  # 3 s > 2 s: at once, no sleep
    assert info.value.retry_after == pytest.approx(3.0)
    assert clock() == 0.0
    limiter.acquire(2)  # exactly max_wait: allowed
    assert clock() == pytest.approx(2.0)
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    limiter.acquire()  # one more token: 1 s
    assert clock() == pytest.approx(3.0)


def test_acquire_timeout_overrides_max_wait(policy_impl):
    limiter, clock = make(1, max_wait=0.0)
    limiter.acquire()
    with pytest.raises(RateLimitExceeded):
        limiter.acquire(timeout=0.5)  # 1 s needed
    assert clock() == 0.0
    limiter.acquire(timeout=1.0)
    assert clock() == pytest.approx(1.0)
    limiter.acquire(timeout=math.inf)  # inf: wait as long as it takes
    assert clock() == pytest.approx(2.0)

    waiting, clock2 = make(1, max_wait=60.0)
    waiting.acquire()
    with pytest.raises(RateLimitExceeded):
        waiting.acquire(timeout=0)  # 0: do not wait, whatever max_wait says
    assert clock2() == 0.0


def test_acquire_fails_fast_by_default_and_never_sleeps(policy_impl):
    sleep, waits = recording()
    clock = FakeClock()
    limiter = RateLimiter(1, per=4.0, clock=clock, sleep=sleep)  # max_wait defaults to 0
    limiter.acquire()
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(4.0)
    assert waits == []
    clock.advance(1.0)
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire()
    assert info.value.retry_after == pytest.approx(3.0)
    clock.advance(3.0)
    limiter.acquire()
    assert waits == []


def test_acquire_never_sleeps_when_the_wait_exceeds_the_limit(policy_impl):
    sleep, waits = recording()
    limiter, clock = make(2, burst=2, max_wait=0.75, sleep=sleep)
    drain(limiter)
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(2)  # 1 s > 0.75 s
    assert info.value.retry_after == pytest.approx(1.0)
    with pytest.raises(RateLimitExceeded):
        limiter.acquire(1, timeout=0.25)  # 0.5 s > 0.25 s
    assert waits == []
    assert clock() == 0.0
    assert limiter.available == pytest.approx(0.0, abs=1e-9)  # the refusals took nothing


def test_tokens_over_the_burst_are_refused_at_once_whatever_the_timeout(policy_impl):
    sleep, waits = recording()
    limiter, clock = make(10, burst=3, max_wait=math.inf, sleep=sleep)
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(4, timeout=math.inf)
    assert info.value.retry_after == math.inf
    assert waits == []
    assert clock() == 0.0
    assert limiter.available == pytest.approx(3.0)


def test_retry_after_is_the_time_until_the_tokens_are_there(policy_impl):
    limiter, clock = make(5, per=2.0, burst=3)  # 2.5 tokens/s
    drain(limiter)
    clock.advance(0.2)  # 0.5 token there
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(2)  # 1.5 missing: 0.6 s
    assert info.value.retry_after == pytest.approx(0.6)
    clock.advance(0.6)
    limiter.acquire(2)  # and then it is there


def test_waiters_are_served_in_order(policy_impl):
    # The recorded sleep does not move the clock: the waiters overlap.
    sleep, waits = recording()
    limiter, clock = make(2, burst=1, max_wait=10.0, sleep=sleep)
    limiter.acquire()  # the only token
    limiter.acquire()  # next token at 0.5 s
    limiter.acquire()  # the one after: 1.0 s, behind the first waiter
    assert waits == [pytest.approx(0.5), pytest.approx(1.0)]
    with pytest.raises(RateLimitExceeded) as info:
        limiter.acquire(timeout=1.2)  # its turn would be at 1.5 s
    assert info.value.retry_after == pytest.approx(1.5)
    assert len(waits) == 2
    assert limiter.try_acquire() is False  # the reserved tokens are not there for others
    clock.advance(1.0)  # both waiters' tokens have come in, none more
    assert limiter.try_acquire() is False
    clock.advance(0.5)
    assert limiter.try_acquire() is True


def test_async_waiters_are_served_in_order(policy_impl):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    clock = FakeClock()
    limiter = RateLimiter(4, burst=1, max_wait=10.0, clock=clock, sleep=sleep)

    async def main() -> None:
        await limiter.aacquire()
        await asyncio.gather(limiter.aacquire(), limiter.aacquire(), limiter.aacquire())

    asyncio.run(main())
    assert sorted(waits) == [pytest.approx(0.25), pytest.approx(0.5), pytest.approx(0.75)]


def test_aacquire_waits_on_the_async_sleep(policy_impl):
    limiter, clock = make_async(1, burst=2, max_wait=3.0)

    async def main() -> None:
        await limiter.aacquire(2)
        await limiter.aacquire()  # 1 s
        assert clock() == pytest.approx(1.0)
        await limiter.aacquire(2, timeout=2.0)  # 2 s, exactly the timeout
        assert clock() == pytest.approx(3.0)
        with pytest.raises(RateLimitExceeded) as info:
            await limiter.aacquire(2, timeout=1.5)
        assert info.value.retry_after == pytest.approx(2.0)
        assert clock() == pytest.approx(3.0)

    asyncio.run(main())


def test_aacquire_fails_fast_by_default(policy_impl):
    limiter, clock = make_async(1)

    async def main() -> None:
        await limiter.aacquire()
        with pytest.raises(RateLimitExceeded) as info:
            await limiter.aacquire()
        assert info.value.retry_after == pytest.approx(1.0)

    asyncio.run(main())
    assert clock() == 0.0


# -- the current deadline ------------------------------------------------------------


def test_a_wait_past_the_current_deadline_raises_at_once(policy_impl):
    sleep, waits = recording()
    limiter, clock = make(1, max_wait=10.0, sleep=sleep)
    limiter.acquire()
    with deadline(0.5, clock=clock):
        with pytest.raises(RateLimitExceeded) as info:
            limiter.acquire()  # 1 s needed, 0.5 s left
        assert info.value.retry_after == pytest.approx(1.0)
        with pytest.raises(RateLimitExceeded):
            limiter.acquire(timeout=5.0)  # an explicit timeout does not pass it either
    assert waits == []
    assert clock() == 0.0
    assert limiter.available == pytest.approx(0.0, abs=1e-9)


def test_a_wait_within_the_current_deadline_is_allowed(policy_impl):
    limiter, clock = make(1, max_wait=10.0)
    limiter.acquire()
    with deadline(1.0, clock=clock):
        limiter.acquire()  # exactly the time left
    assert clock() == pytest.approx(1.0)
    with deadline(5.0, clock=clock):
        clock.advance(4.5)  # 0.5 s left; a token came in meanwhile (1 / s)
        limiter.acquire()  # there now: no wait needed
        with pytest.raises(RateLimitExceeded):
            limiter.acquire()  # would wait 1 s
    assert clock() == pytest.approx(5.5)


def test_the_deadline_bounds_async_waits(policy_impl):
    limiter, clock = make_async(1, max_wait=10.0)

    async def main() -> None:
        await limiter.aacquire()
        async with deadline(0.5, clock=clock):
            with pytest.raises(RateLimitExceeded):
                await limiter.aacquire()
        assert clock() == 0.0
        async with deadline(2.0, clock=clock):
            await limiter.aacquire()
        assert clock() == pytest.approx(1.0)

    asyncio.run(main())


def test_the_deadline_bounds_decorated_calls(policy_impl):
    sleep, waits = recording()
    limiter, clock = make(1, max_wait=10.0, sleep=sleep)
    calls = []

    @limiter
    def work() -> str:
        calls.append(clock())
        return "done"

    assert work() == "done"
    with deadline(0.25, clock=clock), pytest.raises(RateLimitExceeded):
        work()
    assert calls == [0.0]
    assert waits == []


# -- interrupted and cancelled waits give their tokens back --------------------------


def test_an_interrupted_sync_wait_gives_its_tokens_back(policy_impl):
    clock = FakeClock()

    def interrupted(seconds: float) -> None:
        clock.advance(seconds / 2)
        raise KeyboardInterrupt

    limiter = RateLimiter(1, burst=2, max_wait=10.0, clock=clock, sleep=interrupted)
    assert limiter.try_acquire(2)
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire(2)  # reserves 2, sleeps 1 of the 2 s, interrupted
    # As if it had never asked: 0 at t=0, +1 by t=1.
    assert clock() == pytest.approx(1.0)
    assert limiter.available == pytest.approx(1.0)
    clock.advance(1.0)
    assert limiter.try_acquire(2) is True


def test_an_interrupted_wait_in_a_decorated_call_gives_its_token_back(policy_impl):
    clock = FakeClock()

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limiter = RateLimiter(1, max_wait=10.0, clock=clock, sleep=interrupted)
    calls = []

    @limiter
    def work() -> None:
        calls.append(1)

    work()
    with pytest.raises(KeyboardInterrupt):
        work()
    assert calls == [1]
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(KeyboardInterrupt), limiter:
        calls.append(2)
    assert calls == [1]
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    clock.advance(1.0)
    assert limiter.try_acquire() is True


def test_a_cancelled_aacquire_gives_its_tokens_back(policy_impl):
    # The bucket's clock stands still; the wait itself is a real asyncio.sleep
    # of 1 s, which the task is cancelled in long before it ends.
    clock = FakeClock()
    limiter = RateLimiter(1, max_wait=10.0, clock=clock)

    async def main() -> None:
        assert limiter.try_acquire()
        task = asyncio.create_task(limiter.aacquire())
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    clock.advance(1.0)
    assert limiter.try_acquire() is True


def test_a_cancelled_wait_on_the_real_clock_gives_its_token_back(policy_impl):
    # 4 per second, bucket of 1: after taking the token, the next one is
    # 0.25 s away. Cancelled right away, the reservation must be undone, so
    # the count is >= 0 (without the refund it would be about -1).
    limiter = RateLimiter(4, burst=1, max_wait=1.0)

    async def main() -> None:
        assert limiter.try_acquire()
        task = asyncio.create_task(limiter.aacquire())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert limiter.available >= -1e-9

    asyncio.run(main())


@pytest.mark.parametrize("form", ["async_with", "async_decorator", "acall"])
def test_a_cancelled_wait_in_the_async_forms_gives_its_token_back(policy_impl, form):
    clock = FakeClock()
    limiter = RateLimiter(1, max_wait=10.0, clock=clock)
    ran = []

    async def body() -> None:
        ran.append(1)

    async def through_limiter() -> None:
        if form == "async_with":
            async with limiter:
                ran.append(1)
        elif form == "async_decorator":
            await limiter(body)()
        else:
            await limiter.acall(body)

    async def main() -> None:
        assert limiter.try_acquire()
        task = asyncio.create_task(through_limiter())
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert ran == []
    assert limiter.available == pytest.approx(0.0, abs=1e-9)


SYNC_FORMS = ["acquire", "decorator", "call", "with"]
ASYNC_FORMS = ["aacquire", "async_decorator", "acall", "async_with"]


def through(limiter: RateLimiter, form: str) -> list[int]:
    """One call through ``limiter`` in a sync form; what ran of its body."""
    ran: list[int] = []
    if form == "acquire":
        limiter.acquire()
        ran.append(1)
    elif form == "decorator":
        limiter(ran.append)(1)
    elif form == "call":
        limiter.call(ran.append, 1)
    else:
        assert form == "with"
        with limiter:
            ran.append(1)
    return ran


async def athrough(limiter: RateLimiter, form: str, ran: list[int]) -> None:
    """One call through ``limiter`` in an async form, appending to ``ran`` when its body runs."""

    async def body() -> None:
        ran.append(1)

    if form == "aacquire":
        await limiter.aacquire()
        await body()
    elif form == "async_decorator":
        await limiter(body)()
    elif form == "acall":
        await limiter.acall(body)
    else:
        assert form == "async_with"
        async with limiter:
            await body()


@pytest.mark.parametrize("form", SYNC_FORMS)
@pytest.mark.parametrize("error", [KeyboardInterrupt, Boom])
def test_a_reservation_whose_sleep_raises_is_not_counted_allowed(policy_impl, form, error):
    clock = FakeClock()

    def failing(seconds: float) -> None:
        raise error

    limiter = RateLimiter(1, max_wait=10.0, clock=clock, sleep=failing)
    assert limiter.try_acquire()
    with pytest.raises(error):
        through(limiter, form)
    stats = limiter.stats
    assert (stats.allowed, stats.rejected) == (1, 0)  # the reservation was handed back
    assert stats.available == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("form", ASYNC_FORMS)
@pytest.mark.parametrize("ending", ["cancelled", "sleep raises"])
def test_a_cancelled_or_failed_async_reservation_is_not_counted_allowed(
    policy_impl, form, ending
):
    clock = FakeClock()

    async def failing(seconds: float) -> None:
        raise Boom

    sleep = failing if ending == "sleep raises" else None  # None: a real asyncio.sleep of 1 s
    limiter = RateLimiter(1, max_wait=10.0, clock=clock, sleep=sleep)
    ran: list[int] = []

    async def main() -> None:
        assert limiter.try_acquire()
        task = asyncio.create_task(athrough(limiter, form, ran))
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError if ending == "cancelled" else Boom):
            await task

    asyncio.run(main())
    assert ran == []
    stats = limiter.stats
    assert (stats.allowed, stats.rejected) == (1, 0)
    assert stats.available == pytest.approx(0.0, abs=1e-9)


# -- waits longer than one sleep of the platform ---------------------------------------


@pytest.mark.parametrize("form", SYNC_FORMS)
def test_a_wait_longer_than_the_platform_sleeps_really_sleeps(policy_impl, form):
    # The next token is 1e300 s away and max_wait allows it: the caller
    # sleeps (here woken by a signal, its own interrupt), never failing with
    # the platform's OverflowError or OSError.
    limiter = RateLimiter(1, per=1e300, max_wait=math.inf)
    assert limiter.try_acquire()
    with pytest.raises(Woken), woken_from_the_sleep_hook():
        through(limiter, form)
    assert (limiter.stats.allowed, limiter.stats.rejected) == (1, 0)


@pytest.mark.parametrize("form", ASYNC_FORMS)
def test_an_async_wait_longer_than_the_platform_sleeps_really_sleeps(policy_impl, form):
    limiter = RateLimiter(1, per=1e300, max_wait=math.inf)
    ran: list[int] = []

    async def main() -> None:
        assert limiter.try_acquire()
        task = asyncio.create_task(athrough(limiter, form, ran))
        await asleep_then_cancelled(task)

    asyncio.run(main())
    assert ran == []
    assert (limiter.stats.allowed, limiter.stats.rejected) == (1, 0)


# -- the forms -------------------------------------------------------------------------


def test_decorator_on_def_keeps_metadata_and_takes_one_token_a_call(policy_impl):
    limiter, _ = make(2)
    seen = []

    def fetch(a, b=2, *rest, key=None, **extra):
        """Fetch something."""
        seen.append((a, b, rest, key, extra))
        return a + b

    wrapped = limiter(fetch)
    assert wrapped.__name__ == "fetch"
    assert wrapped.__qualname__ == fetch.__qualname__
    assert wrapped.__module__ == fetch.__module__
    assert wrapped.__doc__ == "Fetch something."
    assert wrapped.__wrapped__ is fetch
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped(1, 5, 6, key="k", other=3) == 6
    assert wrapped(a=1) == 3
    with pytest.raises(RateLimitExceeded):
        wrapped(1)
    assert len(seen) == 2  # not called when refused
    assert seen[0] == (1, 5, (6,), "k", {"other": 3})


def test_decorated_sync_call_waits_when_allowed(policy_impl):
    limiter, clock = make(2, burst=1, max_wait=1.0)

    @limiter
    def stamp() -> float:
        return clock()

    assert stamp() == 0.0
    assert stamp() == pytest.approx(0.5)
    assert stamp() == pytest.approx(1.0)


def test_decorator_on_async_def(policy_impl):
    limiter, clock = make_async(2, burst=2)

    async def load(a, *, b):
        """Load something."""
        await asyncio.sleep(0)
        return (a, b)

    wrapped = limiter(load)
    assert inspect.iscoroutinefunction(wrapped)
    assert wrapped.__name__ == "load"
    assert wrapped.__doc__ == "Load something."
    assert wrapped.__wrapped__ is load

    async def main() -> None:
        assert await wrapped(1, b=2) == (1, 2)
        assert await wrapped(3, b=4) == (3, 4)
        with pytest.raises(RateLimitExceeded) as info:
            await wrapped(5, b=6)
        assert info.value.retry_after == pytest.approx(0.5)

    asyncio.run(main())
    assert clock() == 0.0


def test_decorator_on_methods_binds_self_and_shares_the_limiter(policy_impl):
    limiter, _ = make(3)

    class Client:
        def __init__(self, label: str) -> None:
            self.label = label

        @limiter
        def get(self, path: str) -> str:
            return f"{self.label}:{path}"

        @limiter
        async def aget(self, path: str) -> str:
            return f"{self.label}:a{path}"

    one, two = Client("one"), Client("two")
    assert one.get("/x") == "one:/x"
    assert two.get("/y") == "two:/y"
    assert inspect.iscoroutinefunction(Client.aget)
    assert asyncio.run(one.aget("/z")) == "one:a/z"
    with pytest.raises(RateLimitExceeded):
        two.get("/w")  # the three tokens are shared by all instances and both methods


def test_call_and_acall_pass_arguments_and_take_one_token(policy_impl):
    limiter, _ = make(2)

    def add(a, b, *, c=0):
        return a + b + c

    async def aadd(a, b, *, c=0):
        return a + b + c

    assert limiter.call(add, 1, 2, c=3) == 6
    assert asyncio.run(limiter.acall(aadd, 1, 2, c=4)) == 7
    with pytest.raises(RateLimitExceeded):
        limiter.call(add, 1, 2)
    with pytest.raises(RateLimitExceeded):
        asyncio.run(limiter.acall(aadd, 1, 2))
    assert limiter.stats.allowed == 2


def test_with_and_async_with_each_take_one_token(policy_impl):
    limiter, _ = make(3)
    ran = []
    with limiter:
        ran.append("with")
    assert limiter.available == pytest.approx(2.0)

    async def main() -> None:
        async with limiter:
            ran.append("async with")

    asyncio.run(main())
    assert limiter.available == pytest.approx(1.0)
    with limiter:
        ran.append("with 2")
    with pytest.raises(RateLimitExceeded), limiter:
        ran.append("refused")
    with pytest.raises(RateLimitExceeded):
        asyncio.run(main())
    assert ran == ["with", "async with", "with 2"]


def test_an_exception_in_a_with_block_passes_through(policy_impl):
    limiter, _ = make(3)
    with pytest.raises(Boom), limiter:
        raise Boom
    assert limiter.available == pytest.approx(2.0)  # the token stays taken


def test_refusal_is_the_same_from_the_decorator_and_from_call(policy_impl):
    # The decorator on a sync function is the compiled wrapper on the compiled
    # twin: its refusal must match the Python path's, on both twins.
    limiter, _ = make(5, per=2.0, burst=1, name="api")

    @limiter
    def work() -> str:
        return "ok"

    assert work() == "ok"
    with pytest.raises(RateLimitExceeded) as decorated:
        work()
    with pytest.raises(RateLimitExceeded) as called:
        limiter.call(work.__wrapped__)
    for info in (decorated, called):
        error = info.value
        assert type(error) is RateLimitExceeded
        assert isinstance(error, ResilienceError)
        assert error.retry_after == pytest.approx(0.4)
        assert error.name == "api"
        assert "api" in str(error)
    assert str(decorated.value) == str(called.value)

    unnamed, _ = make(1)
    unnamed.try_acquire()
    with pytest.raises(RateLimitExceeded) as info:
        unnamed(lambda: None)()
    assert info.value.name is None
    assert "None" not in str(info.value)


# -- stats and repr ------------------------------------------------------------------


def test_stats_after_a_scripted_sequence(policy_impl):
    limiter, clock = make(5, per=2.0, burst=3, name="api")

    @limiter
    def work() -> None:
        return None

    stats = limiter.stats
    assert (stats.name, stats.rate, stats.per, stats.burst) == ("api", 5, 2.0, 3)
    assert stats.available == pytest.approx(3.0)
    assert (stats.allowed, stats.rejected) == (0, 0)

    assert limiter.try_acquire()  # allowed 1
    work()  # allowed 2
    with limiter:  # allowed 3
        pass
    assert not limiter.try_acquire()  # rejected 1
    with pytest.raises(RateLimitExceeded):
        limiter.acquire()  # rejected 2
    with pytest.raises(RateLimitExceeded):
        work()  # rejected 3
    clock.advance(0.4)  # one token
    work()  # allowed 4
    clock.advance(0.2)  # half a token

    stats = limiter.stats
    assert stats.name == "api"
    assert stats.rate == 5
    assert stats.per == 2.0
    assert stats.burst == 3
    assert stats.available == pytest.approx(0.5)
    assert stats.allowed == 4
    assert stats.rejected == 3


def test_stats_rate_is_the_configured_rate(policy_impl):
    # 3 per 0.7 s: the limiter reports the rate it was given, 3 per `per`.
    limiter, _ = make(3, per=0.7)
    assert limiter.stats.rate == 3
    assert limiter.stats.per == 0.7


def test_repr_names_the_class_and_settings(policy_impl):
    limiter, _ = make(5, per=2.0, burst=3, name="api")
    text = repr(limiter)
    assert "RateLimiter" in text
    assert "'api'" in text
    assert "5" in text
    adaptive = AdaptiveRateLimiter(4, min_rate=1, max_rate=8, name="down")
    assert "AdaptiveRateLimiter" in repr(adaptive)
    assert "'down'" in repr(adaptive)


# -- AdaptiveRateLimiter -------------------------------------------------------------


def make_adaptive(rate: float = 4.0, **kwargs: Any) -> tuple[AdaptiveRateLimiter, FakeClock]:
    clock = FakeClock()
    kwargs.setdefault("min_rate", 1)
    kwargs.setdefault("max_rate", 6)
    kwargs.setdefault("burst", 1000)
    kwargs.setdefault("sleep", clock.sleep)
    return AdaptiveRateLimiter(rate, clock=clock, **kwargs), clock


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom("down")


def test_adaptive_aimd_script_by_hand(policy_impl):
    limiter, clock = make_adaptive(4, per=1.0, min_rate=1, max_rate=6)
    assert limiter.rate == 4
    limiter.call(ok)  # t=0: +1
    assert limiter.rate == 5
    limiter.call(ok)  # t=0: already grown in this period
    clock.advance(0.5)
    limiter.call(ok)  # t=0.5: still
    assert limiter.rate == 5
    clock.advance(0.5)
    limiter.call(ok)  # t=1: +1
    assert limiter.rate == 6
    clock.advance(1.0)
    limiter.call(ok)  # t=2: 7, clamped to max_rate
    assert limiter.rate == 6
    with pytest.raises(Boom):
        limiter.call(boom)  # t=2: * 0.5
    assert limiter.rate == 3
    clock.advance(0.5)
    with pytest.raises(Boom):
        limiter.call(boom)  # t=2.5: already shrunk in this period
    assert limiter.rate == 3
    clock.advance(0.5)
    with pytest.raises(Boom):
        limiter.call(boom)  # t=3: * 0.5
    assert limiter.rate == 1.5
    clock.advance(1.0)
    with pytest.raises(Boom):
        limiter.call(boom)  # t=4: 0.75, clamped to min_rate
    assert limiter.rate == 1
    clock.advance(1.0)
    with pytest.raises(Boom):
        limiter.call(boom)
    assert limiter.rate == 1
    assert limiter.stats.rate == 1


def test_adaptive_custom_increase_and_decrease(policy_impl):
    limiter, clock = make_adaptive(8, per=2.0, min_rate=1, max_rate=20, increase=2.5, decrease=0.25)
    limiter.call(ok)
    assert limiter.rate == 10.5
    clock.advance(1.0)
    with pytest.raises(Boom):
        limiter.call(boom)
    assert limiter.rate == 2.625
    clock.advance(1.0)  # t=2: 2 s after the first growth
    limiter.call(ok)
    assert limiter.rate == 5.125
    clock.advance(1.0)  # t=3: 2 s after the shrink
    with pytest.raises(Boom):
        limiter.call(boom)
    assert limiter.rate == pytest.approx(1.28125)


def test_adaptive_refill_follows_the_current_rate(policy_impl):
    limiter, clock = make_adaptive(2, per=1.0, min_rate=1, max_rate=10, burst=10)
    assert limiter.try_acquire(9)
    limiter.call(ok)  # the 10th token; the rate grows to 3 per second
    assert limiter.available == pytest.approx(0.0, abs=1e-9)
    clock.advance(1.0)
    assert limiter.available == pytest.approx(3.0)
    with pytest.raises(Boom):
        limiter.call(boom)  # takes one (2 left), rate 1.5 per second
    clock.advance(2.0)
    assert limiter.available == pytest.approx(5.0)


def test_adaptive_per_scales_the_rate(policy_impl):
    # 4 per 2 s = 2 tokens/s; grown to 5 per 2 s = 2.5 tokens/s.
    limiter, clock = make_adaptive(4, per=2.0, min_rate=1, max_rate=10, burst=20)
    assert limiter.try_acquire(19)
    limiter.call(ok)
    assert limiter.rate == 5
    clock.advance(2.0)
    assert limiter.available == pytest.approx(5.0)


def test_adaptive_latency_target_makes_slow_calls_failures(policy_impl):
    limiter, clock = make_adaptive(4, per=1.0, latency_target=0.5)

    def taking(seconds: float):
        def fn() -> str:
            clock.advance(seconds)
            return "done"

        return fn

    assert limiter.call(taking(0.6)) == "done"  # slower than the target: * 0.5
    assert limiter.rate == 2
    clock.advance(1.0)
    assert limiter.call(taking(0.4)) == "done"  # fast enough: + 1
    assert limiter.rate == 3


def test_adaptive_latency_target_in_the_async_and_with_forms(policy_impl):
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(
        4,
        min_rate=1,
        max_rate=6,
        latency_target=0.5,
        burst=100,
        clock=clock,
        sleep=clock.asleep,
    )

    async def slow() -> str:
        await clock.asleep(0.75)
        return "slow"

    assert asyncio.run(limiter.acall(slow)) == "slow"
    assert limiter.rate == 2
    clock.advance(1.0)
    with limiter:
        clock.advance(0.6)
    assert limiter.rate == 1


@pytest.mark.parametrize("form", ["call", "with", "acall"])
def test_adaptive_the_wait_for_a_token_is_not_the_calls_latency(policy_impl, form):
    # 1 per second, max_wait 5: the call waits 1 s for its token, then runs
    # instantly. Only the call itself is held against latency_target.
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(
        1,
        min_rate=0.5,
        max_rate=4,
        latency_target=0.5,
        max_wait=5.0,
        clock=clock,
        sleep=clock.asleep if form == "acall" else clock.sleep,
    )
    assert limiter.try_acquire()

    async def instant() -> None:
        return None

    if form == "call":
        limiter.call(lambda: None)
    elif form == "with":
        with limiter:
            pass
    else:
        asyncio.run(limiter.acall(instant))
    assert clock() == pytest.approx(1.0)  # it did wait
    assert limiter.rate == 2  # a success, not a slow call


def _run_form(limiter: AdaptiveRateLimiter, form: str, fail: bool) -> None:
    def sync_body() -> str:
        if fail:
            raise Boom("down")
        return "ok"

    async def async_body() -> str:
        await asyncio.sleep(0)
        return sync_body()

    if form == "call":
        limiter.call(sync_body)
    elif form == "decorator":
        limiter(sync_body)()
    elif form == "with":
        with limiter:
            sync_body()
    elif form == "acall":
        asyncio.run(limiter.acall(async_body))
    elif form == "async_decorator":
        asyncio.run(limiter(async_body)())
    else:

        async def main() -> None:
            async with limiter:
                await async_body()

        asyncio.run(main())


ADAPTIVE_FORMS = ["call", "decorator", "with", "acall", "async_decorator", "async_with"]


@pytest.mark.parametrize("form", ADAPTIVE_FORMS)
def test_adaptive_every_form_observes_outcomes(policy_impl, form):
    limiter, clock = make_adaptive(4, per=1.0)
    _run_form(limiter, form, fail=False)
    assert limiter.rate == 5
    clock.advance(1.0)
    with pytest.raises(Boom):
        _run_form(limiter, form, fail=True)
    assert limiter.rate == 2.5


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
@pytest.mark.parametrize("form", ["call", "with", "acall", "async_with"])
def test_adaptive_cancellation_and_interrupts_change_nothing(policy_impl, kind, form):
    limiter, _ = make_adaptive(4, per=1.0)

    def sync_raiser() -> None:
        raise kind()

    async def async_raiser() -> None:
        raise kind()

    async def async_with() -> None:
        async with limiter:
            raise kind()

    with pytest.raises(kind):
        if form == "call":
            limiter.call(sync_raiser)
        elif form == "with":
            with limiter:
                raise kind()
        elif form == "acall":
            asyncio.run(limiter.acall(async_raiser))
        else:
            asyncio.run(async_with())
    assert limiter.rate == 4
    # Nothing was counted, so neither change has been used up in this period.
    with pytest.raises(Boom):
        limiter.call(boom)
    assert limiter.rate == 2
    limiter.call(ok)
    assert limiter.rate == 3


def test_adaptive_refused_calls_change_nothing(policy_impl):
    limiter, _ = make_adaptive(4, per=1.0, burst=1)
    limiter.call(ok)  # + 1
    assert limiter.rate == 5
    calls = []
    with pytest.raises(RateLimitExceeded):
        limiter.call(lambda: calls.append(1))
    with pytest.raises(RateLimitExceeded), limiter:
        calls.append(2)
    assert calls == []
    assert limiter.rate == 5


def test_adaptive_decorator_keeps_metadata(policy_impl):
    limiter, _ = make_adaptive()

    def sync_fn():
        """Sync."""

    async def async_fn():
        """Async."""

    wrapped = limiter(sync_fn)
    assert wrapped.__name__ == "sync_fn"
    assert wrapped.__doc__ == "Sync."
    assert not inspect.iscoroutinefunction(wrapped)
    awrapped = limiter(async_fn)
    assert awrapped.__name__ == "async_fn"
    assert inspect.iscoroutinefunction(awrapped)


def test_adaptive_rate_equal_to_its_bounds_is_accepted(policy_impl):
    # rate == min_rate == max_rate is within [min_rate, max_rate].
    limiter, _ = make_adaptive(5, per=1.0, min_rate=5, max_rate=5)
    limiter.call(ok)
    assert limiter.rate == 5
    with pytest.raises(Boom):
        limiter.call(boom)
    assert limiter.rate == 5


def test_adaptive_rate_equal_to_min_rate_with_any_period(policy_impl):
    # 3 per 0.7 s, with min_rate 3: within the bounds, whatever `per` is.
    limiter, _ = make_adaptive(3, per=0.7, min_rate=3, max_rate=10)
    assert limiter.rate == 3


def test_adaptive_rate_never_goes_past_max_rate(policy_impl):
    # 6 per 0.3 s grows by 1 to 7 per 0.3 s = max_rate, and must not exceed it.
    limiter, _ = make_adaptive(6, per=0.3, min_rate=1, max_rate=7)
    limiter.call(ok)
    assert limiter.rate <= 7
    assert limiter.rate == pytest.approx(7)


ADAPTIVE_BAD = [
    ({"min_rate": 5}, ValueError, "min_rate"),  # min_rate > rate (4)
    ({"max_rate": 3}, ValueError, "max_rate"),  # max_rate < rate
    ({"min_rate": 6, "max_rate": 2}, ValueError, "min_rate"),
    ({"min_rate": 0}, ValueError, "min_rate"),
    ({"min_rate": -1}, ValueError, "min_rate"),
    ({"min_rate": math.nan}, ValueError, "min_rate"),
    ({"min_rate": "1"}, TypeError, "min_rate"),
    ({"max_rate": -6}, ValueError, "max_rate"),
    ({"max_rate": math.nan}, ValueError, "max_rate"),
    ({"max_rate": "6"}, TypeError, "max_rate"),
    ({"decrease": 0}, ValueError, "decrease"),
    ({"decrease": 1}, ValueError, "decrease"),
    ({"decrease": 1.5}, ValueError, "decrease"),
    ({"decrease": -0.5}, ValueError, "decrease"),
    ({"decrease": math.nan}, ValueError, "decrease"),
    ({"decrease": "0.5"}, TypeError, "decrease"),
    ({"increase": -1}, ValueError, "increase"),
    ({"increase": math.nan}, ValueError, "increase"),
    ({"increase": math.inf}, ValueError, "increase"),
    ({"increase": "1"}, TypeError, "increase"),
    ({"latency_target": 0}, ValueError, "latency_target"),
    ({"latency_target": -0.5}, ValueError, "latency_target"),
    ({"latency_target": math.nan}, ValueError, "latency_target"),
    ({"latency_target": "1"}, TypeError, "latency_target"),
    ({"rate": 0}, ValueError, "rate"),
    ({"per": 0}, ValueError, "per"),
    ({"burst": -1}, ValueError, "burst"),
    ({"max_wait": -1}, ValueError, "max_wait"),
]


@pytest.mark.parametrize(
    ("changes", "error", "argument"), ADAPTIVE_BAD, ids=[repr(c[0]) for c in ADAPTIVE_BAD]
)
def test_adaptive_bad_settings_raise_naming_the_argument(policy_impl, changes, error, argument):
    kwargs: dict[str, Any] = {"rate": 4, "per": 1.0, "min_rate": 1, "max_rate": 6}
    kwargs.update(changes)
    rate = kwargs.pop("rate")
    with pytest.raises(error, match=argument):
        AdaptiveRateLimiter(rate, **kwargs)


def test_adaptive_min_and_max_rate_are_required(policy_impl):
    with pytest.raises(TypeError):
        AdaptiveRateLimiter(4, max_rate=6)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        AdaptiveRateLimiter(4, min_rate=1)  # type: ignore[call-arg]


# -- bad input -------------------------------------------------------------------------

LIMITER_BAD = [
    ("rate", 0, ValueError),
    ("rate", -1, ValueError),
    ("rate", math.nan, ValueError),
    ("rate", math.inf, ValueError),
    ("rate", "5", ValueError),  # a str is a rate string, and this one says no period
    ("rate", None, TypeError),
    ("per", 0, ValueError),
    ("per", -2.0, ValueError),
    ("per", math.nan, ValueError),
    ("per", math.inf, ValueError),
    ("per", "1", TypeError),
    ("burst", 0, ValueError),
    ("burst", -3, ValueError),
    ("burst", math.nan, ValueError),
    ("burst", math.inf, ValueError),
    ("burst", "3", TypeError),
    ("max_wait", -1, ValueError),
    ("max_wait", -0.5, ValueError),
    ("max_wait", math.nan, ValueError),
    ("max_wait", "1", TypeError),
    ("name", 5, TypeError),
    ("clock", "now", TypeError),
    ("sleep", 5, TypeError),
]


@pytest.mark.parametrize(
    ("argument", "value", "error"),
    LIMITER_BAD,
    ids=[f"{a}={v!r}" for a, v, _ in LIMITER_BAD],
)
def test_bad_constructor_arguments_raise_naming_the_argument_and_value(
    policy_impl, argument, value, error
):
    kwargs: dict[str, Any] = {"rate": 5}
    kwargs[argument] = value
    rate = kwargs.pop("rate")
    pattern = rf"{argument}\b.*{re.escape(repr(value))}"
    with pytest.raises(error, match=pattern):
        RateLimiter(rate, **kwargs)
    with pytest.raises(error, match=argument):
        AdaptiveRateLimiter(rate if argument == "rate" else 5, min_rate=1, max_rate=10, **kwargs)


def test_bool_is_not_a_rate(policy_impl):
    with pytest.raises(TypeError, match="rate"):
        RateLimiter(True)


@pytest.mark.parametrize("max_wait", [0, 0.0, 2, math.inf])
def test_good_max_wait_values_are_accepted(policy_impl, max_wait):
    limiter, clock = make(1, max_wait=max_wait)
    limiter.acquire()
    if max_wait == 0:
        with pytest.raises(RateLimitExceeded):
            limiter.acquire()
    else:
        limiter.acquire()
        assert clock() == pytest.approx(1.0)


BAD_TOKENS = [(-1, ValueError), (-0.5, ValueError), (math.nan, ValueError), ("1", TypeError)]


@pytest.mark.parametrize(("tokens", "error"), BAD_TOKENS, ids=[repr(t) for t, _ in BAD_TOKENS])
def test_bad_tokens_raise_naming_the_argument(policy_impl, tokens, error):
    limiter, _ = make(5, max_wait=10.0)
    with pytest.raises(error, match="tokens"):
        limiter.try_acquire(tokens)
    with pytest.raises(error, match="tokens"):
        limiter.acquire(tokens)
    with pytest.raises(error, match="tokens"):
        asyncio.run(limiter.aacquire(tokens))
    assert limiter.available == pytest.approx(5.0)


BAD_TIMEOUTS = [(-1, ValueError), (-0.25, ValueError), (math.nan, ValueError), ("1", TypeError)]


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=[repr(t) for t, _ in BAD_TIMEOUTS])
def test_bad_timeouts_raise_naming_the_argument(policy_impl, timeout, error):
    limiter, _ = make(5)
    with pytest.raises(error, match="timeout"):
        limiter.acquire(1, timeout)
    with pytest.raises(error, match="timeout"):
        asyncio.run(limiter.aacquire(1, timeout=timeout))
    assert limiter.available == pytest.approx(5.0)


def test_decorating_a_non_callable_is_a_type_error(policy_impl):
    limiter, _ = make()
    with pytest.raises(TypeError):
        limiter(42)


# -- threads ---------------------------------------------------------------------------

THREAD_MODES = ["try_acquire", "acquire", "decorator", "with"]


@pytest.mark.parametrize("mode", THREAD_MODES)
def test_threads_hammering_a_still_clock_get_exactly_burst(policy_impl, mode):
    clock = FakeClock()  # never moves: no refill
    limiter = RateLimiter(10, burst=37, clock=clock)
    threads_n, attempts = 8, 200
    barrier = threading.Barrier(threads_n)
    wins = [0] * threads_n
    errors: list[BaseException] = []

    @limiter
    def work() -> None:
        return None

    def attempt() -> bool:
        if mode == "try_acquire":
            return limiter.try_acquire()
        try:
            if mode == "acquire":
                limiter.acquire()
            elif mode == "decorator":
                work()
            else:
                with limiter:
                    pass
        except RateLimitExceeded:
            return False
        return True

    def hammer(index: int) -> None:
        try:
            barrier.wait(GUARD)
            for _ in range(attempts):
                if attempt():
                    wins[index] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert sum(wins) == 37
    stats = limiter.stats
    assert stats.allowed == 37
    assert stats.rejected == threads_n * attempts - 37
    assert stats.available == pytest.approx(0.0, abs=1e-9)
