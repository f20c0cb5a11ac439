"""A user ``clock`` that misbehaves: the same outcome on both twins, before any state changes.

A reading that is not a finite real number raises ``ValueError`` (NaN,
infinities) or ``TypeError`` (anything that is not a real number, bools
included) naming ``clock`` and the reading; an exception the clock raises
itself propagates unchanged. Either way the policy runs nothing and counts
nothing: once the clock reads well again, it is as if the bad call never
happened. An ``int`` reading is a real number and is accepted.

Every test runs on both twins (``policy_impl``) and expects the same exact
outcome, so the twins agree with each other as well as with the rule.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from resilience import (
    AdaptiveRateLimiter,
    CircuitBreaker,
    CircuitState,
    RateLimiter,
    Retry,
    deadline,
    remaining,
)
from resilience.backoff import constant
from resilience.budget import ErrorBudget
from resilience.degradation import DegradationManager
from resilience.errors import CircuitOpenError
from resilience.health import HealthCheck, HealthStatus


class ClockBroke(Exception):
    """What the raising clock raises."""


class SettableClock:
    """A user clock reading ``reading``; an exception set as the reading is raised."""

    def __init__(self, reading: Any = 100.0) -> None:
        self.reading = reading

    def __call__(self) -> Any:
        if isinstance(self.reading, BaseException):
            raise self.reading
        return self.reading


BAD_READINGS: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "str": "soon",
    "None": None,
    "bool": True,  # bools are not numbers anywhere in the library
    "huge int": 10**400,  # a real number, but no float holds it
    "raises": ClockBroke("clock broke"),
}


def expect_refusal(reading: Any, call: Callable[[], Any]) -> None:
    """``call()`` fails as the rule says for a clock reading ``reading``."""
    with pytest.raises(BaseException) as caught:
        call()
    if isinstance(reading, BaseException):
        assert caught.value is reading  # propagated unchanged, not wrapped
        return
    kind = TypeError if reading is None or isinstance(reading, (bool, str)) else ValueError
    assert type(caught.value) is kind
    assert re.fullmatch(rf"clock\(\) .* got {re.escape(repr(reading))}", str(caught.value))


def breaker_stats(breaker: CircuitBreaker) -> dict[str, Any]:
    return dataclasses.asdict(breaker.stats)


# -- CircuitBreaker: every form ---------------------------------------------------------


def sync_form(form: str, breaker: CircuitBreaker, work: Callable[[], str]) -> Callable[[], Any]:
    if form == "deco":
        return breaker(work)
    if form == "call":
        return lambda: breaker.call(work)

    def within() -> str:
        with breaker:
            return work()

    return within


def async_form(form: str, breaker: CircuitBreaker, work: Callable[[], str]) -> Callable[[], Any]:
    async def awork() -> str:
        return work()

    if form == "adeco":
        decorated = breaker(awork)
        return lambda: asyncio.run(decorated())
    if form == "acall":
        return lambda: asyncio.run(breaker.acall(awork))

    async def within() -> str:
        async with breaker:
            return await awork()

    return lambda: asyncio.run(within())


FORMS = ("deco", "call", "with", "adeco", "acall", "awith")
# Each setting takes another path in the decorators: the compiled fast
# paths, a timed call, the async fast path with a fallback, a judged result.
SETTINGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "timed": {"slow_call_duration": 1.0},
    "fallback": {"fallback": lambda: "fallback"},
    "judged": {"failure_if": lambda result: result == "bad"},
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_a_breaker_with_a_bad_clock_runs_nothing(
    policy_impl: Any, reading: Any, form: str, setting: str
) -> None:
    clock = SettableClock()
    breaker = CircuitBreaker(failure_threshold=1, clock=clock, **SETTINGS[setting])
    untouched = breaker_stats(breaker)
    ran: list[str] = []

    def work() -> str:
        ran.append("ran")
        return "ok"

    call = (sync_form if form in ("deco", "call", "with") else async_form)(form, breaker, work)
    clock.reading = reading
    expect_refusal(reading, call)
    assert ran == []
    clock.reading = 100.0
    assert breaker_stats(breaker) == untouched
    assert call() == "ok"  # no permit was left taken
    assert breaker_stats(breaker)["total_calls"] == 1


@pytest.mark.parametrize("form", FORMS)
def test_a_breaker_takes_int_readings(policy_impl: Any, form: str) -> None:
    clock = SettableClock(7)
    breaker = CircuitBreaker(slow_call_duration=1.0, clock=clock)

    def work() -> str:
        clock.reading = 9  # the call lasts 2 s: slow
        return "ok"

    call = (sync_form if form in ("deco", "call", "with") else async_form)(form, breaker, work)
    assert call() == "ok"
    stats = breaker_stats(breaker)
    assert (stats["total_calls"], stats["total_failures"], stats["total_slow_calls"]) == (1, 0, 1)


@pytest.mark.parametrize("form", FORMS)
def test_a_call_during_which_the_clock_steps_back_lasted_no_time(
    policy_impl: Any, form: str
) -> None:
    clock = SettableClock(100.0)
    breaker = CircuitBreaker(slow_call_duration=1.0, clock=clock)

    def work() -> str:
        clock.reading = 95.0  # a wall clock set back while the call ran
        return "ok"

    call = (sync_form if form in ("deco", "call", "with") else async_form)(form, breaker, work)
    assert call() == "ok"
    stats = breaker_stats(breaker)
    assert (stats["total_calls"], stats["total_failures"], stats["total_slow_calls"]) == (1, 0, 0)


# -- Retry ------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ("deco", "call", "adeco", "acall"))
@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_a_retry_with_a_bad_clock_makes_no_attempt(
    policy_impl: Any, reading: Any, form: str
) -> None:
    clock = SettableClock()
    retry = Retry(3, backoff=constant(0), clock=clock, sleep=lambda seconds: None)
    untouched = dataclasses.asdict(retry.stats)
    ran: list[str] = []

    def work() -> str:
        ran.append("ran")
        raise ClockBroke("not the clock: the work")

    async def awork() -> str:
        return work()

    decorated, adecorated = retry(work), retry(awork)
    calls: dict[str, Callable[[], Any]] = {
        "deco": decorated,
        "call": lambda: retry.call(work),
        "adeco": lambda: asyncio.run(adecorated()),
        "acall": lambda: asyncio.run(retry.acall(awork)),
    }
    clock.reading = reading
    expect_refusal(reading, calls[form])
    assert ran == []
    assert dataclasses.asdict(retry.stats) == untouched


def test_a_retry_takes_int_readings(policy_impl: Any) -> None:
    retry = Retry(3, backoff=constant(0), clock=SettableClock(7), sleep=lambda seconds: None)
    ran: list[str] = []

    @retry
    def flaky() -> str:
        ran.append("ran")
        if len(ran) < 3:
            raise ClockBroke("again")
        return "ok"

    assert flaky() == "ok"
    assert (retry.stats.attempts, retry.stats.successes) == (3, 1)


# -- RateLimiter, deadline, HealthCheck, ErrorBudget ------------------------------------


@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_a_rate_limiter_with_a_bad_clock_takes_no_token(policy_impl: Any, reading: Any) -> None:
    clock = SettableClock()
    limiter = RateLimiter(1, clock=clock)
    ran: list[str] = []
    decorated = limiter(lambda: ran.append("ran"))
    clock.reading = reading
    expect_refusal(reading, decorated)
    assert ran == []
    clock.reading = 100.0
    assert limiter.available == 1.0


@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_a_deadline_with_a_bad_clock_is_not_entered(reading: Any) -> None:
    clock = SettableClock()
    limit = deadline(5.0, clock=clock)
    clock.reading = reading
    expect_refusal(reading, limit.__enter__)
    assert remaining() == math.inf


def test_remaining_checks_the_deadline_clock(policy_impl: Any) -> None:
    clock = SettableClock(100)
    with deadline(5.0, clock=clock):
        assert remaining() == 5.0
        clock.reading = math.nan
        expect_refusal(math.nan, remaining)


@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_a_health_check_with_a_bad_clock_does_not_probe(reading: Any) -> None:
    clock = SettableClock()
    probed: list[str] = []

    def probe() -> bool:
        probed.append("probed")
        return True

    check = HealthCheck("db", probe, clock=clock)
    clock.reading = reading
    expect_refusal(reading, check.run)
    assert probed == []
    assert (check.runs, check.status) == (0, HealthStatus.UNKNOWN)
    expect_refusal(reading, lambda: HealthCheck("db", probe, clock=clock))


@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_an_error_budget_with_a_bad_clock_records_nothing(policy_impl: Any, reading: Any) -> None:
    clock = SettableClock()
    budget = ErrorBudget(0.9, window=3600.0, clock=clock)
    clock.reading = reading
    expect_refusal(reading, lambda: budget.record(ok=False))
    clock.reading = 100.0
    assert budget.remaining == 1.0


@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_an_adaptive_limiter_with_a_bad_clock_keeps_its_rate(
    policy_impl: Any, reading: Any
) -> None:
    clock = SettableClock()
    limiter = AdaptiveRateLimiter(10, min_rate=1, max_rate=20, clock=clock)
    clock.reading = reading
    expect_refusal(reading, limiter.record_failure)
    expect_refusal(reading, lambda: limiter.record_success(0.0))
    clock.reading = 100.0
    assert limiter.rate == 10.0
    limiter.record_failure()  # not skipped as "too soon after" a bad reading
    assert limiter.rate == 5.0


@pytest.mark.parametrize("reading", BAD_READINGS.values(), ids=BAD_READINGS.keys())
def test_a_degradation_manager_with_a_bad_clock_stays_at_its_level(
    policy_impl: Any, reading: Any
) -> None:
    clock = SettableClock()
    manager = DegradationManager(clock=clock)
    clock.reading = reading
    expect_refusal(reading, lambda: manager.set_level("critical"))
    expect_refusal(reading, lambda: DegradationManager(clock=clock))
    clock.reading = 100.0
    assert manager.level == "normal"


# -- a clock that steps back: elapsed durations are kept ---------------------------------


def refusal_wait(breaker: CircuitBreaker) -> float | None:
    """The ``retry_after`` of the refusal a call gets now."""
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(lambda: None)
    return refused.value.retry_after


def test_an_open_breaker_stays_open_for_what_was_left_after_a_step_back(
    policy_impl: Any,
) -> None:
    clock = SettableClock(1e6)
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, clock=clock)
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.reading = 1e6 + 4.0
    assert refusal_wait(breaker) == 6.0
    clock.reading = 0.0  # set back by 11 days, 4 s into the open time
    assert refusal_wait(breaker) == 6.0
    clock.reading = 5.5
    assert refusal_wait(breaker) == 0.5
    clock.reading = 6.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED


def test_a_deadline_keeps_its_remaining_time_through_a_step_back(policy_impl: Any) -> None:
    clock = SettableClock(1000.0)
    with deadline(5.0, clock=clock):
        clock.reading = 1001.0
        assert remaining() == 4.0
        clock.reading = 901.0  # set back by 100 s
        assert remaining() == 4.0
        clock.reading = 904.0
        assert remaining() == 1.0
        clock.reading = 905.0
        assert remaining() == 0.0


def test_a_retry_deadline_is_not_extended_by_a_step_back(policy_impl: Any) -> None:
    """The clock is set back by 100 s during the second attempt: the 3 s
    deadline still ends the retries after 3 s of waiting seen by the retry
    (the wait the step back swallowed is not seen), not 100 s later."""
    clock = SettableClock(1000.0)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.reading += seconds

    retry = Retry(None, backoff=constant(1.0), deadline=3.0, clock=clock, sleep=sleep)

    @retry
    def fails() -> None:
        if len(slept) == 1:
            clock.reading -= 100.0
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fails()
    assert slept == [1.0, 1.0, 1.0]


def test_a_health_check_never_reports_a_negative_duration(policy_impl: Any) -> None:
    clock = SettableClock(100.0)
    step_back = True

    def probe() -> bool:
        if step_back:
            clock.reading -= 50.0  # set back by 50 s while the probe runs
        clock.reading += 3.0
        return True

    check = HealthCheck("db", probe, clock=clock)
    check.run()
    assert check.last_duration == 0.0  # not -47: the step back took the time
    step_back = False
    check.run()
    assert check.last_duration == 3.0  # after the step back, durations are as before
